import { open, readFile, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { LivegraftError } from '@livegraft/protocol';

const POLL_MS = 250;
/** A takeover marker older than this belongs to a process that died mid-takeover. */
const TAKEOVER_STALE_MS = 30_000;

/** Locks held by this process, so that callers within it queue instead of waiting on their own pid. */
const inProcess = new Map<string, Promise<unknown>>();

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function holder(file: string): Promise<number | undefined> {
  try {
    return Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
  } catch {
    return undefined;
  }
}

async function tryCreate(file: string): Promise<boolean> {
  try {
    const h = await open(file, 'wx', 0o644);
    try {
      await h.writeFile(`${process.pid}\n`);
    } finally {
      await h.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Removes `file` if its holder is dead, guarded so two takers never both remove a fresh lock. */
async function takeOverStale(file: string, deadPid: number): Promise<void> {
  const marker = `${file}.takeover`;
  if (!(await tryCreate(marker))) {
    const st = await stat(marker).catch(() => undefined);
    if (st !== undefined && Date.now() - st.mtimeMs > TAKEOVER_STALE_MS) await rm(marker, { force: true });
    return;
  }
  try {
    const now = await holder(file);
    if (now === deadPid || (Number.isNaN(deadPid) && now !== undefined && Number.isNaN(now)))
      await rm(file, { force: true });
  } finally {
    await rm(marker, { force: true });
  }
}

/**
 * Runs `fn` holding an exclusive lock file (containing the holder's pid). A lock whose pid
 * is dead is taken over. Waits at most `timeoutMs` for a live holder.
 */
export async function withFileLock<T>(
  file: string,
  fn: () => Promise<T>,
  opts: { timeoutMs: number; signal?: AbortSignal | undefined; what: string },
): Promise<T> {
  const before = inProcess.get(file) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chain = before.then(() => mine);
  inProcess.set(file, chain);
  try {
    await before.catch(() => undefined);
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      if (await tryCreate(file)) break;
      const pid = await holder(file);
      if (pid !== undefined && !Number.isNaN(pid) && !alive(pid)) {
        await takeOverStale(file, pid);
        continue;
      }
      if (pid !== undefined && Number.isNaN(pid)) {
        // A holder writes its pid right after creating the file; an old empty lock is a crash's leftover.
        const st = await stat(file).catch(() => undefined);
        if (st !== undefined && Date.now() - st.mtimeMs > TAKEOVER_STALE_MS) {
          await takeOverStale(file, Number.NaN);
          continue;
        }
      }
      if (opts.signal?.aborted === true)
        throw new LivegraftError('CANCELLED', `cancelled while waiting for ${opts.what}`);
      if (Date.now() > deadline)
        throw new LivegraftError(
          'LOCK_TIMEOUT',
          `${opts.what} is held by pid ${pid} for more than ${Math.round(opts.timeoutMs / 1000)} s`,
          {
            details: { file, pid },
          },
        );
      await sleep(POLL_MS);
    }
    try {
      return await fn();
    } finally {
      if ((await holder(file)) === process.pid) await rm(file, { force: true });
    }
  } finally {
    release();
    if (inProcess.get(file) === chain) inProcess.delete(file);
  }
}
