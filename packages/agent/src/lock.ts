import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { waitFor, type Clock } from './clock.ts';

/** How long a second command waits for the first before giving up with BUSY. */
export const LOCK_WAIT_TIMEOUT_MS = 15_000;
const LOCK_POLL_MS = 200;

function holderAlive(path: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path, 'utf8').trim());
  } catch {
    return true; // being written right now: treat as held
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryCreate(path: string): boolean {
  try {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  }
}

/**
 * One kernel-mutating command at a time per host (the daemon and a manual
 * `update` must not interleave insmods or state writes). Node has no flock,
 * so this is an O_EXCL pid file; a holder that died is detected by pid.
 * Returns the release function.
 */
export async function acquireLock(path: string, clock: Clock, timeoutMs = LOCK_WAIT_TIMEOUT_MS): Promise<() => void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const got = await waitFor(
    clock,
    () => {
      if (tryCreate(path)) return true;
      if (!holderAlive(path)) {
        rmSync(path, { force: true });
        return tryCreate(path);
      }
      return false;
    },
    timeoutMs,
    LOCK_POLL_MS,
  );
  if (!got) {
    let holder = '?';
    try {
      holder = readFileSync(path, 'utf8').trim();
    } catch {
      // gone meanwhile
    }
    throw new LivegraftError('BUSY', `another livegraft-agent (pid ${holder}) holds ${path}; try again later`);
  }
  return () => rmSync(path, { force: true });
}
