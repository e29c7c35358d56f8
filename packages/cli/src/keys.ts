import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  generateTufKey,
  LivegraftError,
  parseTufKeyFile,
  TUF_ROLES,
  type TufKeyFile,
  type TufRole,
} from '@livegraft/protocol';
import {
  newRoot,
  parseRootJson,
  ROLES,
  rootThreshold,
  serializeRoot,
  signRoot,
  type RoleKeys,
  type ThresholdStatus,
} from './keys-root.ts';

const DAY_MS = 24 * 3600_000;
export const DEFAULT_ROOT_EXPIRY_DAYS = 365;
/** A root or key file is small; refuse to read anything huge by mistake. */
const MAX_FILE_BYTES = 512_000;

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** temp + fsync + rename, so a file is either whole or absent. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode: number,
  overwrite = false,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  if (!overwrite && (await exists(path))) {
    throw new LivegraftError('FILE_EXISTS', `${path} already exists; refusing to overwrite it`);
  }
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function readSmall(path: string): Promise<string> {
  const st = await stat(path);
  if (st.size > MAX_FILE_BYTES) throw new LivegraftError('FILE_TOO_LARGE', `${path} is ${st.size} bytes`);
  return readFile(path, 'utf8');
}

export async function readKeyFile(path: string): Promise<TufKeyFile> {
  let json: unknown;
  try {
    json = JSON.parse(await readSmall(path));
  } catch (err) {
    if (err instanceof SyntaxError) throw new LivegraftError('TUF_KEY_INVALID', `${path} is not JSON`, { cause: err });
    throw err;
  }
  return parseTufKeyFile(json, path);
}

function writeKey(path: string, key: TufKeyFile): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(key, null, 2)}\n`, 0o600);
}

export interface InitOptions {
  out: string;
  rootKeys: number;
  threshold: number;
  expiresDays: number;
  now: Date;
}

export interface InitResult {
  rootPath: string;
  keyPaths: Record<string, string>;
}

/** `livegraft keys init`: root key(s), the three online keys, and a signed 1.root.json. */
export async function keysInit(o: InitOptions): Promise<InitResult> {
  if (!Number.isInteger(o.rootKeys) || o.rootKeys < 1 || o.rootKeys > 16) {
    throw new LivegraftError('USAGE', '--root-keys must be 1..16');
  }
  if (!Number.isInteger(o.threshold) || o.threshold < 1 || o.threshold > o.rootKeys) {
    throw new LivegraftError('USAGE', `--threshold must be 1..${o.rootKeys} (the number of root keys)`);
  }
  const rootNames = o.rootKeys === 1 ? ['root'] : Array.from({ length: o.rootKeys }, (_, i) => `root-${i + 1}`);
  const names = [...rootNames, 'targets', 'snapshot', 'timestamp'];
  const rootPath = join(o.out, '1.root.json');
  for (const p of [...names.map((n) => join(o.out, `${n}.json`)), rootPath]) {
    if (await exists(p)) throw new LivegraftError('FILE_EXISTS', `${p} already exists; use an empty directory`);
  }
  const rootKeys = rootNames.map(() => generateTufKey('root', o.now));
  const online = {
    targets: generateTufKey('targets', o.now),
    snapshot: generateTufKey('snapshot', o.now),
    timestamp: generateTufKey('timestamp', o.now),
  };
  const md = newRoot(
    {
      root: { keys: rootKeys, threshold: o.threshold },
      targets: { keys: [online.targets], threshold: 1 },
      snapshot: { keys: [online.snapshot], threshold: 1 },
      timestamp: { keys: [online.timestamp], threshold: 1 },
    },
    1,
    new Date(o.now.getTime() + o.expiresDays * DAY_MS),
  );
  signRoot(md, rootKeys);
  const keyPaths: Record<string, string> = {};
  for (const [i, name] of rootNames.entries()) {
    keyPaths[name] = join(o.out, `${name}.json`);
    await writeKey(keyPaths[name], rootKeys[i] as TufKeyFile);
  }
  for (const role of ['targets', 'snapshot', 'timestamp'] as const) {
    keyPaths[role] = join(o.out, `${role}.json`);
    await writeKey(keyPaths[role], online[role]);
  }
  await writeFileAtomic(rootPath, serializeRoot(md), 0o644);
  return { rootPath, keyPaths };
}

export interface RotateOptions {
  role: TufRole;
  /** The current root file (version N). */
  root: string;
  /** Root key files to sign the new root with (old root keys; the new root key, if any, is added). */
  signingKeys: string[];
  out: string;
  /** Only replace this keyid of the role (default: all of the role's keys). */
  replace?: string;
  threshold?: number;
  expiresDays: number;
  now: Date;
}

export interface RotateResult {
  keyPath: string;
  rootPath: string;
  version: number;
  status: ThresholdStatus[];
}

/**
 * `livegraft keys rotate`: a new key for a role and root version N+1 naming
 * it, signed by the given root keys. TUF clients accept N+1 only with a
 * threshold of version N's root keys AND of its own; the result says how far
 * the signatures got (`keys sign-root` adds more).
 */
export async function keysRotate(o: RotateOptions): Promise<RotateResult> {
  if (!TUF_ROLES.includes(o.role)) throw new LivegraftError('USAGE', `--role must be one of ${TUF_ROLES.join(', ')}`);
  const old = parseRootJson(await readSmall(o.root), o.root);
  const version = old.signed.version + 1;
  const rootPath = join(o.out, `${version}.root.json`);
  const keyPath = join(o.out, `${o.role}-${version}.json`);
  for (const p of [rootPath, keyPath]) {
    if (await exists(p)) throw new LivegraftError('FILE_EXISTS', `${p} already exists`);
  }
  const signers = await Promise.all(o.signingKeys.map(readKeyFile));
  const fresh = generateTufKey(o.role, o.now);

  const roles = {} as Record<TufRole, RoleKeys>;
  for (const role of ROLES) {
    const r = old.signed.roles[role];
    if (r === undefined) throw new LivegraftError('TUF_ROOT_INVALID', `${o.root} has no ${role} role`);
    let ids = r.keyIDs;
    let threshold = r.threshold;
    if (role === o.role) {
      if (o.replace !== undefined && !ids.includes(o.replace)) {
        throw new LivegraftError('USAGE', `--replace ${o.replace} is not a ${role} key of ${o.root}`);
      }
      ids = o.replace === undefined ? [] : ids.filter((id) => id !== o.replace);
      threshold = o.threshold ?? Math.min(threshold, ids.length + 1);
    }
    const keys = ids.map((id) => {
      const k = old.signed.keys[id];
      const pub = k?.keyVal['public'];
      if (pub === undefined) throw new LivegraftError('TUF_ROOT_INVALID', `${o.root} lacks key ${id}`);
      return { keyid: id, public: pub };
    });
    if (role === o.role) keys.push({ keyid: fresh.keyid, public: fresh.public });
    roles[role] = { keys, threshold };
  }
  const md = newRoot(roles, version, new Date(o.now.getTime() + o.expiresDays * 24 * 3600_000));
  const rootIds = new Set([...(old.signed.roles['root']?.keyIDs ?? []), ...roles.root.keys.map((k) => k.keyid)]);
  for (const s of signers) {
    if (!rootIds.has(s.keyid)) {
      throw new LivegraftError(
        'TUF_KEY_NOT_ROOT',
        `${s.keyid.slice(0, 12)} is not a root key of version ${version - 1} or ${version}`,
      );
    }
  }
  signRoot(md, o.role === 'root' ? [...signers, fresh] : signers);
  await writeKey(keyPath, fresh);
  await writeFileAtomic(rootPath, serializeRoot(md), 0o644);
  return { keyPath, rootPath, version, status: [rootThreshold(old, md, 'previous'), rootThreshold(md, md, 'self')] };
}

/** `livegraft keys sign-root`: adds signatures to a root file in place and reports the thresholds. */
export async function keysSignRoot(o: { root: string; keys: string[]; previous?: string }): Promise<ThresholdStatus[]> {
  const md = parseRootJson(await readSmall(o.root), o.root);
  const prev = o.previous === undefined ? undefined : parseRootJson(await readSmall(o.previous), o.previous);
  if (prev !== undefined && prev.signed.version + 1 !== md.signed.version) {
    throw new LivegraftError('USAGE', `${o.previous} is version ${prev.signed.version}, not ${md.signed.version - 1}`);
  }
  const keys = await Promise.all(o.keys.map(readKeyFile));
  if (keys.length > 0) {
    signRoot(md, keys);
    await writeFileAtomic(o.root, serializeRoot(md), 0o644, true);
  }
  const status = [rootThreshold(md, md, 'self')];
  if (prev !== undefined) status.unshift(rootThreshold(prev, md, 'previous'));
  return status;
}

export function describeStatus(status: readonly ThresholdStatus[]): string {
  return status
    .map(
      (s) =>
        `${s.against === 'self' ? 'its own root keys' : 'the previous root keys'}: ${s.valid}/${s.threshold} ${s.ok ? 'ok' : 'NOT ENOUGH'}`,
    )
    .join('; ');
}
