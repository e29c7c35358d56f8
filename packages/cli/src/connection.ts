import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

/** The --server URL without a trailing slash; refused, with the fix, when it is not an http(s) URL. */
export function serverBase(server: string): string {
  const given = server.trim();
  let url: URL | undefined;
  try {
    url = new URL(given);
  } catch {
    url = undefined;
  }
  // "127.0.0.1:8720" parses as nothing; "localhost:8720" as the scheme "localhost:".
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    const hint = /^[A-Za-z0-9.[\]:-]+(\/.*)?$/.test(given) ? `: use http://${given} (or https://${given})` : '';
    throw new LivegraftError(
      'BAD_SERVER_URL',
      `--server ${JSON.stringify(server)} is not an http:// or https:// URL${hint}`,
    );
  }
  return given.replace(/\/+$/, '');
}

function causeOf(err: unknown): { code?: string; message?: string } | undefined {
  const cause = (err as { cause?: unknown }).cause;
  return typeof cause === 'object' && cause !== null ? (cause as { code?: string; message?: string }) : undefined;
}

/** SERVER_UNREACHABLE naming why, and what to try, instead of fetch's bare "fetch failed". */
export function unreachable(base: string, err: unknown): LivegraftError {
  const cause = causeOf(err);
  const code = cause?.code ?? '';
  const detail = cause?.message ?? (err as Error).message;
  let why = detail;
  if (base.startsWith('https:') && /SSL|TLS|EPROTO/i.test(code) && /wrong version number|packet length/i.test(detail)) {
    why = `it does not speak TLS there (an http:// server?): use ${base.replace(/^https:/, 'http:')}, or enable TLS on the server (--tls-cert, --tls-key)`;
  } else if (code === 'ECONNREFUSED') {
    why = `nothing listens there (${detail}): is the server running, and is the port right?`;
  } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    why = `the host name does not resolve (${detail})`;
  } else if ((err as Error).name === 'TimeoutError') {
    why = `no answer in time (${detail})`;
  }
  return new LivegraftError('SERVER_UNREACHABLE', `cannot reach ${base}: ${why}`, { cause: err });
}

/** The token in a --token-file, or TOKEN_FILE_UNREADABLE naming the option, the path and why. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory'
            : (err as Error).message;
    throw new LivegraftError(
      'TOKEN_FILE_UNREADABLE',
      `--token-file ${path}: cannot read it (${why}); give a file holding an API token, e.g. <data-dir>/admin-token, or use --token or LIVEGRAFT_TOKEN`,
    );
  }
  const token = text.trim();
  if (token === '') throw new LivegraftError('TOKEN_FILE_UNREADABLE', `--token-file ${path}: the file is empty`);
  return token;
}

/** --token, LIVEGRAFT_TOKEN, or the --token-file's content. */
export function tokenFrom(o: { token?: string | undefined; tokenFile?: string | undefined }): string {
  let token = o.token ?? process.env['LIVEGRAFT_TOKEN'];
  if (!token && o.tokenFile) token = readTokenFile(o.tokenFile);
  if (!token) {
    throw new LivegraftError(
      'TOKEN_MISSING',
      'no API token: pass --token, --token-file <data-dir>/admin-token, or set LIVEGRAFT_TOKEN',
    );
  }
  return token;
}

/** Refuses an --out file whose directory is missing or not writable, before anything is downloaded. */
export function checkOutPath(path: string): void {
  const dir = dirname(resolve(path));
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) {
    throw new LivegraftError('OUT_DIR_MISSING', `--out ${path}: directory ${dir} does not exist; create it first`);
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new LivegraftError('OUT_DIR_NOT_WRITABLE', `--out ${path}: directory ${dir} is not writable`);
  }
}
