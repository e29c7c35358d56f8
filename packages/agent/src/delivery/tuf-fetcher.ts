import { closeSync, createReadStream, fsyncSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { LivegraftError } from '@livegraft/protocol';
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import type { FetchFn } from './client.ts';
import { tempPathFor } from '../lib/fs-atomic.ts';
import { AGENT_VERSION } from '../lib/version.ts';

/**
 * TUF dropped slow retrieval from its guarantees, so every byte the agent
 * fetches for an update is bounded here: size, per request, whole update,
 * and a minimum rate (a server trickling 1 byte/s is cut off).
 */
export interface DeliveryLimits {
  /** One request, headers and body. */
  requestTimeoutMs: number;
  /** Everything fetched for one update: root chain, timestamp, snapshot, targets, module. */
  totalTimeoutMs: number;
  /** No byte for this long aborts; it is also the grace period before the rate is judged. */
  stallTimeoutMs: number;
  /** After the grace period a request must average at least this rate. */
  minBytesPerSec: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
export const DEFAULT_TOTAL_TIMEOUT_MS = 600_000;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
/** 64 MB (the largest module) at this rate takes ~17 min: beyond the total deadline, which caps it anyway. */
export const DEFAULT_MIN_BYTES_PER_SEC = 1024;

export const DEFAULT_DELIVERY_LIMITS: DeliveryLimits = {
  requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
  totalTimeoutMs: DEFAULT_TOTAL_TIMEOUT_MS,
  stallTimeoutMs: DEFAULT_STALL_TIMEOUT_MS,
  minBytesPerSec: DEFAULT_MIN_BYTES_PER_SEC,
};

/** Where a download's bytes go: a staging file (targets) or memory (metadata). */
interface DownloadSink {
  write(chunk: Uint8Array): void;
  /** Called once every byte arrived (a file is synced). */
  finish(): void;
  close(): void;
}

/** Writes a chunk to a file descriptor; injectable so tests can fill the disk. */
export type WriteChunk = (fd: number, chunk: Uint8Array) => void;

const writeAll: WriteChunk = (fd, chunk) => {
  let off = 0;
  while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off);
};

export interface GuardedFetcherOptions {
  limits: DeliveryLimits;
  /** Downloads land here (on the state filesystem, not /tmp) before tuf-js verifies them. */
  stagingDir: string;
  fetch?: FetchFn;
  writeChunk?: WriteChunk;
  now?: () => number;
}

/** Turns a write failure into a stable code; a full disk is the common one. */
export function fsWriteError(what: string, err: unknown): LivegraftError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new LivegraftError('DISK_FULL', `${what}: no space left on the state filesystem`, { cause: err });
  }
  return new LivegraftError('STAGING_WRITE_FAILED', `${what}: ${(err as Error).message}`, { cause: err });
}

/** fetch() failed because the connection closed before an answer came (not a refusal, not a timeout). */
export function closedBeforeAnswer(err: unknown): boolean {
  const code = (err as { cause?: { code?: string } }).cause?.code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET';
}

/**
 * The tuf-js fetcher the agent uses for both HTTP(S) and file:// (a bundle
 * directory for air-gapped hosts). Overrides downloadFile and downloadBytes
 * so the size cap, deadlines and staging location are ours; tuf-js still
 * verifies lengths, hashes and signatures of what it gets.
 */
export class GuardedFetcher extends BaseFetcher {
  readonly #limits: DeliveryLimits;
  readonly #stagingDir: string;
  readonly #fetch: FetchFn;
  readonly #write: WriteChunk;
  readonly #now: () => number;
  /** The absolute deadline of the whole update, fixed when the fetcher is created. */
  readonly deadline: number;
  /**
   * tuf-js wraps some failures in a RuntimeError that keeps only the text;
   * the last download failure is kept here so the agent can report its code.
   */
  lastFailure: LivegraftError | undefined;
  /** URLs requested, in order (diagnostics and tests). */
  readonly requested: string[] = [];

  constructor(opts: GuardedFetcherOptions) {
    super();
    this.#limits = opts.limits;
    this.#stagingDir = opts.stagingDir;
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#write = opts.writeChunk ?? writeAll;
    this.#now = opts.now ?? Date.now;
    this.deadline = this.#now() + opts.limits.totalTimeoutMs;
  }

  #remainingTotal(url: string): number {
    const left = this.deadline - this.#now();
    if (left <= 0) {
      throw new LivegraftError(
        'DOWNLOAD_TIMEOUT',
        `${url}: the update did not finish within ${this.#limits.totalTimeoutMs} ms; aborted`,
      );
    }
    return left;
  }

  /** Opens the URL and returns its body; 403/404 become DownloadHTTPError, which tuf-js understands. */
  async #open(url: string, maxLength: number, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    if (url.startsWith('file:')) {
      const path = fileURLToPath(url);
      let size: number;
      try {
        size = statSync(path).size;
      } catch {
        throw new DownloadHTTPError(`${path} does not exist`, 404);
      }
      if (size > maxLength) {
        throw new LivegraftError('DOWNLOAD_TOO_LARGE', `${path} is ${size} bytes, more than the ${maxLength} allowed`);
      }
      return Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>;
    }
    const get = () => this.#fetch(url, { headers: { 'user-agent': `livegraft-agent/${AGENT_VERSION}` }, signal });
    let res: Response;
    try {
      res = await get();
    } catch (err) {
      // A kept-alive connection the server closed while it was idle fails before
      // any answer (UND_ERR_SOCKET); a GET is sent once more, on a new connection.
      if (signal.aborted || !closedBeforeAnswer(err)) throw this.#networkError(url, err, signal);
      try {
        res = await get();
      } catch (again) {
        throw this.#networkError(url, again, signal);
      }
    }
    if (res.status === 403 || res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      throw new DownloadHTTPError(`${url}: HTTP ${res.status}`, res.status);
    }
    if (!res.ok || res.body === null) {
      await res.body?.cancel().catch(() => undefined);
      const code = res.status === 429 ? 'RATE_LIMITED' : res.status >= 500 ? 'SERVER_ERROR' : `HTTP_${res.status}`;
      throw new LivegraftError(code, `${url}: HTTP ${res.status}`, { details: { status: res.status } });
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > maxLength) {
      await res.body.cancel().catch(() => undefined);
      throw new LivegraftError(
        'DOWNLOAD_TOO_LARGE',
        `${url}: server announces ${declared} bytes, more than the ${maxLength} allowed`,
      );
    }
    return res.body;
  }

  #networkError(url: string, err: unknown, signal: AbortSignal): LivegraftError {
    if (err instanceof LivegraftError) return err;
    const reason: unknown = signal.reason;
    if (signal.aborted && reason instanceof LivegraftError) return reason;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    return new LivegraftError('SERVER_UNREACHABLE', `cannot fetch ${url}: ${why}`, { cause: err });
  }

  /** BaseFetcher's contract; downloadFile and downloadBytes below are what tuf-js actually calls. */
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const signal = AbortSignal.timeout(Math.min(this.#limits.requestTimeoutMs, this.#remainingTotal(url)));
    return (await this.#open(url, Number.MAX_SAFE_INTEGER, signal)) as ReadableStream<Uint8Array<ArrayBuffer>>;
  }

  /** Targets (modules): staged in a file on the state filesystem, which tuf-js hashes and moves into the cache. */
  override async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
    return this.#tracked(url, async () => {
      mkdirSync(this.#stagingDir, { recursive: true, mode: 0o700 });
      const file = tempPathFor(join(this.#stagingDir, 'download'));
      try {
        await this.#download(url, maxLength, () => this.#fileSink(file));
        return await handler(file);
      } finally {
        rmSync(file, { force: true });
      }
    });
  }

  /**
   * Metadata (root, timestamp, snapshot, targets): tuf-js reads it whole into
   * memory before verifying it, so it is collected there directly, under the
   * same caps and deadlines, with no staging file to write, sync and read back.
   * Only verified metadata reaches the disk, through the TUF client's commit.
   */
  override async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    return this.#tracked(url, async () => {
      const chunks: Uint8Array[] = [];
      await this.#download(url, maxLength, () => ({
        write: (chunk) => void chunks.push(chunk),
        finish: () => undefined,
        close: () => undefined,
      }));
      return Buffer.concat(chunks);
    });
  }

  /** Records the URL, and keeps the last failure's code for the agent's report (cleared by a success). */
  async #tracked<T>(url: string, work: () => Promise<T>): Promise<T> {
    this.requested.push(url);
    try {
      const out = await work();
      this.lastFailure = undefined;
      return out;
    } catch (err) {
      if (err instanceof LivegraftError) this.lastFailure = err;
      throw err;
    }
  }

  #fileSink(file: string): DownloadSink {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      throw fsWriteError(`cannot create ${file}`, err);
    }
    return {
      write: (chunk) => this.#write(fd, chunk),
      finish: () => fsyncSync(fd),
      close: () => closeSync(fd),
    };
  }

  async #download(url: string, maxLength: number, openSink: () => DownloadSink): Promise<void> {
    const started = this.#now();
    this.#remainingTotal(url); // refuses at once when the update's time is already up
    // Exactly the total deadline when that is the nearer one, so a timeout names the right limit.
    const requestDeadline = Math.min(started + this.#limits.requestTimeoutMs, this.deadline);
    const controller = new AbortController();
    const abortWith = (err: LivegraftError): LivegraftError => {
      controller.abort(err);
      return err;
    };
    // Named by the deadline the timer was set for, not by the clock when it fires (it may fire early).
    const timeoutError = (firesAt: number): LivegraftError =>
      firesAt >= this.deadline
        ? new LivegraftError(
            'DOWNLOAD_TIMEOUT',
            `${url}: the update did not finish within ${this.#limits.totalTimeoutMs} ms; aborted`,
          )
        : new LivegraftError(
            'DOWNLOAD_TIMEOUT',
            `${url}: no complete answer within ${this.#limits.requestTimeoutMs} ms; aborted`,
          );
    // The headers wait is bounded by the request deadline too.
    const headerTimer = setTimeout(
      () => abortWith(timeoutError(requestDeadline)),
      Math.max(1, requestDeadline - this.#now()),
    );
    let body: ReadableStream<Uint8Array>;
    try {
      body = await this.#open(url, maxLength, controller.signal);
    } finally {
      clearTimeout(headerTimer);
    }
    const reader = body.getReader();
    let sink: DownloadSink;
    try {
      sink = openSink();
    } catch (err) {
      await reader.cancel().catch(() => undefined);
      throw err;
    }
    let received = 0;
    try {
      for (;;) {
        const now = this.#now();
        // The rate is judged once the grace period is over: by then `received` must reach minBytesPerSec * elapsed.
        const rateDeadline =
          started + Math.max(this.#limits.stallTimeoutMs, (received / this.#limits.minBytesPerSec) * 1000);
        const stallDeadline = now + this.#limits.stallTimeoutMs;
        const until = Math.min(requestDeadline, this.deadline, rateDeadline, stallDeadline);
        // Which limit fires is known now: a timer may run a millisecond before the clock reads `until`.
        const limit =
          until === requestDeadline || until === this.deadline ? 'time' : until === stallDeadline ? 'stall' : 'rate';
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => {
              const t = this.#now();
              if (limit === 'time') reject(abortWith(timeoutError(until)));
              else if (limit === 'stall')
                reject(
                  abortWith(
                    new LivegraftError(
                      'DOWNLOAD_STALLED',
                      `${url}: no data for ${this.#limits.stallTimeoutMs} ms; aborted`,
                    ),
                  ),
                );
              else
                reject(
                  abortWith(
                    new LivegraftError(
                      'DOWNLOAD_STALLED',
                      `${url}: ${received} bytes in ${t - started} ms is below the minimum of ` +
                        `${this.#limits.minBytesPerSec} bytes/s; aborted`,
                    ),
                  ),
                );
            },
            Math.max(1, until - now),
          );
        });
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await Promise.race([reader.read(), timeout]);
        } catch (err) {
          throw this.#networkError(url, err, controller.signal);
        } finally {
          clearTimeout(timer);
        }
        if (chunk.done) break;
        received += chunk.value.byteLength;
        if (received > maxLength) {
          throw abortWith(
            new LivegraftError(
              'DOWNLOAD_TOO_LARGE',
              `${url}: more than the ${maxLength} bytes allowed; download aborted`,
            ),
          );
        }
        try {
          sink.write(chunk.value);
        } catch (err) {
          throw fsWriteError(`cannot stage ${url}`, err);
        }
      }
      try {
        sink.finish();
      } catch (err) {
        throw fsWriteError(`cannot stage ${url}`, err);
      }
    } catch (err) {
      await reader.cancel().catch(() => undefined);
      throw err;
    } finally {
      sink.close();
    }
  }
}
