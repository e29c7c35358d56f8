import { createHash } from 'node:crypto';
import type { ModuleStore } from './store.ts';

/** Modules larger than this are streamed from disk each time, never held in memory. */
export const SERVED_MODULE_MAX_BYTES = 8 * 1024 * 1024;
/** All modules held in memory together stay under this. */
export const SERVED_MODULES_MAX_BYTES = 64 * 1024 * 1024;

export interface ServedModuleLimits {
  maxModuleBytes: number;
  maxTotalBytes: number;
}

/**
 * The bytes of recently served modules, in memory. During a rollout every
 * host downloads the same module: opening, stat-ing, reading and closing
 * its file once per host cost more server CPU than the rest of the
 * download. A stored module never changes (its name is its hash), so a copy
 * in memory is never stale. Only bytes that match their hash are held: a
 * damaged file is streamed from the store each time, as before, and clients
 * refuse it. Bounded by size per module and in total, least recently served
 * dropped first; concurrent misses share one read.
 */
export class ServedModules {
  readonly #store: ModuleStore;
  readonly #limits: ServedModuleLimits;
  readonly #held = new Map<string, Buffer>();
  readonly #reading = new Map<string, Promise<Buffer | 'stream' | undefined>>();
  #bytes = 0;

  constructor(
    store: ModuleStore,
    limits: ServedModuleLimits = { maxModuleBytes: SERVED_MODULE_MAX_BYTES, maxTotalBytes: SERVED_MODULES_MAX_BYTES },
  ) {
    this.#store = store;
    this.#limits = limits;
  }

  /** Bytes held in memory now. */
  get heldBytes(): number {
    return this.#bytes;
  }

  /**
   * The module's bytes when they can be held, `'stream'` when the caller
   * must stream the file from the store (too large, or its bytes do not
   * match its hash), undefined when the store has no such module.
   */
  async get(sha256: string): Promise<Buffer | 'stream' | undefined> {
    const hit = this.#held.get(sha256);
    if (hit !== undefined) {
      // Most recently served last.
      this.#held.delete(sha256);
      this.#held.set(sha256, hit);
      return hit;
    }
    const size = await this.#store.size(sha256);
    if (size === undefined) return undefined;
    if (size > this.#limits.maxModuleBytes) return 'stream';
    let reading = this.#reading.get(sha256);
    if (reading === undefined) {
      reading = this.#read(sha256).finally(() => this.#reading.delete(sha256));
      this.#reading.set(sha256, reading);
    }
    return reading;
  }

  async #read(sha256: string): Promise<Buffer | 'stream' | undefined> {
    const bytes = await this.#store.read(sha256);
    if (bytes === undefined) return undefined;
    if (createHash('sha256').update(bytes).digest('hex') !== sha256) return 'stream';
    this.#hold(sha256, bytes);
    return bytes;
  }

  #hold(sha256: string, bytes: Buffer): void {
    if (this.#held.has(sha256) || bytes.length > this.#limits.maxModuleBytes) return;
    for (const [key, old] of this.#held) {
      if (this.#bytes + bytes.length <= this.#limits.maxTotalBytes) break;
      this.#held.delete(key);
      this.#bytes -= old.length;
    }
    if (this.#bytes + bytes.length > this.#limits.maxTotalBytes) return;
    this.#held.set(sha256, bytes);
    this.#bytes += bytes.length;
  }
}
