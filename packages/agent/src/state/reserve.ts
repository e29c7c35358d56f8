import { closeSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncDir, tempPathFor } from '../lib/fs-atomic.ts';
import { stateIoError } from './state-io.ts';

/**
 * Room kept on the state filesystem for what must be written after the
 * kernel changed: the remaining journal steps and state.json (a few KB each,
 * each a new file before its rename), with a wide margin for 64 KB blocks.
 */
export const RESERVE_BYTES = 256 * 1024;
const CHUNK = 64 * 1024;

/**
 * <state>/reserve: a file of RESERVE_BYTES kept before every kernel change.
 * If a write after the kernel changed hits a full disk, the reserve is freed
 * and the write retried, so the journal and the state always follow the
 * kernel. A disk too full for the reserve refuses the change up front.
 */
export class SpaceReserve {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'reserve');
  }

  /** Makes sure the reserve is on disk. Throws DISK_FULL (the kernel untouched) if it does not fit. */
  ensure(): void {
    try {
      if (statSync(this.path).size >= RESERVE_BYTES) return;
    } catch {
      // absent: create it
    }
    const tmp = tempPathFor(this.path);
    let fd: number | undefined;
    try {
      fd = openSync(tmp, 'wx', 0o600);
      const zeros = Buffer.alloc(CHUNK);
      for (let off = 0; off < RESERVE_BYTES;) off += writeSync(fd, zeros, 0, Math.min(CHUNK, RESERVE_BYTES - off));
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      renameSync(tmp, this.path);
      fsyncDir(dirname(this.path));
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      rmSync(tmp, { force: true });
      throw stateIoError(
        `keep ${RESERVE_BYTES / 1024} KiB free for the journal and state before changing the kernel, in`,
        dirname(this.path),
        err,
        'untouched',
      );
    }
  }

  /** Frees the reserve for a write that must not fail; returns whether there was one. */
  release(): boolean {
    try {
      statSync(this.path);
    } catch {
      return false;
    }
    rmSync(this.path, { force: true });
    return true;
  }
}
