import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { waitFor, type Clock } from '../lib/clock.ts';
import { fsyncDir, tempPathFor } from '../lib/fs-atomic.ts';
import { stateIoError } from './state-io.ts';

/** How long a second command waits for the first before giving up with BUSY. */
export const LOCK_WAIT_TIMEOUT_MS = 15_000;
const LOCK_POLL_MS = 200;
/** A takeover marker older than this was left by a process killed mid-takeover (which takes microseconds). */
const TAKEOVER_STALE_MS = 10_000;
/** A lock file is a short line; anything longer is not one of ours. */
const MAX_LOCK_BYTES = 256;

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
let ownStart: string | undefined;
const ownContent = (bootId: string): string =>
  `${process.pid} ${(ownStart ??= processStart(process.pid) ?? '0')} ${bootId || '-'}\n`;

function readHolder(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').slice(0, MAX_LOCK_BYTES);
  } catch {
    return undefined;
  }
}

/**
 * Why the lock content does not name a live agent, or undefined when it
 * does. The content is "<pid> <start time> <boot id>"; the file is complete
 * the moment it exists (see tryCreate), so an empty or garbled one was left
 * by a crash or power cut and is stale.
 */
export function staleReason(content: string, bootId: string): string | undefined {
  // The boot id is absent in locks written by agents before it was recorded.
  const m = /^([1-9][0-9]{0,9}) ([0-9]{1,20})(?: ([0-9a-f-]{1,64}))?\n?$/.exec(content);
  if (m === null) {
    return content.trim() === ''
      ? 'the lock file is empty (left by a crash or power cut)'
      : 'the lock file holds no valid owner (left by a crash or power cut)';
  }
  const [, pidText, start, holderBoot] = m;
  if (holderBoot !== undefined && holderBoot !== '-' && bootId !== '' && holderBoot !== bootId)
    return 'it was taken before the last reboot';
  const pid = Number(pidText);
  if (pid === process.pid) return start === ownStart ? undefined : `pid ${pid} is now this process`;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return `its owner (pid ${pid}) is not running`;
  }
  const now = processStart(pid);
  if (now === undefined) return `its owner (pid ${pid}) is not running`;
  if (now !== start) return `pid ${pid} now belongs to another process, not the agent that took the lock`;
  return undefined;
}

/**
 * Creates `path` holding `content`, or returns false if it exists. The
 * content is written and flushed to a temp file first and then hard-linked
 * into place, so the lock never exists without its owner on disk (a power
 * cut cannot leave an empty lock that looks held).
 */
function tryCreate(path: string, content: string): boolean {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o600);
    writeSync(fd, content);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    fsyncDir(dirname(path));
    return true;
  } catch (err) {
    throw stateIoError('create the lock', path, err, 'untouched');
  } finally {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
  }
}

/**
 * Removes a dead holder's lock. Two waiters may both see it dead; the
 * takeover marker (created the same way) makes sure only one of them deletes
 * it, and it re-reads the lock first so it never deletes a lock just taken by
 * a live process.
 */
function takeOverStale(path: string, deadContent: string, mine: string): boolean {
  const marker = `${path}.takeover`;
  if (!tryCreate(marker, mine)) {
    try {
      if (Date.now() - statSync(marker).mtimeMs > TAKEOVER_STALE_MS) rmSync(marker, { force: true });
    } catch {
      // gone meanwhile
    }
    return false;
  }
  try {
    if (readHolder(path) !== deadContent) return false;
    rmSync(path, { force: true });
    return true;
  } finally {
    rmSync(marker, { force: true });
  }
}

export interface LockOptions {
  timeoutMs?: number;
  /** The kernel's boot id: a lock taken in an earlier boot is stale whatever its pid. */
  bootId?: string;
  /** Told when a stale lock is taken over, and why it was stale. */
  onStale?: (message: string) => void;
}

/**
 * One kernel-mutating command at a time per host (the daemon and a manual
 * `update` must not interleave insmods or state writes). Node has no flock,
 * so this is an exclusively created file holding "<pid> <start time> <boot
 * id>"; a lock whose owner is not a live agent process (dead, a recycled
 * pid, an earlier boot, or an empty/garbled file) is stale and taken over.
 * Returns the release function.
 */
export async function acquireLock(path: string, clock: Clock, opts: LockOptions = {}): Promise<() => void> {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw stateIoError('create the state directory', dirname(path), err, 'untouched');
  }
  const bootId = opts.bootId ?? '';
  const mine = ownContent(bootId);
  const got = await waitFor(
    clock,
    () => {
      if (tryCreate(path, mine)) return true;
      const holder = readHolder(path);
      if (holder === undefined) return false;
      const reason = staleReason(holder, bootId);
      if (reason === undefined) return false;
      if (takeOverStale(path, holder, mine)) opts.onStale?.(`removed the stale lock ${path}: ${reason}`);
      return tryCreate(path, mine);
    },
    opts.timeoutMs ?? LOCK_WAIT_TIMEOUT_MS,
    LOCK_POLL_MS,
  );
  if (!got) {
    const holder = readHolder(path)?.trim().split(/\s+/)[0] ?? '?';
    throw new LivegraftError('BUSY', `another livegraft-agent (pid ${holder}) holds ${path}; try again later`);
  }
  return () => {
    // Only our own lock: never delete one a later holder took after ours was (wrongly) judged stale.
    try {
      if (readHolder(path) === mine) {
        rmSync(path, { force: true });
        fsyncDir(dirname(path));
      }
    } catch {
      // A lock left behind is stale for the next run (dead owner); never hide the command's own outcome.
    }
  };
}
