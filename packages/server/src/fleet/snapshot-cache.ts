import type { HaltRecord, LatestResponse, PinRecord } from '@livegraft/protocol';
import type { FeedLevelRow } from '../db/feeds.ts';
import type { PublishedLevel } from './desired.ts';

/**
 * How long a cached fleet fact may serve without a change notice. Local writes
 * and bus notices (every node's) clear the cache at once; the age limit only
 * bounds staleness for changes that come with no notice (a level published on
 * another node that moved no feed).
 */
export const SNAPSHOT_MAX_AGE_MS = 2000;
/** Kernels whose feed levels, halts and published levels are kept. */
export const SNAPSHOT_MAX_KERNELS = 1024;
/** Published manifests (kernel, level) kept for check-in answers. */
export const MANIFEST_MAX_ENTRIES = 1024;

/** The fleet facts of one kernel build. */
export interface KernelFacts {
  feedLevels: FeedLevelRow[];
  halts: HaltRecord[];
  published: PublishedLevel[];
}

interface Entry<T> {
  at: number;
  value: T;
}

/**
 * The check-in's view of the fleet (feed levels, halts, pins, published
 * levels and manifests), kept in memory between changes. A read that started
 * before an invalidation is not stored, so a change is never masked by an
 * answer fetched before it.
 */
export class SnapshotCache {
  readonly #now: () => number;
  #generation = 0;
  #kernels = new Map<string, Entry<KernelFacts>>();
  #pins: Entry<PinRecord[]> | undefined;
  #manifests = new Map<string, Entry<LatestResponse | undefined>>();

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get generation(): number {
    return this.#generation;
  }

  invalidate(): void {
    this.#generation++;
    this.#kernels.clear();
    this.#pins = undefined;
    this.#manifests.clear();
  }

  kernel(kernelId: string): KernelFacts | undefined {
    return this.#fresh(this.#kernels, kernelId);
  }

  setKernel(generation: number, kernelId: string, facts: KernelFacts): void {
    this.#store(this.#kernels, SNAPSHOT_MAX_KERNELS, generation, kernelId, facts);
  }

  pins(): PinRecord[] | undefined {
    const e = this.#pins;
    if (e === undefined || this.#now() - e.at > SNAPSHOT_MAX_AGE_MS) return undefined;
    return e.value;
  }

  setPins(generation: number, pins: PinRecord[]): void {
    if (generation === this.#generation) this.#pins = { at: this.#now(), value: pins };
  }

  /** A cached manifest answer: `undefined` when not cached; `{ value: undefined }` when cached as not published. */
  manifest(kernelId: string, level: number): { value: LatestResponse | undefined } | undefined {
    const key = `${kernelId}\u0000${level}`;
    const e = this.#manifests.get(key);
    if (e === undefined) return undefined;
    if (this.#now() - e.at > SNAPSHOT_MAX_AGE_MS) {
      this.#manifests.delete(key);
      return undefined;
    }
    return { value: e.value };
  }

  setManifest(generation: number, kernelId: string, level: number, value: LatestResponse | undefined): void {
    this.#store(this.#manifests, MANIFEST_MAX_ENTRIES, generation, `${kernelId}\u0000${level}`, value);
  }

  #fresh<T>(map: Map<string, Entry<T>>, key: string): T | undefined {
    const e = map.get(key);
    if (e === undefined) return undefined;
    if (this.#now() - e.at > SNAPSHOT_MAX_AGE_MS) {
      map.delete(key);
      return undefined;
    }
    return e.value;
  }

  #store<T>(map: Map<string, Entry<T>>, max: number, generation: number, key: string, value: T): void {
    if (generation !== this.#generation) return;
    map.delete(key);
    map.set(key, { at: this.#now(), value });
    // Oldest insertion first: drop it when over the bound.
    while (map.size > max) {
      const oldest = map.keys().next().value;
      if (oldest === undefined) break;
      map.delete(oldest);
    }
  }
}
