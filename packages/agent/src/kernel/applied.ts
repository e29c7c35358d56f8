import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { KernelIdentity } from '@livegraft/protocol';
import { parseModuleName, type LivepatchSysfs, type PatchState } from './sysfs.ts';

export interface AppliedPatch {
  /** Level of the enabled, settled livegraft patch for this kernel; 0 when none. */
  level: number;
  name: string | undefined;
  /** A livegraft patch is mid-transition. */
  inTransition: boolean;
  /** Every patch the kernel lists, ours or not. */
  patches: PatchState[];
  /** Our modules that are loaded without an active patch (awaiting rmmod). */
  retired: string[];
}

/** What the kernel says is applied: sysfs is the truth, never our state file. */
export function readApplied(sysfs: LivepatchSysfs, kernel: KernelIdentity): AppliedPatch {
  const prefix = kernel.id.slice(0, 12);
  const patches = sysfs.listPatches();
  let level = 0;
  let name: string | undefined;
  let inTransition = false;
  for (const p of patches) {
    const parsed = parseModuleName(p.name);
    if (parsed === undefined || parsed.kernelPrefix !== prefix) continue;
    if (p.transition) inTransition = true;
    if (p.enabled && !p.transition && parsed.level > level) {
      level = parsed.level;
      name = p.name;
    }
  }
  return { level, name, inTransition, patches, retired: sysfs.retiredModules() };
}

export function readUptimeSec(procRoot: string): number {
  try {
    const n = Number(readFileSync(join(procRoot, 'uptime'), 'utf8').split(/\s+/)[0]);
    if (Number.isFinite(n) && n >= 0) return n;
  } catch {
    // fall through
  }
  return os.uptime();
}
