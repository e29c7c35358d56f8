import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { manifestValidator, parseJson, type KernelIdentity, type PatchManifest } from '@livegraft/protocol';
import { commitTempFile, tempPathFor, writeFileAtomic } from '../lib/fs-atomic.ts';
import { verifyModuleFile } from '../kernel/verify.ts';

/** <cache>/<kernelId>/running.json: see ModuleCache.running. */
const RUNNING_FILE = 'running.json';

export interface CachedModule {
  manifest: PatchManifest;
  modulePath: string;
}

/** Fills `tempPath` with the module bytes, at most `maxBytes`. */
export type ModuleFetcher = (tempPath: string, maxBytes: number) => Promise<unknown>;

/**
 * Verified modules, kept so `boot` and `rollback` work without the server:
 * <state>/cache/<kernelId>/<level>/{manifest.json, <name>.ko}.
 * INVARIANT: a module is in the cache only after it passed verifyModule, and
 * manifest.json is written last, so its presence means the entry is complete.
 */
export class ModuleCache {
  readonly root: string;

  constructor(stateDir: string) {
    this.root = join(stateDir, 'cache');
  }

  dir(kernelId: string, level: number): string {
    return join(this.root, kernelId, String(level));
  }

  /** Levels cached for a kernel, ascending. */
  levels(kernelId: string): number[] {
    let names: string[];
    try {
      names = readdirSync(join(this.root, kernelId));
    } catch {
      return [];
    }
    return names
      .filter((n) => /^[1-9][0-9]{0,6}$/.test(n))
      .map(Number)
      .filter((level) => this.get(kernelId, level) !== undefined)
      .sort((a, b) => a - b);
  }

  /** The cached entry, or undefined if absent or its manifest is unreadable. Bytes are checked at load time. */
  get(kernelId: string, level: number): CachedModule | undefined {
    const dir = this.dir(kernelId, level);
    let manifest: PatchManifest;
    try {
      manifest = parseJson(manifestValidator, readFileSync(join(dir, 'manifest.json'), 'utf8'), 'cached manifest');
    } catch {
      return undefined;
    }
    if (manifest.level !== level || manifest.kernel.id !== kernelId) return undefined;
    const modulePath = join(dir, manifest.module.file);
    if (!existsSync(modulePath)) return undefined;
    return { manifest, modulePath };
  }

  /**
   * The level the kernel ran last for this build, as recorded beside the
   * cached modules (0 = unloaded). A second record besides state.json, so a
   * lost or reset state file does not leave the host unpatched after a
   * reboot. Undefined when absent or unreadable.
   */
  running(kernelId: string): number | undefined {
    try {
      const doc = JSON.parse(readFileSync(join(this.root, kernelId, RUNNING_FILE), 'utf8')) as { level?: unknown };
      return typeof doc.level === 'number' && Number.isInteger(doc.level) && doc.level >= 0 ? doc.level : undefined;
    } catch {
      return undefined;
    }
  }

  /** Records the level the kernel now runs for this build (temp + fsync + rename). */
  recordRunning(kernelId: string, level: number, at: string): void {
    if (this.running(kernelId) === level) return;
    writeFileAtomic(join(this.root, kernelId, RUNNING_FILE), `${JSON.stringify({ level, at })}\n`, 0o600);
  }

  /**
   * Returns the cached module for `manifest`, fetching and verifying it first
   * if needed. Nothing lands in the cache unless it verified.
   */
  async ensure(manifest: PatchManifest, kernel: KernelIdentity, fetchModule: ModuleFetcher): Promise<CachedModule> {
    const existing = this.get(kernel.id, manifest.level);
    if (existing !== undefined && existing.manifest.module.sha256 === manifest.module.sha256) {
      try {
        verifyModuleFile(existing.manifest, existing.modulePath, kernel);
        return existing;
      } catch {
        // A damaged cache entry is replaced by a fresh download below.
      }
    }
    const dir = this.dir(kernel.id, manifest.level);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const modulePath = join(dir, manifest.module.file);
    const tmp = tempPathFor(modulePath);
    try {
      await fetchModule(tmp, manifest.module.size);
      verifyModuleFile(manifest, tmp, kernel);
      // Drop the old manifest first so a crash between the two renames leaves no mismatched pair.
      rmSync(join(dir, 'manifest.json'), { force: true });
      commitTempFile(tmp, modulePath);
    } finally {
      rmSync(tmp, { force: true });
    }
    writeFileAtomic(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, 0o600);
    return { manifest, modulePath };
  }
}
