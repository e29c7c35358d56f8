import { readFile, stat } from 'node:fs/promises';

/** Files up to this size are kept in memory once read; larger ones are streamed from disk every time. */
export const MAX_CACHED_FILE_BYTES = 1024 * 1024;
/** All cached files together; the least recently served go first. */
export const MAX_CACHED_BYTES = 64 * 1024 * 1024;

interface Entry {
  ino: number;
  size: number;
  mtimeMs: number;
  bytes: Buffer;
}

export type Lookup =
  /** Not a regular file (absent, a directory, unreadable). */
  | { kind: 'missing' }
  /** Bytes to send (from memory, or just read and now kept). */
  | { kind: 'bytes'; bytes: Buffer }
  /** Too big to keep: the caller streams it; `size` is what stat said. */
  | { kind: 'stream'; size: number };

/**
 * The mirror's small files (metadata, most modules) in memory. Every request
 * still stats the file, and a copy whose inode, size or mtime no longer
 * match is read again, so a sync that renames new files in is served at
 * once. A fleet asking for the same few files thousands of times then costs
 * one stat each instead of an open, a read stream and a close.
 */
export class MirrorFiles {
  readonly #entries = new Map<string, Entry>();
  readonly #maxFile: number;
  readonly #maxTotal: number;
  #total = 0;

  constructor(opts: { maxFileBytes?: number; maxTotalBytes?: number } = {}) {
    this.#maxFile = opts.maxFileBytes ?? MAX_CACHED_FILE_BYTES;
    this.#maxTotal = opts.maxTotalBytes ?? MAX_CACHED_BYTES;
  }

  /** Bytes held now (tests, diagnostics). */
  get cachedBytes(): number {
    return this.#total;
  }

  async lookup(file: string): Promise<Lookup> {
    const st = await stat(file).catch(() => undefined);
    if (st === undefined || !st.isFile()) {
      this.#drop(file);
      return { kind: 'missing' };
    }
    const have = this.#entries.get(file);
    if (have !== undefined && have.ino === st.ino && have.size === st.size && have.mtimeMs === st.mtimeMs) {
      // Most recently served last: Map keeps insertion order, so the oldest is first to go.
      this.#entries.delete(file);
      this.#entries.set(file, have);
      return { kind: 'bytes', bytes: have.bytes };
    }
    this.#drop(file);
    if (st.size > this.#maxFile) return { kind: 'stream', size: st.size };
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      return { kind: 'missing' };
    }
    // Replaced between the stat and the read: serve what was read, keep nothing (the next stat decides).
    if (bytes.length === st.size) {
      // Another request for the same file may have read and kept it meanwhile: one copy, counted once.
      this.#drop(file);
      this.#entries.set(file, { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, bytes });
      this.#total += bytes.length;
      this.#evict();
    }
    return { kind: 'bytes', bytes };
  }

  #drop(file: string): void {
    const e = this.#entries.get(file);
    if (e === undefined) return;
    this.#entries.delete(file);
    this.#total -= e.bytes.length;
  }

  #evict(): void {
    for (const file of this.#entries.keys()) {
      if (this.#total <= this.#maxTotal) return;
      this.#drop(file);
    }
  }
}
