import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Tasks listed in a TRANSITION_STALLED report. */
export const MAX_STALLED_TASKS = 20;
/** /proc entries examined; a big host has tens of thousands of tasks. */
const MAX_PROC_ENTRIES = 200_000;
const MAX_STACK_CHARS = 2048;

export interface StalledTask {
  pid: number;
  comm: string;
  patchState: number;
  stack: string;
}

function read(path: string, max: number): string | undefined {
  try {
    return readFileSync(path, 'utf8').slice(0, max);
  } catch {
    return undefined;
  }
}

/**
 * Tasks that have not switched yet: /proc/<pid>/patch_state is -1 when no
 * transition runs, else 0 (unpatched) or 1 (patched). During a transition
 * every task shows the target state once it switched, so anything differing
 * from the majority is a blocker; we report all not equal to `target`.
 */
export function collectStalledTasks(procRoot: string, target: 0 | 1 = 1): StalledTask[] {
  let entries: string[];
  try {
    entries = readdirSync(procRoot).slice(0, MAX_PROC_ENTRIES);
  } catch {
    return [];
  }
  const out: StalledTask[] = [];
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const state = read(join(procRoot, entry, 'patch_state'), 16)?.trim();
    if (state === undefined || state === '-1' || state === String(target)) continue;
    out.push({
      pid: Number(entry),
      comm: read(join(procRoot, entry, 'comm'), 64)?.trim() ?? '?',
      patchState: Number(state),
      stack: read(join(procRoot, entry, 'stack'), MAX_STACK_CHARS)?.trimEnd() ?? '(stack unreadable)',
    });
    if (out.length >= MAX_STALLED_TASKS) break;
  }
  return out;
}

export function formatStalledTasks(tasks: StalledTask[]): string {
  if (tasks.length === 0) return 'no blocking task found in /proc (it may have switched meanwhile)';
  return tasks
    .map((t) => `  pid ${t.pid} (${t.comm}) patch_state=${t.patchState}\n${t.stack.replace(/^/gm, '    ')}`)
    .join('\n');
}
