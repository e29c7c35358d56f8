import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { waitFor, type Clock } from './clock.ts';

/** How long a second command waits for the first before giving up with BUSY. */
export const LOCK_WAIT_TIMEOUT_MS = 15_000;
const LOCK_POLL_MS = 200;
/** A takeover marker older than this was left by a process killed mid-takeover (which takes microseconds). */
const TAKEOVER_STALE_MS = 10_000;

/** The start time of a process (field 22 of /proc/<pid>/stat), so a recycled pid is not mistaken for the holder. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: fields resume after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

// This process's start time never changes: read it once, not at every lock.
let own: string | undefined;
const ownContent = (): string => (own ??= `${process.pid} ${processStart(process.pid) ?? '?'}\n`);

function readHolder(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether the process named in the lock content still runs (the same process, not a recycled pid). */
function holderAlive(content: string): boolean {
  const [pidText, start] = content.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return content.trim() === ''; // empty: being written right now
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = processStart(pid);
  return start === undefined || start === '?' || now === undefined || now === start;
}

function tryCreate(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  }
  try {
    writeSync(fd, content);
  } catch (err) {
    // An empty lock file would read as "being written" forever: never leave one behind.
    closeSync(fd);
    rmSync(path, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    throw new LivegraftError(
      code === 'ENOSPC' || code === 'EDQUOT' ? 'DISK_FULL' : 'LOCK_FAILED',
      `cannot write the lock ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  closeSync(fd);
  return true;
}

/**
 * Removes a dead holder's lock. Two waiters may both see it dead; the
 * takeover marker (O_EXCL) makes sure only one of them deletes it, and it
 * re-reads the lock first so it never deletes a lock just taken by a live
 * process.
 */
function takeOverStale(path: string, deadContent: string): void {
  const marker = `${path}.takeover`;
  if (!tryCreate(marker, ownContent())) {
    try {
      if (Date.now() - statSync(marker).mtimeMs > TAKEOVER_STALE_MS) rmSync(marker, { force: true });
    } catch {
      // gone meanwhile
    }
    return;
  }
  try {
    if (readHolder(path) === deadContent) rmSync(path, { force: true });
  } finally {
    rmSync(marker, { force: true });
  }
}

/**
 * One kernel-mutating command at a time per host (the daemon and a manual
 * `update` must not interleave insmods or state writes). Node has no flock,
 * so this is an O_EXCL file holding "<pid> <start time>"; a holder that died
 * (or whose pid was recycled) is detected and its lock taken over.
 * Returns the release function.
 */
export async function acquireLock(path: string, clock: Clock, timeoutMs = LOCK_WAIT_TIMEOUT_MS): Promise<() => void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const mine = ownContent();
  const got = await waitFor(
    clock,
    () => {
      if (tryCreate(path, mine)) return true;
      const holder = readHolder(path);
      if (holder !== undefined && !holderAlive(holder)) {
        takeOverStale(path, holder);
        return tryCreate(path, mine);
      }
      return false;
    },
    timeoutMs,
    LOCK_POLL_MS,
  );
  if (!got) {
    const holder = readHolder(path)?.trim().split(/\s+/)[0] ?? '?';
    throw new LivegraftError('BUSY', `another livegraft-agent (pid ${holder}) holds ${path}; try again later`);
  }
  return () => {
    // Only our own lock: never delete one a later holder took after ours was (wrongly) judged stale.
    if (readHolder(path) === mine) rmSync(path, { force: true });
  };
}
