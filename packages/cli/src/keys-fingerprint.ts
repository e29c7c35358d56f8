import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LivegraftError } from '@livegraft/protocol';
import { serverBase, unreachable } from './connection.ts';

export interface RootFingerprint {
  version: number;
  sha256: string;
  source: string;
}

/** TUF clients walk the root chain one version at a time; so does this, up to a bound. */
const MAX_ROOT_VERSIONS = 1000;
const REQUEST_TIMEOUT_MS = 15_000;
const MAX_ROOT_BYTES = 512 * 1024;

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function versionOf(text: string, source: string): number {
  let v: unknown;
  try {
    v = (JSON.parse(text) as { signed?: { version?: unknown } }).signed?.version;
  } catch {
    throw new LivegraftError('TUF_ROOT_INVALID', `${source} is not JSON`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new LivegraftError('TUF_ROOT_INVALID', `${source} is not TUF root metadata (no signed.version)`);
  }
  return v;
}

/** The fingerprint of a root file: the SHA-256 of its bytes. */
export function fileRootFingerprint(path: string): RootFingerprint {
  const bytes = readFileSync(path);
  return { version: versionOf(bytes.toString('utf8'), path), sha256: sha256(bytes), source: path };
}

/**
 * The fingerprint of a server's current root: the SHA-256 of the newest
 * N.root.json it serves (what hosts pin and install.sh --root-sha256 checks).
 */
export async function serverRootFingerprint(server: string, fetchImpl: typeof fetch = fetch): Promise<RootFingerprint> {
  const base = serverBase(server);
  let last: RootFingerprint | undefined;
  for (let v = 1; v <= MAX_ROOT_VERSIONS; v++) {
    const url = `${base}/tuf/metadata/${v}.root.json`;
    let res: Response;
    try {
      res = await fetchImpl(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (err) {
      throw unreachable(base, err);
    }
    if (res.status === 404) break;
    if (!res.ok) throw new LivegraftError('SERVER_ERROR', `${url} answered HTTP ${res.status}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > MAX_ROOT_BYTES)
      throw new LivegraftError('TUF_ROOT_INVALID', `${url} is over ${MAX_ROOT_BYTES} bytes`);
    const version = versionOf(bytes.toString('utf8'), url);
    if (version !== v) throw new LivegraftError('TUF_ROOT_INVALID', `${url} holds root version ${version}`);
    last = { version, sha256: sha256(bytes), source: url };
  }
  if (last === undefined) throw new LivegraftError('TUF_ROOT_MISSING', `${base} serves no TUF root (1.root.json)`);
  return last;
}
