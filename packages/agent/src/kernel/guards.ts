import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Kernel command-line words that turn the agent's patching off (like kpatch.enable=0). */
export const CMDLINE_KILL_SWITCHES: readonly string[] = ['livegraft=off', 'livegraft=0'];
const MAX_CMDLINE_BYTES = 64 * 1024;

export interface KillSwitch {
  by: 'cmdline' | 'file';
  detail: string;
}

/**
 * The operator's kill switches: `livegraft=off` on the kernel command line
 * (for a host that crashed at boot) or the disable file. Either one stops
 * boot, update and run from loading anything; unload still works.
 */
export function readKillSwitch(procRoot: string, disableFile: string): KillSwitch | undefined {
  try {
    const words = readFileSync(join(procRoot, 'cmdline'), 'utf8').slice(0, MAX_CMDLINE_BYTES).trim().split(/\s+/);
    const hit = words.find((w) => CMDLINE_KILL_SWITCHES.includes(w));
    if (hit !== undefined) return { by: 'cmdline', detail: `kernel command line has ${hit}` };
  } catch {
    // no cmdline: not disabled by it
  }
  if (existsSync(disableFile)) return { by: 'file', detail: `${disableFile} exists` };
  return undefined;
}

/** The kernel's boot id; a different one than the journal's means the host rebooted in between. */
export function readBootId(procRoot: string): string {
  try {
    return readFileSync(join(procRoot, 'sys/kernel/random/boot_id'), 'utf8').trim().slice(0, 64);
  } catch {
    return '';
  }
}
