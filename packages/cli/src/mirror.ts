import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join, normalize, sep } from 'node:path';
import { Metadata, MetadataKind, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { LivegraftError, MAX_MODULE_BYTES, TUF_METADATA_PATH, TUF_TARGETS_PATH } from '@livegraft/protocol';
import { writeFileAtomic } from './keys.ts';
import { MirrorFiles } from './mirror-files.ts';

/** Same caps as the TUF client's defaults: a mirror must not be fed more than a client would accept. */
const MAX_BYTES = { root: 512_000, timestamp: 16_384, snapshot: 2_000_000, targets: 5_000_000 } as const;
/** Deadline of one download; a stalled upstream fails the sync instead of hanging it. */
const FETCH_TIMEOUT_MS = 120_000;
/** Root versions walked in one sync at most (tuf-js's maxRootRotations). */
const MAX_ROOT_ROTATIONS = 256;
const SERVE_REQUEST_TIMEOUT_MS = 5 * 60_000;

type JSONObject = Parameters<typeof Metadata.fromJSON>[1];

export interface SyncOptions {
  upstream: string;
  dir: string;
  /** Copy only the targets of these kernel ids (all when absent). Metadata is always complete. */
  kernels?: readonly string[];
  /** Extra request headers (e.g. an Authorization for a proxy in front of the server). */
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  now?: () => Date;
}

export interface SyncResult {
  rootVersion: number;
  timestampVersion: number;
  snapshotVersion: number;
  targetsVersion: number;
  targets: number;
  downloaded: number;
  timestampExpires: string;
}

class Downloader {
  readonly #base: string;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;

  constructor(o: SyncOptions) {
    this.#base = o.upstream.replace(/\/+$/, '');
    this.#fetch = o.fetch ?? fetch;
    this.#headers = o.headers ?? {};
  }

  /** The bytes at path, undefined on 404, an error on anything else or beyond maxBytes. */
  async get(path: string, maxBytes: number): Promise<Buffer | undefined> {
    const url = `${this.#base}${path}`;
    let res: Response;
    try {
      res = await this.#fetch(url, { headers: this.#headers, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    } catch (err) {
      throw new LivegraftError('SERVER_UNREACHABLE', `cannot fetch ${url}: ${(err as Error).message}`, { cause: err });
    }
    if (res.status === 404 || res.status === 403) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new LivegraftError(`HTTP_${res.status}`, `GET ${url}: HTTP ${res.status}`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body ?? []) {
      total += (chunk as Uint8Array).length;
      if (total > maxBytes) throw new LivegraftError('ANSWER_TOO_LARGE', `${url} is larger than ${maxBytes} bytes`);
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
    return Buffer.concat(chunks);
  }
}

function parse<T extends 'root' | 'timestamp' | 'snapshot' | 'targets'>(kind: T, bytes: Buffer, what: string) {
  try {
    const data = JSON.parse(bytes.toString('utf8')) as JSONObject;
    switch (kind) {
      case 'root':
        return Metadata.fromJSON(MetadataKind.Root, data);
      case 'timestamp':
        return Metadata.fromJSON(MetadataKind.Timestamp, data);
      case 'snapshot':
        return Metadata.fromJSON(MetadataKind.Snapshot, data);
      default:
        return Metadata.fromJSON(MetadataKind.Targets, data);
    }
  } catch (err) {
    throw new LivegraftError('TUF_METADATA_INVALID', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function checkMeta(bytes: Buffer, meta: { length?: number; hashes?: Record<string, string> }, what: string): void {
  if (meta.length !== undefined && bytes.length !== meta.length) {
    throw new LivegraftError(
      'TUF_METADATA_INVALID',
      `${what}: ${bytes.length} bytes, the signed length is ${meta.length}`,
    );
  }
  const want = meta.hashes?.['sha256'];
  if (want !== undefined && sha256(bytes) !== want) {
    throw new LivegraftError('TUF_METADATA_INVALID', `${what}: its sha256 is not the signed one`);
  }
}

function verifySigned(
  root: Metadata<Root>,
  role: string,
  md: Metadata<Timestamp | Snapshot | Targets>,
  what: string,
): void {
  try {
    root.verifyDelegate(role, md);
  } catch (err) {
    throw new LivegraftError('TUF_METADATA_INVALID', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

async function readLocal(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Copies the upstream TUF repository into dir, in the served layout. It
 * checks signatures, hashes and lengths on the way (so it does not spread
 * garbage), but clients do not rely on that: they verify everything against
 * their pinned root. timestamp.json is written last, so clients of the
 * mirror see either the previous complete set or the new one.
 */
export async function syncMirror(o: SyncOptions): Promise<SyncResult> {
  const dl = new Downloader(o);
  const meta = (name: string): string => join(o.dir, 'tuf', 'metadata', name);
  const now = (o.now ?? (() => new Date()))();

  // Roots: walk 1.root.json, 2.root.json, ... keeping every version (clients walk the chain from their pinned one).
  let trusted: Metadata<Root> | undefined;
  for (let v = 1; v <= MAX_ROOT_ROTATIONS; v++) {
    const name = `${v}.root.json`;
    const local = await readLocal(meta(name));
    const bytes = local ?? (await dl.get(`${TUF_METADATA_PATH}/${name}`, MAX_BYTES.root));
    if (bytes === undefined) break;
    const md = parse('root', bytes, name) as Metadata<Root>;
    if (md.signed.version !== v)
      throw new LivegraftError('TUF_METADATA_INVALID', `${name} says version ${md.signed.version}`);
    try {
      if (trusted !== undefined) trusted.verifyDelegate('root', md);
      md.verifyDelegate('root', md);
    } catch (err) {
      throw new LivegraftError('TUF_METADATA_INVALID', `${name}: ${(err as Error).message}`, { cause: err });
    }
    if (local === undefined) await writeFileAtomic(meta(name), bytes, 0o644, true);
    trusted = md;
  }
  if (trusted === undefined) {
    throw new LivegraftError('TUF_METADATA_INVALID', `${o.upstream} serves no ${TUF_METADATA_PATH}/1.root.json`);
  }

  const tsBytes = await dl.get(`${TUF_METADATA_PATH}/timestamp.json`, MAX_BYTES.timestamp);
  if (tsBytes === undefined) throw new LivegraftError('TUF_METADATA_INVALID', 'upstream has no timestamp.json');
  const ts = parse('timestamp', tsBytes, 'timestamp.json') as Metadata<Timestamp>;
  verifySigned(trusted, 'timestamp', ts, 'timestamp.json');
  if (ts.signed.isExpired(now)) {
    throw new LivegraftError('TUF_METADATA_EXPIRED', `upstream timestamp.json expired at ${ts.signed.expires}`);
  }

  const snapName = `${ts.signed.snapshotMeta.version}.snapshot.json`;
  const snapBytes = await fetchImmutable(dl, meta(snapName), `${TUF_METADATA_PATH}/${snapName}`, MAX_BYTES.snapshot);
  checkMeta(snapBytes, ts.signed.snapshotMeta, snapName);
  const snap = parse('snapshot', snapBytes, snapName) as Metadata<Snapshot>;
  verifySigned(trusted, 'snapshot', snap, snapName);

  const tMeta = snap.signed.meta['targets.json'];
  if (tMeta === undefined) throw new LivegraftError('TUF_METADATA_INVALID', `${snapName} lists no targets.json`);
  const targetsName = `${tMeta.version}.targets.json`;
  const tBytes = await fetchImmutable(dl, meta(targetsName), `${TUF_METADATA_PATH}/${targetsName}`, MAX_BYTES.targets);
  checkMeta(tBytes, tMeta, targetsName);
  const targets = parse('targets', tBytes, targetsName) as Metadata<Targets>;
  verifySigned(trusted, 'targets', targets, targetsName);

  let count = 0;
  let downloaded = 0;
  for (const t of Object.values(targets.signed.targets)) {
    const kernelId = t.path.split('/')[0] ?? '';
    if (o.kernels !== undefined && !o.kernels.includes(kernelId)) continue;
    const hash = t.hashes['sha256'];
    const m = /^([0-9a-f]{64})\/([0-9]{1,7})\/([a-z0-9_]{1,55}\.ko)$/.exec(t.path);
    if (hash === undefined || m === null || t.length > MAX_MODULE_BYTES) {
      throw new LivegraftError('TUF_METADATA_INVALID', `target ${t.path} is not a livegraft patch target`);
    }
    const rel = `${m[1]}/${m[2]}/${hash}.${m[3]}`;
    const local = join(o.dir, 'tuf', 'targets', ...rel.split('/'));
    count++;
    const have = await readLocal(local);
    if (have !== undefined && have.length === t.length && sha256(have) === hash) continue;
    const bytes = await dl.get(`${TUF_TARGETS_PATH}/${rel}`, t.length);
    if (bytes === undefined) throw new LivegraftError('TUF_TARGET_MISSING', `upstream lacks ${rel}`);
    checkMeta(bytes, { length: t.length, hashes: { sha256: hash } }, rel);
    await writeFileAtomic(local, bytes, 0o644, true);
    downloaded++;
  }

  await writeFileAtomic(meta('timestamp.json'), tsBytes, 0o644, true);
  return {
    rootVersion: trusted.signed.version,
    timestampVersion: ts.signed.version,
    snapshotVersion: snap.signed.version,
    targetsVersion: targets.signed.version,
    targets: count,
    downloaded,
    timestampExpires: ts.signed.expires,
  };
}

/** Versioned metadata never changes, so a local copy is reused. */
async function fetchImmutable(dl: Downloader, local: string, path: string, max: number): Promise<Buffer> {
  const have = await readLocal(local);
  if (have !== undefined) return have;
  const bytes = await dl.get(path, max);
  if (bytes === undefined) throw new LivegraftError('TUF_METADATA_INVALID', `upstream lacks ${path}`);
  await writeFileAtomic(local, bytes, 0o644, true);
  return bytes;
}

const CONTENT_TYPES: Record<string, string> = { '.json': 'application/json', '.ko': 'application/octet-stream' };

/** The request path without its query, percent-decoded; undefined when the encoding is malformed. */
export function decodePath(url: string): string | undefined {
  try {
    return decodeURIComponent(url.split('?')[0] ?? '/');
  } catch {
    return undefined;
  }
}

/**
 * Serves `<dir>/tuf/**` read-only over HTTP (GET/HEAD), nothing else. The
 * mirror is untrusted by design: clients verify every byte it serves.
 * Small files are answered from `files`, the in-memory copy (see mirror-files.ts).
 */
export function serveMirror(dir: string, files: MirrorFiles = new MirrorFiles()): Server {
  const root = normalize(join(dir, 'tuf'));
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const fail = (status: number, msg: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain', 'x-content-type-options': 'nosniff' }).end(`${msg}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'read-only mirror');
    const path = decodePath(req.url ?? '/');
    if (path === undefined) return fail(400, 'malformed path');
    if (!path.startsWith('/tuf/') || path.includes('\0')) return fail(404, 'not found');
    const file = normalize(join(dir, path));
    if (!file.startsWith(root + sep)) return fail(404, 'not found');
    const ext = file.slice(file.lastIndexOf('.'));
    const type = CONTENT_TYPES[ext];
    if (type === undefined) return fail(404, 'not found');
    files.lookup(file).then(
      (found) => {
        if (found.kind === 'missing') return fail(404, 'not found');
        res.writeHead(200, {
          'content-type': type,
          'content-length': found.kind === 'bytes' ? found.bytes.length : found.size,
          'x-content-type-options': 'nosniff',
          'cache-control': path.endsWith('/timestamp.json') ? 'no-cache' : 'public, max-age=31536000, immutable',
        });
        if (req.method === 'HEAD') return res.end();
        if (found.kind === 'bytes') return res.end(found.bytes);
        createReadStream(file)
          .on('error', () => res.destroy())
          .pipe(res);
      },
      () => fail(404, 'not found'),
    );
  };
  // One bad request must never take the mirror down for every other client.
  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch {
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    }
  });
  server.requestTimeout = SERVE_REQUEST_TIMEOUT_MS;
  return server;
}
