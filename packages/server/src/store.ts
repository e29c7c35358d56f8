import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Content-addressed module store: `<root>/<sha256>.ko`. A file only ever
 * appears complete (temp + fsync + rename), and its name is its hash, so a
 * present file never changes and readers need no locks.
 */
export class ModuleStore {
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  async init(): Promise<void> {
    await mkdir(this.#root, { recursive: true, mode: 0o700 });
  }

  /** Size in bytes of a stored module, or undefined if it is not stored. */
  async size(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.#path(sha256))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Stores bytes the caller has already hashed; returns false if they were there already. */
  async put(sha256: string, bytes: Uint8Array): Promise<boolean> {
    const dest = this.#path(sha256);
    if ((await this.size(sha256)) !== undefined) return false;
    const tmp = join(this.#root, `.tmp-${sha256}-${randomBytes(6).toString('hex')}`);
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await this.#syncDir();
    return true;
  }

  /** Opens a stored module for reading, or returns undefined if unknown. The caller closes the handle. */
  async open(sha256: string): Promise<{ handle: FileHandle; size: number } | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.#path(sha256), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return { handle, size: (await handle.stat()).size };
  }

  async read(sha256: string): Promise<Buffer | undefined> {
    const opened = await this.open(sha256);
    if (opened === undefined) return undefined;
    try {
      return await opened.handle.readFile();
    } finally {
      await opened.handle.close();
    }
  }

  #path(sha256: string): string {
    // Routes validate this already; the store refuses anything that could escape its root regardless.
    if (!SHA256_HEX.test(sha256)) throw new LivegraftError('VALIDATION_FAILED', `not a sha256 hex digest: ${sha256}`);
    return join(this.#root, `${sha256}.ko`);
  }

  // Makes the rename itself durable.
  async #syncDir(): Promise<void> {
    const dir = await open(this.#root, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
