import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

/** Every module this agent loads is named livegraft_<kernel id prefix>_l<level>. */
export const MODULE_PREFIX = 'livegraft_';
const NAME_RE = /^livegraft_([0-9a-f]{12})_l([0-9]{1,7})$/;

export interface PatchState {
  name: string;
  enabled: boolean;
  transition: boolean;
}

/** Splits a livegraft module name into its kernel id prefix and level. */
export function parseModuleName(name: string): { kernelPrefix: string; level: number } | undefined {
  const m = NAME_RE.exec(name);
  if (m === null) return undefined;
  return { kernelPrefix: m[1] ?? '', level: Number(m[2]) };
}

/**
 * The kernel's livepatch driver as seen through sysfs: the only source of
 * truth about what is applied. All paths hang off an injectable root.
 */
export class LivepatchSysfs {
  readonly sysRoot: string;

  constructor(sysRoot: string) {
    this.sysRoot = sysRoot;
  }

  get livepatchDir(): string {
    return join(this.sysRoot, 'kernel/livepatch');
  }

  patchDir(name: string): string {
    return join(this.livepatchDir, name);
  }

  moduleDir(name: string): string {
    return join(this.sysRoot, 'module', name);
  }

  /** Whether the kernel was built with CONFIG_LIVEPATCH (the directory exists even when empty). */
  supported(): boolean {
    return existsSync(this.livepatchDir);
  }

  listPatchNames(): string[] {
    try {
      return readdirSync(this.livepatchDir).sort();
    } catch {
      return [];
    }
  }

  /** The state of one patch, or undefined when its sysfs directory is gone. */
  readPatch(name: string): PatchState | undefined {
    const dir = this.patchDir(name);
    try {
      const enabled = readFileSync(join(dir, 'enabled'), 'utf8').trim() === '1';
      const transition = readFileSync(join(dir, 'transition'), 'utf8').trim() === '1';
      return { name, enabled, transition };
    } catch {
      return undefined;
    }
  }

  listPatches(): PatchState[] {
    return this.listPatchNames()
      .map((n) => this.readPatch(n))
      .filter((p): p is PatchState => p !== undefined);
  }

  /** Writing the opposite value mid-transition reverses it; writing 0 when done unpatches. */
  writeEnabled(name: string, enabled: boolean): void {
    try {
      writeFileSync(join(this.patchDir(name), 'enabled'), enabled ? '1' : '0');
    } catch (err) {
      throw new LivegraftError(
        'SYSFS_WRITE_FAILED',
        `cannot write ${enabled ? 1 : 0} to ${join(this.patchDir(name), 'enabled')}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  patchExists(name: string): boolean {
    return existsSync(this.patchDir(name));
  }

  moduleLoaded(name: string): boolean {
    return existsSync(this.moduleDir(name));
  }

  /** Loaded modules whose name starts with the prefix. */
  listModules(prefix = MODULE_PREFIX): string[] {
    try {
      return readdirSync(join(this.sysRoot, 'module'))
        .filter((n) => n.startsWith(prefix))
        .sort();
    } catch {
      return [];
    }
  }

  /** The module's reference count, or undefined when it is not loaded (or built in). */
  refcnt(name: string): number | undefined {
    try {
      const n = Number(readFileSync(join(this.moduleDir(name), 'refcnt'), 'utf8').trim());
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** Livegraft modules still loaded whose patch was replaced or disabled: they only wait for rmmod. */
  retiredModules(): string[] {
    return this.listModules().filter((name) => {
      const p = this.readPatch(name);
      return p === undefined || (!p.enabled && !p.transition);
    });
  }
}
