import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  LivegraftError,
  parseTufKeyFile,
  TUF_ONLINE_ROLES,
  type TufKeyFile,
  type TufOnlineRole,
  type TufRole,
} from '@livegraft/protocol';

/** Key files are a few hundred bytes; anything larger is not one. */
const MAX_KEY_FILE_BYTES = 16 * 1024;

export function keyFilePath(keysDir: string, role: TufRole): string {
  return join(keysDir, `${role}.json`);
}

export interface LoadedKey {
  key: TufKeyFile;
  path: string;
  /** True when the file is readable by group or others. */
  looseMode: boolean;
}

/** Reads and checks `<keysDir>/<role>.json`; undefined when it does not exist. */
export async function loadKeyFile(keysDir: string, role: TufRole): Promise<LoadedKey | undefined> {
  const path = keyFilePath(keysDir, role);
  let text: string;
  try {
    const st = await stat(path);
    if (st.size > MAX_KEY_FILE_BYTES) {
      throw new LivegraftError('TUF_KEY_INVALID', `${path} is ${st.size} bytes, not a key file`);
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new LivegraftError('TUF_KEY_INVALID', `${path} is not JSON`, { cause: err });
  }
  const key = parseTufKeyFile(json, path);
  return { key, path, looseMode: ((await stat(path)).mode & 0o077) !== 0 };
}

/** Writes a key file with mode 0600, never over an existing one (temp + fsync + link-free rename). */
export async function writeKeyFile(path: string, key: TufKeyFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await stat(path);
    throw new LivegraftError('TUF_KEY_EXISTS', `${path} already exists; refusing to overwrite a key`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(key, null, 2)}\n`);
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

export type OnlineKeys = Record<TufOnlineRole, TufKeyFile>;

/** The three online keys, or a clear error naming the missing ones. */
export async function loadOnlineKeys(keysDir: string, warn: (msg: string, path: string) => void): Promise<OnlineKeys> {
  const found: Partial<OnlineKeys> = {};
  const missing: string[] = [];
  for (const role of TUF_ONLINE_ROLES) {
    const loaded = await loadKeyFile(keysDir, role);
    if (loaded === undefined) {
      missing.push(keyFilePath(keysDir, role));
      continue;
    }
    if (loaded.looseMode) warn(`TUF ${role} key file is readable by group or others; chmod 600 it`, loaded.path);
    found[role] = loaded.key;
  }
  if (missing.length > 0) {
    throw new LivegraftError(
      'TUF_KEY_MISSING',
      `missing online TUF key file(s): ${missing.join(', ')}; create them with "livegraft keys init" and copy targets.json, snapshot.json and timestamp.json there`,
    );
  }
  return found as OnlineKeys;
}
