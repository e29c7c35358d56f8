import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LivegraftError, type UserspaceRefusal } from '@livegraft/protocol';
import { writeFileAtomic } from '../lib/fs-atomic.ts';
import type { SavedEntry } from './native.ts';

/** A process the helper patched: enough to undo it exactly. */
export interface PatchedProcess {
  pid: number;
  startTime: number;
  comm: string;
  base: number;
  path: string;
  deleted: boolean;
  level: number;
  code: string;
  functions: SavedEntry[];
  patchedAt: string;
  stopUs: number;
}

/** A process the helper would not patch, and why. */
export interface RefusedProcess {
  pid: number;
  startTime: number;
  comm: string;
  level: number;
  reason: UserspaceRefusal;
  step: string;
  errno: number;
  message: string;
  at: string;
}

export interface LibraryState {
  soname: string;
  /** The level wanted for this build (0: none, every process restored). */
  level: number;
  /** Set by the crash-loop guard: this level is not applied to more processes of this build. */
  halted?: { level: number; pid: number; comm: string; at: string };
  patched: PatchedProcess[];
  refused: RefusedProcess[];
}

export interface UserspaceState {
  schema: 1;
  libraries: Record<string, LibraryState>;
}

/** One change since state.json was written: appended at once, so a crash of the agent loses no saved bytes. */
export type JournalEntry =
  | { op: 'patched'; buildId: string; process: PatchedProcess }
  | { op: 'restored'; buildId: string; pid: number; startTime: number };

/**
 * stateDir/userspace/: state.json, journal.jsonl (changes since), and the
 * installed levels under levels/<build-id>/<level>/. The journal is not
 * fsynced: what it protects (the bytes to restore in running processes)
 * does not outlive a power loss either.
 */
export class UserspaceStore {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'userspace');
  }

  levelDir(buildId: string, level: number): string {
    return join(this.dir, 'levels', buildId, String(level));
  }

  load(): UserspaceState {
    let s: UserspaceState = { schema: 1, libraries: {} };
    let text: string | undefined;
    try {
      text = readFileSync(join(this.dir, 'state.json'), 'utf8');
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      try {
        s = JSON.parse(text) as UserspaceState;
        if (s.schema !== 1 || typeof s.libraries !== 'object') throw new Error('unknown schema');
      } catch (e) {
        throw new LivegraftError(
          'USERSPACE_STATE',
          `cannot read ${join(this.dir, 'state.json')}: ${(e as Error).message}`,
        );
      }
    }
    let journal: string;
    try {
      journal = readFileSync(join(this.dir, 'journal.jsonl'), 'utf8');
    } catch {
      return s;
    }
    const same = (p: { pid: number; startTime: number }, q: { pid: number; startTime: number }) =>
      p.pid === q.pid && p.startTime === q.startTime;
    for (const line of journal.split('\n')) {
      let e: JournalEntry;
      try {
        e = JSON.parse(line) as JournalEntry;
      } catch {
        continue; // empty, or cut short by a crash
      }
      const lib = s.libraries[e.buildId];
      if (lib === undefined) continue;
      if (e.op === 'patched') {
        lib.patched = lib.patched.filter((p) => !same(p, e.process));
        lib.patched.push(e.process);
      } else {
        lib.patched = lib.patched.filter((p) => !same(p, e));
      }
    }
    return s;
  }

  /** Records one change at once (cheap: no fsync, no rewrite of state.json). */
  append(e: JournalEntry): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    appendFileSync(join(this.dir, 'journal.jsonl'), `${JSON.stringify(e)}\n`, { mode: 0o600 });
  }

  /** Writes the whole state and drops the journal it now contains. */
  save(s: UserspaceState): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(join(this.dir, 'state.json'), `${JSON.stringify(s, null, 2)}\n`, 0o600);
    rmSync(join(this.dir, 'journal.jsonl'), { force: true });
  }
}
