import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * What makes this process's temp names its own: the pid, and a random tag
 * drawn once (another process, or one with a reused pid, draws another).
 * A counter then tells this process's names apart without a random draw
 * for each: the agent makes about twenty such names per kernel change.
 */
const tempTag = `${process.pid}.${randomBytes(4).toString('hex')}`;
let tempCount = 0;

/** A temp name beside `path`, so the final rename stays on one filesystem; never the same twice in a process. */
export function tempPathFor(path: string): string {
  tempCount += 1;
  return join(dirname(path), `.${basename(path)}.${tempTag}.${tempCount.toString(36)}.tmp`);
}

/** fsync a directory so a rename inside it survives a power cut. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Moves a fully written temp file into place: fsync, rename, fsync the directory. */
export function commitTempFile(tempPath: string, path: string): void {
  const fd = openSync(tempPath, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tempPath, path);
  fsyncDir(dirname(path));
}

/**
 * Writes a file so readers see either the old or the new content, never a
 * half-written one: temp file + fsync + rename + fsync of the directory.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}
