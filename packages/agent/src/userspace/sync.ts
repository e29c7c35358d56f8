import { join } from 'node:path';
import type { UserspaceDesired } from '@livegraft/protocol';
import type { TufSession } from '../delivery/tuf-client.ts';
import { fetchUserspaceLevel } from './delivery.ts';
import { UserspaceManager, type ProcessOutcome } from './manager.ts';
import { scanProcesses } from './scan.ts';

export interface UserspaceSyncDeps {
  stateDir: string;
  /** Path of the native helper. */
  helper: string;
  /** Opens a TUF session (verified against the pinned root) to fetch the signed levels. */
  openSession: () => Promise<Pick<TufSession, 'userspaceTarget' | 'download' | 'close'>>;
  log: (level: 'info' | 'warn', msg: string) => void;
  procRoot?: string;
}

/** What one pass over the server's user-space answer did. */
export interface UserspaceSyncResult {
  /** Build-ids whose wanted level changed (a level fetched and installed, or rolled back). */
  changed: string[];
  processes: ProcessOutcome[];
  /** Per build-id that could not be brought to the wanted level: why. */
  errors: { buildId: string; message: string }[];
}

/** For logs: which level of which build, and why the server wants it. */
function describe(d: UserspaceDesired): string {
  return `level ${d.level} of ${d.buildId.slice(0, 12)} (${d.reason})`;
}

/**
 * Brings this host's user-space libraries to what the server wants (the
 * check-in answer's `userspace`): for each build-id that a process here maps,
 * or that has a level installed, the wanted level is fetched through TUF
 * (signed manifest, hash-checked code object), installed and applied to every
 * process of that build; level 0 restores them. A level is never lowered
 * unless the server says an operator allowed it (`allowDowngrade`: a pin, a
 * rollback, a halt). A level the local crash-loop guard halted is not applied
 * again until `userspace unhalt`. Build-ids the server does not mention are
 * left as they are. One build's failure does not stop the others.
 */
export async function syncUserspace(
  desired: readonly UserspaceDesired[],
  deps: UserspaceSyncDeps,
): Promise<UserspaceSyncResult> {
  const out: UserspaceSyncResult = { changed: [], processes: [], errors: [] };
  if (desired.length === 0) return out;
  const m = new UserspaceManager({
    stateDir: deps.stateDir,
    helper: deps.helper,
    ...(deps.procRoot === undefined ? {} : { procRoot: deps.procRoot }),
    log: (msg) => deps.log('warn', msg),
  });
  return m.exclusive(async () => {
    const state = m.store.load();
    const todo = desired.filter((d) => {
      const lib = state.libraries[d.buildId];
      if (lib?.level === d.level) return false;
      if (d.level === 0) return lib !== undefined;
      if (lib !== undefined && d.level < lib.level && !d.allowDowngrade) {
        deps.log('warn', `user-space ${describe(d)} is below the installed level ${lib.level}; not going down`);
        return false;
      }
      if (lib?.halted?.level === d.level) return false;
      return true;
    });
    if (todo.length === 0) return out;
    // Only builds that run here (or that have a level installed) are fetched.
    const running = new Set(
      scanProcesses({
        ...(deps.procRoot === undefined ? {} : { procRoot: deps.procRoot }),
        buildIds: new Set(todo.map((d) => d.buildId)),
        skipPids: new Set([process.pid]),
      }).map((p) => p.buildId),
    );
    const wanted = todo.filter((d) => state.libraries[d.buildId] !== undefined || running.has(d.buildId));
    if (wanted.length === 0) return out;
    let session: Awaited<ReturnType<UserspaceSyncDeps['openSession']>> | undefined;
    try {
      for (const d of wanted) {
        try {
          if (d.level === 0) {
            out.processes.push(...(await m.rollback(d.buildId)));
          } else {
            session ??= await deps.openSession();
            const manifest = await fetchUserspaceLevel(session, d, join(m.store.dir, 'downloads'));
            out.processes.push(...(await m.apply(manifest)));
          }
          out.changed.push(d.buildId);
          deps.log('info', `user-space ${describe(d)} is now wanted on this host`);
        } catch (e) {
          const message = (e as Error).message;
          out.errors.push({ buildId: d.buildId, message });
          deps.log('warn', `user-space ${describe(d)} not applied: ${message}`);
        }
      }
    } finally {
      session?.close();
    }
    return out;
  });
}
