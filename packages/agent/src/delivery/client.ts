import {
  API_PREFIX,
  EVENTS_STREAM_PATH,
  LivegraftError,
  ValidationError,
  checkinResponseValidator,
  enrollResponseValidator,
  type CheckinRequest,
  type CheckinResponse,
  type EnrollRequest,
  type EnrollResponse,
  type TripwireEvent,
} from '@livegraft/protocol';
import { AGENT_VERSION } from '../lib/version.ts';

/** Per API request (enrol, check-in). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Until the push stream's response headers arrive; the body then stays open as long as the server keeps it. */
export const STREAM_CONNECT_TIMEOUT_MS = 30_000;
/** JSON answers are small; a manifest with 500 fixes is well under this. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Failures worth retrying later; anything else is terminal until something changes. */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  'SERVER_UNREACHABLE',
  'SERVER_TIMEOUT',
  'SERVER_ERROR',
  'SERVER_BAD_ANSWER',
  'RATE_LIMITED',
  // Signed delivery: the download was cut off by a deadline, or the disk was full.
  'DOWNLOAD_TIMEOUT',
  'DOWNLOAD_STALLED',
  'DISK_FULL',
]);

/** Whether waiting and retrying may help: network trouble, 5xx and 429, whatever the server's code. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof LivegraftError)) return false;
  if (TRANSIENT_CODES.has(err.code)) return true;
  const status = err.details?.['status'];
  return typeof status === 'number' && (status >= 500 || status === 429);
}

export type FetchFn = typeof globalThis.fetch;

export interface ServerClientOptions {
  server: string;
  token?: string;
  fetch?: FetchFn;
  /** The pause before a check-in is sent again after a timeout or a lost connection (default 2 s). */
  checkinRetryPauseMs?: number;
}

/**
 * A check-in that timed out or lost its connection is sent once more after
 * this pause: on a host or a network that is busy for a moment, the command
 * (or the daemon's cycle) then succeeds instead of waiting for the next one.
 * Sending it twice is harmless: the server stores a repeated report once.
 */
export const CHECKIN_RETRY_PAUSE_MS = 2000;

function networkError(url: string, err: unknown, timeoutMs: number): LivegraftError {
  const name = (err as Error).name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new LivegraftError('SERVER_TIMEOUT', `${url}: no complete answer within ${timeoutMs} ms`, { cause: err });
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new LivegraftError('SERVER_UNREACHABLE', `cannot reach ${url}: ${why}`, { cause: err });
}

async function readBounded(res: Response, max: number, url: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max)
    throw new LivegraftError('SERVER_BAD_ANSWER', `${url}: answer of ${declared} bytes exceeds ${max}`);
  if (res.body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += chunk.byteLength;
    if (total > max) {
      await res.body.cancel().catch(() => undefined);
      throw new LivegraftError('SERVER_BAD_ANSWER', `${url}: answer exceeds ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A non-2xx answer becomes an error carrying the server's own code. */
async function httpError(res: Response, url: string): Promise<LivegraftError> {
  let text = '';
  try {
    text = await readBounded(res, 64 * 1024, url);
  } catch {
    // The status alone still says enough.
  }
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string' && typeof body.message === 'string') {
      return new LivegraftError(body.code, `server: ${body.message}`, { details: { status: res.status } });
    }
  } catch {
    // not JSON
  }
  const code = res.status === 429 ? 'RATE_LIMITED' : res.status >= 500 ? 'SERVER_ERROR' : `HTTP_${res.status}`;
  return new LivegraftError(code, `${url}: HTTP ${res.status} ${text.slice(0, 200)}`.trim(), {
    details: { status: res.status },
  });
}

/** A 2xx answer that does not match the protocol is the server's fault: transient, with the problems named. */
function parseAnswer<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ValidationError) {
      throw new LivegraftError('SERVER_BAD_ANSWER', err.message, { cause: err, details: { problems: err.problems } });
    }
    throw err;
  }
}

/**
 * The agent's side of the server API. The daemon owns retry policy; only a check-in is sent once more
 * after a timeout or a lost connection (CHECKIN_RETRY_PAUSE_MS).
 */
export class ServerClient {
  readonly #server: string;
  readonly #token: string | undefined;
  readonly #fetch: FetchFn;
  readonly #retryPauseMs: number;
  /** The Date header of the last answer, to compare this host's clock with the server's. */
  lastServerDate: string | undefined;

  constructor(opts: ServerClientOptions) {
    this.#server = opts.server.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#retryPauseMs = opts.checkinRetryPauseMs ?? CHECKIN_RETRY_PAUSE_MS;
  }

  #headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': `livegraft-agent/${AGENT_VERSION}` };
    if (json) h['content-type'] = 'application/json';
    if (this.#token !== undefined) h['authorization'] = `Bearer ${this.#token}`;
    return h;
  }

  async #postJson(path: string, body: unknown): Promise<unknown> {
    const url = `${this.#server}${API_PREFIX}${path}`;
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(url, {
        method: 'POST',
        headers: this.#headers(true),
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      this.lastServerDate = res.headers.get('date') ?? undefined;
      if (!res.ok) throw await httpError(res, url);
      text = await readBounded(res, MAX_RESPONSE_BYTES, url);
    } catch (err) {
      if (err instanceof LivegraftError) throw err;
      throw networkError(url, err, REQUEST_TIMEOUT_MS);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new LivegraftError('SERVER_BAD_ANSWER', `${url}: answer is not JSON`);
    }
  }

  async enroll(req: EnrollRequest): Promise<EnrollResponse> {
    const body = await this.#postJson('/hosts/enroll', req);
    return parseAnswer(() => enrollResponseValidator.parse(body));
  }

  async checkin(req: CheckinRequest): Promise<CheckinResponse> {
    let body: unknown;
    try {
      body = await this.#postJson('/hosts/checkin', req);
    } catch (err) {
      if (!(err instanceof LivegraftError) || (err.code !== 'SERVER_TIMEOUT' && err.code !== 'SERVER_UNREACHABLE'))
        throw err;
      await new Promise((resolve) => setTimeout(resolve, this.#retryPauseMs));
      body = await this.#postJson('/hosts/checkin', req);
    }
    return parseAnswer(() => checkinResponseValidator.parse(body));
  }

  /** Reports tripwire hits; returns how many the server had not seen before. */
  async tripwire(events: TripwireEvent[]): Promise<number> {
    const body = (await this.#postJson('/hosts/tripwire', { events })) as { accepted?: unknown };
    return typeof body.accepted === 'number' ? body.accepted : 0;
  }

  /**
   * Opens the push stream (Server-Sent Events). Resolves with the response
   * once its headers are in, whatever the status: the caller reads the body
   * and owns the retry policy (a 401 means the token was revoked).
   */
  async openEvents(signal: AbortSignal, lastEventId?: string): Promise<Response> {
    const url = `${this.#server}${API_PREFIX}${EVENTS_STREAM_PATH}`;
    const headers: Record<string, string> = {
      ...this.#headers(false),
      accept: 'text/event-stream',
      'cache-control': 'no-cache',
    };
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    // One controller for the whole response: the caller's signal ends it at any time, the
    // connect deadline only until the headers are in (it must not cut the open body later).
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) ac.abort(signal.reason);
    const timer = setTimeout(
      () => ac.abort(new DOMException('push stream connect timed out', 'TimeoutError')),
      STREAM_CONNECT_TIMEOUT_MS,
    );
    timer.unref();
    try {
      return await this.#fetch(url, { headers, signal: ac.signal });
    } catch (err) {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) throw err;
      throw networkError(url, err, STREAM_CONNECT_TIMEOUT_MS);
    } finally {
      clearTimeout(timer);
    }
  }
}
