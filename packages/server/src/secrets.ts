import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

export const ADMIN_TOKEN_FILE = 'admin-token';
export const REGISTRATION_KEY_FILE = 'registration-key';
const MAX_SECRET_CHARS = 256;
const MIN_SECRET_CHARS = 16;

export interface LoadedSecret {
  value: string;
  source: 'config' | 'file' | 'created';
  path?: string;
  /** True when an existing file is readable by group or others. */
  looseMode?: boolean;
}

/** A fresh 32-byte secret, base64url. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * A secret from configuration if given, else from `<dataDir>/<name>`, else a
 * new random one written there with mode 0600 (temp + fsync + rename).
 */
export async function loadOrCreateSecret(
  dataDir: string,
  name: string,
  configured: string | undefined,
  generate: () => string,
): Promise<LoadedSecret> {
  if (configured !== undefined) return { value: configured, source: 'config' };
  const path = join(dataDir, name);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const value = text.trim();
    if (value.length < MIN_SECRET_CHARS || value.length > MAX_SECRET_CHARS || /\s/.test(value)) {
      throw new LivegraftError(
        'CONFIG_INVALID',
        `${path} must hold one secret of ${MIN_SECRET_CHARS}..${MAX_SECRET_CHARS} characters without spaces`,
      );
    }
    const looseMode = ((await stat(path)).mode & 0o077) !== 0;
    return { value, source: 'file', path, looseMode };
  }
  const value = generate();
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${value}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { value, source: 'created', path };
}
