import { readFile, realpath, stat } from 'node:fs/promises';
import { extname, join, posix, sep } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { LivegraftError } from '@livegraft/protocol';

/** The built dashboard is a few hundred KB; anything this big in it is a mistake, not something to serve. */
export const MAX_STATIC_FILE_BYTES = 8 * 1024 * 1024;
/** Longer request paths are refused before touching the file system. */
const MAX_PATH_CHARS = 512;
/** Compressed copies kept in memory (the build has a handful of files). */
const MAX_GZIP_CACHE = 64;
/** Smaller files gain nothing from compression. */
const MIN_GZIP_BYTES = 1024;
/** Hashed asset names never change content, so browsers may keep them for a year. */
export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';

const gzipAsync = promisify(gzip);

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.svg', '.txt', '.webmanifest']);

export interface StaticFile {
  body: Buffer;
  contentType: string;
  etag: string;
  cacheControl: string;
  /** Set when body is gzip-compressed. */
  encoding?: 'gzip';
}

/**
 * Serves files from the built dashboard directory: path-traversal safe
 * (normalised, kept under the root after resolving symlinks), bounded in
 * size, with content types, ETags and optional gzip.
 */
export class StaticFiles {
  readonly #root: string;
  readonly #gzipCache = new Map<string, Buffer>();

  constructor(root: string) {
    this.#root = root;
  }

  get root(): string {
    return this.#root;
  }

  /** True once index.html exists (the dashboard was built). */
  async built(): Promise<boolean> {
    return (await this.#file('/index.html')) !== undefined;
  }

  /**
   * The file for a URL path, or undefined when there is none. Throws
   * BAD_REQUEST for paths that try to leave the root or cannot be decoded.
   */
  async get(urlPath: string, acceptsGzip: boolean): Promise<StaticFile | undefined> {
    const found = await this.#file(urlPath);
    if (found === undefined) return undefined;
    const { path, size, mtimeMs } = found;
    const ext = extname(path).toLowerCase();
    const etag = `"${size.toString(16)}-${Math.floor(mtimeMs).toString(16)}"`;
    const file: StaticFile = {
      body: await readFile(path),
      contentType: TYPES[ext] ?? 'application/octet-stream',
      etag,
      cacheControl: urlPath.startsWith('/assets/') ? IMMUTABLE_CACHE : 'no-cache',
    };
    if (!acceptsGzip || !COMPRESSIBLE.has(ext) || size < MIN_GZIP_BYTES) return file;
    const key = `${path}\0${etag}`;
    let zipped = this.#gzipCache.get(key);
    if (zipped === undefined) {
      zipped = await gzipAsync(file.body);
      if (this.#gzipCache.size >= MAX_GZIP_CACHE) this.#gzipCache.clear();
      this.#gzipCache.set(key, zipped);
    }
    return { ...file, body: zipped, encoding: 'gzip' };
  }

  async #file(urlPath: string): Promise<{ path: string; size: number; mtimeMs: number } | undefined> {
    if (urlPath.length > MAX_PATH_CHARS) throw new LivegraftError('BAD_REQUEST', 'the path is too long');
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      throw new LivegraftError('BAD_REQUEST', 'the path is not valid percent-encoding');
    }
    if (decoded.includes('\0') || decoded.includes('\\') || decoded.split('/').includes('..')) {
      throw new LivegraftError('BAD_REQUEST', 'the path may not contain "..", backslashes or NUL');
    }
    const relative = posix.normalize(`/${decoded}`).slice(1);
    if (relative === '' || relative.endsWith('/')) return undefined;
    const candidate = join(this.#root, ...relative.split('/'));
    let real: string;
    let rootReal: string;
    try {
      [real, rootReal] = await Promise.all([realpath(candidate), realpath(this.#root)]);
    } catch {
      return undefined;
    }
    // A symlink in the build pointing outside it is not served.
    if (!real.startsWith(rootReal + sep)) return undefined;
    const st = await stat(real).catch(() => undefined);
    if (st === undefined || !st.isFile()) return undefined;
    if (st.size > MAX_STATIC_FILE_BYTES) {
      throw new Error(`dashboard file ${relative} is larger than ${MAX_STATIC_FILE_BYTES} bytes; not served`);
    }
    return { path: real, size: st.size, mtimeMs: st.mtimeMs };
  }
}
