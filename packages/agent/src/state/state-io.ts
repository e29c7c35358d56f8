import { LivegraftError } from '@livegraft/protocol';

/** errno codes that mean the filesystem itself is damaged or gone read-only. */
const BROKEN_FS = new Set(['EUCLEAN', 'EIO', 'EROFS', 'EBADMSG', 'ENOTRECOVERABLE', 'ESTALE']);
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

/** The errno name of a Node fs error, or undefined for anything else. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** What an operator should do about an errno on the state filesystem. */
function hintFor(errno: string | undefined, path: string): string {
  if (errno !== undefined && NO_SPACE.has(errno)) return `free space on the filesystem holding ${path}`;
  if (errno !== undefined && BROKEN_FS.has(errno)) {
    return `the filesystem holding ${path} needs checking: unmount it and run fsck (check free space too)`;
  }
  if (errno === 'EACCES' || errno === 'EPERM') return `check the owner and mode of ${path}; the agent runs as root`;
  return `check the filesystem holding ${path} (fsck, free space)`;
}

/**
 * A clear error for an I/O failure on the agent's own state (lock, journal,
 * state file, cache): it names the path, the errno and what to do, and says
 * whether the kernel was touched. ENOSPC/EDQUOT are DISK_FULL, the rest
 * STATE_IO_ERROR. Never a stack trace for a broken disk.
 */
export function stateIoError(
  what: string,
  path: string,
  err: unknown,
  kernel?: 'untouched' | 'changed',
): LivegraftError {
  if (err instanceof LivegraftError) return err;
  const errno = errnoOf(err);
  const why = (err as Error | undefined)?.message ?? String(err);
  const code = errno !== undefined && NO_SPACE.has(errno) ? 'DISK_FULL' : 'STATE_IO_ERROR';
  const kernelNote =
    kernel === 'untouched'
      ? '; the kernel was not changed'
      : kernel === 'changed'
        ? '; the kernel already changed: the journal keeps the step reached, and the next run settles it'
        : '';
  return new LivegraftError(
    code,
    `cannot ${what} ${path}: ${errno ?? 'error'} (${why})${kernelNote}. Hint: ${hintFor(errno, path)}`,
    { cause: err, details: { path, errno: errno ?? null, kernelChanged: kernel === 'changed' } },
  );
}

/** An fs error Node raised with its own path (an ErrnoException), as a clear state I/O error. */
export function asStateIoError(err: unknown, fallbackPath: string): LivegraftError | undefined {
  if (err instanceof LivegraftError) return undefined;
  const errno = errnoOf(err);
  if (errno === undefined) return undefined;
  const e = err as NodeJS.ErrnoException;
  const path = typeof e.path === 'string' ? e.path : fallbackPath;
  const what = typeof e.syscall === 'string' ? `${e.syscall}` : 'use';
  return stateIoError(what, path, err);
}
