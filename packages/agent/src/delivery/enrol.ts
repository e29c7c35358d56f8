import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { LivegraftError, TUF_METADATA_PATH } from '@livegraft/protocol';
import type { FetchFn } from './client.ts';

/** Root metadata files are small; a bigger answer is not one. */
const MAX_ROOT_BYTES = 512_000;
/** Root versions looked at for a fingerprint (a root is re-signed about yearly). */
const MAX_ROOT_VERSIONS = 1000;
const ROOT_REQUEST_TIMEOUT_MS = 30_000;
/** The environment variable a registration key may come from (never shown in `ps`, unlike --key). */
export const REGISTRATION_KEY_ENV = 'LIVEGRAFT_REGISTRATION_KEY';
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** How this enrolment anchors its trust in the server's TUF root. */
export type RootPin = { kind: 'file'; bytes: Buffer; source: string } | { kind: 'sha256'; sha256: string } | undefined;

/** The hostname to register when none is given: this host's name, reduced to what the server accepts. */
export function registrableHostname(name: string): string {
  const cleaned = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 253);
  return cleaned === '' ? 'host' : cleaned;
}

/** A --root-sha256 value, checked: 64 hex digits (sha256sum output). */
export function parseRootSha256(value: string): string {
  const hex = value.trim().toLowerCase();
  if (!SHA256_HEX.test(hex)) {
    throw new LivegraftError('CONFIG_INVALID', `--root-sha256 needs the 64 hex digits of a SHA-256, not "${value}"`);
  }
  return hex;
}

/**
 * Refuses to hand the registration key and the choice of root to whoever sits
 * on a plain-HTTP path: without a pinned root, `http://` needs --insecure.
 * Returns the warning to print, if any.
 */
export function checkEnrolTransport(server: string, pin: RootPin, insecure: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new LivegraftError('CONFIG_INVALID', `--server ${server} is not a URL (e.g. https://livegraft.example.com)`);
  }
  if (url.protocol === 'https:') return undefined;
  if (url.protocol !== 'http:') {
    throw new LivegraftError('CONFIG_INVALID', `--server must be an https:// (or http://) URL, not ${url.protocol}`);
  }
  if (pin !== undefined) {
    return `WARNING: enrolling over plain HTTP: the root is pinned, but the registration key crosses the network readable; use https://`;
  }
  if (!insecure) {
    throw new LivegraftError(
      'ENROL_INSECURE',
      `refusing to enrol over plain HTTP (${url.origin}) without a pinned root: anyone on the path would get the registration key and could hand this host their own TUF root. ` +
        'Pin the root (--root-sha256 HEX from `livegraft keys fingerprint`, or --root FILE), use https://, or pass --insecure for a lab',
    );
  }
  return (
    `WARNING: --insecure: enrolling over plain HTTP with no pinned root. Whoever is on the path to ${url.host} can read the ` +
    'registration key and choose the TUF root this host trusts, and through it the kernel modules it loads. Use this only in a lab.'
  );
}

async function fetchRoot(
  fetchFn: FetchFn,
  base: string,
  version: number,
): Promise<{ bytes: Buffer; url: string } | undefined> {
  const url = `${base}${TUF_METADATA_PATH}/${version}.root.json`;
  let res: Response;
  try {
    res = await fetchFn(url, { signal: AbortSignal.timeout(ROOT_REQUEST_TIMEOUT_MS) });
  } catch (err) {
    throw new LivegraftError('SERVER_UNREACHABLE', `cannot fetch ${url}: ${(err as Error).message}`);
  }
  if (res.status === 404) return undefined;
  if (!res.ok) throw new LivegraftError('SERVER_ERROR', `${url} answered HTTP ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.length > MAX_ROOT_BYTES) {
    throw new LivegraftError('TUF_ROOT_INVALID', `${url} is over ${MAX_ROOT_BYTES} bytes; not a root`);
  }
  return { bytes, url };
}

function versionOf(bytes: Buffer, what: string): number {
  try {
    const v = (JSON.parse(bytes.toString('utf8')) as { signed?: { version?: unknown } }).signed?.version;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1) return v;
  } catch {
    // reported below
  }
  throw new LivegraftError('TUF_ROOT_INVALID', `${what} is not TUF root metadata (no signed.version)`);
}

/**
 * Checks the server's root against the pin before the registration key is
 * sent, and returns the root bytes to trust. A file pin must equal the
 * server's root of the same version; a fingerprint must match one of the
 * server's N.root.json files exactly. The agent then walks forward from that
 * anchor, verifying every newer root's signatures, as on every update.
 */
export async function resolvePinnedRoot(
  fetchFn: FetchFn,
  server: string,
  pin: NonNullable<RootPin>,
): Promise<{ bytes: Buffer; source: string }> {
  const base = server.replace(/\/+$/, '');
  if (pin.kind === 'file') {
    const version = versionOf(pin.bytes, pin.source);
    const served = await fetchRoot(fetchFn, base, version);
    const same =
      served !== undefined &&
      isDeepStrictEqual(JSON.parse(served.bytes.toString('utf8')), JSON.parse(pin.bytes.toString('utf8')));
    if (!same) {
      throw new LivegraftError(
        'TUF_ROOT_MISMATCH',
        `${base} does not serve ${pin.source} as its root version ${version}: wrong server, or someone on the path; nothing was sent`,
      );
    }
    return { bytes: pin.bytes, source: pin.source };
  }
  const seen: string[] = [];
  for (let v = 1; v <= MAX_ROOT_VERSIONS; v++) {
    const served = await fetchRoot(fetchFn, base, v);
    if (served === undefined) break;
    const sha256 = createHash('sha256').update(served.bytes).digest('hex');
    if (sha256 === pin.sha256) {
      versionOf(served.bytes, served.url);
      return { bytes: served.bytes, source: `${served.url} (sha256 ${sha256.slice(0, 16)}… as pinned)` };
    }
    seen.push(`${v}: ${sha256.slice(0, 16)}…`);
  }
  throw new LivegraftError(
    'TUF_ROOT_MISMATCH',
    `no TUF root served by ${base} has SHA-256 ${pin.sha256} (it serves ${seen.join(', ') || 'none'}): wrong server, or someone on the path; nothing was sent`,
  );
}

/**
 * The registration key from exactly one of --key, --key-file or the
 * environment. --key works but shows in `ps`; the other two do not.
 */
export function registrationKeyFrom(
  o: { key?: string; keyFile?: string },
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
): string {
  const fromEnv = env[REGISTRATION_KEY_ENV];
  const given = [o.key, o.keyFile, fromEnv].filter((v) => v !== undefined && v !== '').length;
  if (given === 0) {
    throw new LivegraftError(
      'CONFIG_INVALID',
      `no registration key: pass --key-file FILE, set ${REGISTRATION_KEY_ENV}, or (visible in ps) --key KEY`,
    );
  }
  if (given > 1) {
    throw new LivegraftError(
      'CONFIG_INVALID',
      `give the registration key once: --key, --key-file or ${REGISTRATION_KEY_ENV}`,
    );
  }
  if (o.keyFile !== undefined && o.keyFile !== '') {
    let text: string;
    try {
      text = readFile(o.keyFile);
    } catch (err) {
      throw new LivegraftError(
        'CONFIG_INVALID',
        `cannot read the registration key file ${o.keyFile}: ${(err as Error).message}`,
      );
    }
    const key = text.trim();
    if (key === '' || key.length > 256 || /\s/.test(key)) {
      throw new LivegraftError(
        'CONFIG_INVALID',
        `${o.keyFile} does not hold one registration key (one line, no spaces)`,
      );
    }
    return key;
  }
  return (o.key ?? fromEnv ?? '').trim();
}
