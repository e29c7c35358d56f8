import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import { API_PREFIX, LivegraftError } from '@livegraft/protocol';
import { serverBase, tokenFrom, unreachable } from './connection.ts';

/** Reports of a large fleet take a while to compute. */
const REPORT_TIMEOUT_MS = 120_000;
/** A CSV of every window of a large fleet is big, but not unbounded. */
const MAX_REPORT_BYTES = 512 * 1024 * 1024;

export interface ConnectionOpts {
  server: string;
  token?: string;
  tokenFile?: string;
}

/** A command with the usual --server/--token/--token-file options. */
export function connectedCommand(name: string, description: string, defaultServer: string): Command {
  return new Command(name)
    .description(description)
    .addOption(new Option('--server <url>', 'patch server URL').env('LIVEGRAFT_SERVER').default(defaultServer))
    .option('--token <token>', 'API token, viewer role or above (or LIVEGRAFT_TOKEN)')
    .option('--token-file <path>', 'file holding the API token');
}

/** GET an API path; the body as bytes (reports may be PDF). Errors carry the server's code. */
export async function apiGet(
  o: ConnectionOpts,
  path: string,
  init: { method?: string; json?: unknown } = {},
): Promise<Buffer> {
  const base = serverBase(o.server);
  const headers: Record<string, string> = { authorization: `Bearer ${tokenFrom(o)}` };
  if (init.json !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${base}${API_PREFIX}${path}`, {
      method: init.method ?? 'GET',
      headers,
      ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
      signal: AbortSignal.timeout(REPORT_TIMEOUT_MS),
    });
  } catch (err) {
    throw unreachable(base, err);
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_REPORT_BYTES) {
    await res.body?.cancel();
    throw new LivegraftError('ANSWER_TOO_LARGE', `GET ${path}: answer larger than ${MAX_REPORT_BYTES} bytes`);
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  if (!res.ok) {
    let e: { code?: string; message?: string } | undefined;
    try {
      e = JSON.parse(bytes.toString('utf8')) as typeof e;
    } catch {
      /* not JSON */
    }
    throw new LivegraftError(
      e?.code ?? `HTTP_${res.status}`,
      `${path}: ${e?.message ?? bytes.toString('utf8', 0, 500)}`,
    );
  }
  return bytes;
}

export async function apiJson<T>(
  o: ConnectionOpts,
  path: string,
  init: { method?: string; json?: unknown } = {},
): Promise<T> {
  return JSON.parse((await apiGet(o, path, init)).toString('utf8')) as T;
}

/** Writes a file whole or not at all: temp file in the same directory, fsync, rename. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Query string from defined values only. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
