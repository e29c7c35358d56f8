import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { UserspaceManager, WatchedProcess } from './manager.ts';
import { processEnded } from './scan.ts';

/** Processes watched at most (the most recently patched); a re-scan still sees the others. */
export const MAX_WATCHED = 2048;

/**
 * Between the daemon's re-scans, looks at the processes patched within the
 * crash-loop guard's window (their /proc/PID/stat: still there, same start
 * time, not a zombie) so that the guard decides on when a process actually
 * ended, not on when the next re-scan noticed. The list is re-read only when
 * the state files changed; each look costs one small read per watched process.
 */
export class DeathWatch {
  private list: WatchedProcess[] = [];
  private stamp = '';

  constructor(
    private readonly m: UserspaceManager,
    private readonly max = MAX_WATCHED,
  ) {}

  /** One look. Resolves true when a process was seen to end and the guard halted a level for it. */
  async tick(): Promise<boolean> {
    this.refresh();
    if (this.list.length === 0) return false;
    const now = this.m.now();
    const ended: WatchedProcess[] = [];
    this.list = this.list.filter((p) => {
      if (now - p.patchedAtMs > this.m.crashWindowMs) return false;
      if (!processEnded(this.m.procRoot, p.pid, p.startTime)) return true;
      ended.push(p);
      return false;
    });
    if (ended.length === 0) return false;
    for (const p of ended) this.m.noteEnded(p, now);
    return this.m.exclusive(async () => this.m.guardNow());
  }

  /** Re-reads the watch list when state.json or its journal changed (a pass, a check-in, a guard). */
  private refresh(): void {
    const stamp = ['state.json', 'journal.jsonl']
      .map((f) => {
        try {
          const st = statSync(join(this.m.store.dir, f));
          return `${st.mtimeMs}/${st.size}/${st.ino}`;
        } catch {
          return '-';
        }
      })
      .join(' ');
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    this.list = this.m.watchList(this.max);
  }
}
