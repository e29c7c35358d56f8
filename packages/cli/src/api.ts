import { LivegraftError } from '@livegraft/protocol';
import { serverBase, unreachable } from './connection.ts';

/** Per-request deadline for admin API calls; uploads get longer. */
const REQUEST_TIMEOUT_MS = 30_000;
const UPLOAD_TIMEOUT_MS = 300_000;
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

export interface ApiClientOptions {
  server: string;
  token: string;
  fetch?: typeof fetch;
}

/** The admin side of the server's HTTP API. */
export class ApiClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly opts: ApiClientOptions) {
    this.base = serverBase(opts.server);
    this.fetchImpl = opts.fetch ?? fetch;
  }

  async request<T>(
    method: string,
    path: string,
    body?: { json: unknown } | { bytes: Uint8Array },
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.token}` };
    let payload: RequestInit['body'];
    if (body && 'json' in body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body) {
      headers['content-type'] = 'application/octet-stream';
      payload = body.bytes;
    }
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers,
        body: payload,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw unreachable(this.base, err);
    }
    const text = await res.text();
    if (text.length > MAX_ANSWER_BYTES) {
      throw new LivegraftError('ANSWER_TOO_LARGE', `${method} ${path}: answer larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      /* not JSON: reported below if the status is an error */
    }
    if (!res.ok) {
      const e = parsed as { code?: string; message?: string } | undefined;
      throw new LivegraftError(
        e?.code ?? `HTTP_${res.status}`,
        `${method} ${path}: ${e?.message ?? text.slice(0, 500)}`,
      );
    }
    return parsed as T;
  }

  upload<T>(path: string, bytes: Uint8Array): Promise<T> {
    return this.request<T>('PUT', path, { bytes }, UPLOAD_TIMEOUT_MS);
  }
}
