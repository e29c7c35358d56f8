import {
  LivegraftError,
  fixBundleValidator,
  manifestValidator,
  type FixBundle,
  type JobClaim,
  type JobHeartbeat,
  type JobLease,
  type JobResult,
  type PatchManifest,
} from '@livegraft/protocol';

/** How the worker reaches the server. */
export interface WorkerServer {
  /** The server's base URL, e.g. https://patches.example.org (the API lives under /api/v1). */
  url: URL;
  token: string;
  workerId: string;
  /** Injected for tests; default the global fetch. */
  fetch?: typeof fetch;
}

const JSON_TIMEOUT_MS = 30_000;
const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;
const UPLOAD_TIMEOUT_MS = 10 * 60_000;
/** Largest answer read: a module (64 MiB) is the biggest thing the server sends a worker. */
const MAX_ANSWER_BYTES = 80 * 1024 * 1024;
export const LEASE_HEADER = 'x-livegraft-lease';

async function readCapped(res: Response, cap: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > cap)
    throw new LivegraftError('SERVER_ERROR', `${what}: the server sent ${declared} bytes, more than ${cap}`);
  if (res.body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Uint8Array).length;
    if (size > cap) throw new LivegraftError('SERVER_ERROR', `${what}: the answer is larger than ${cap} bytes`);
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}

/**
 * The worker's side of the job routes. Every call is bounded in time and in
 * the bytes it reads; a refused call throws with the server's code and message.
 */
export class JobClient {
  readonly #s: WorkerServer;
  readonly #fetch: typeof fetch;

  constructor(server: WorkerServer) {
    this.#s = server;
    this.#fetch = server.fetch ?? fetch;
  }

  async #call(
    method: string,
    route: string,
    opts: { body?: unknown; lease?: string; timeoutMs?: number; cap?: number } = {},
  ): Promise<{ status: number; body: Buffer }> {
    const url = new URL(`api/v1${route}`, this.#s.url.href.endsWith('/') ? this.#s.url : `${this.#s.url.href}/`);
    const headers: Record<string, string> = { authorization: `Bearer ${this.#s.token}` };
    if (opts.lease !== undefined) headers[LEASE_HEADER] = opts.lease;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method,
        headers,
        ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
        signal: AbortSignal.timeout(opts.timeoutMs ?? JSON_TIMEOUT_MS),
      });
    } catch (err) {
      const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      throw new LivegraftError('SERVER_UNREACHABLE', `${method} ${url.pathname}: ${cause}`, { cause: err });
    }
    const body = await readCapped(res, opts.cap ?? MAX_ANSWER_BYTES, `${method} ${url.pathname}`);
    if (res.status >= 400) {
      let code = res.status >= 500 ? 'SERVER_ERROR' : 'REQUEST_REFUSED';
      let message = body.toString('utf8').slice(0, 2000);
      try {
        const e = JSON.parse(message) as { code?: string; message?: string };
        if (typeof e.code === 'string') code = e.code;
        if (typeof e.message === 'string') message = e.message;
      } catch {
        // not JSON: keep the text
      }
      throw new LivegraftError(code, `${method} ${url.pathname}: ${res.status}: ${message}`, {
        details: { status: res.status },
      });
    }
    return { status: res.status, body };
  }

  /** A job, or undefined when none is waiting. */
  async claim(): Promise<JobClaim | undefined> {
    const r = await this.#call('POST', '/jobs/claim', { body: { workerId: this.#s.workerId } });
    if (r.status === 204 || r.body.length === 0) return undefined;
    return JSON.parse(r.body.toString('utf8')) as JobClaim;
  }

  async heartbeat(jobId: string, beat: JobHeartbeat): Promise<JobLease> {
    const r = await this.#call('POST', `/jobs/${encodeURIComponent(jobId)}/heartbeat`, { body: beat });
    return JSON.parse(r.body.toString('utf8')) as JobLease;
  }

  async fix(job: JobClaim, fixId: string): Promise<FixBundle> {
    const r = await this.#call('GET', `/jobs/${encodeURIComponent(job.jobId)}/fixes/${encodeURIComponent(fixId)}`, {
      lease: job.leaseId,
      timeoutMs: DOWNLOAD_TIMEOUT_MS,
    });
    return fixBundleValidator.parse(JSON.parse(r.body.toString('utf8')));
  }

  async previousManifest(job: JobClaim): Promise<PatchManifest> {
    const r = await this.#call('GET', `/jobs/${encodeURIComponent(job.jobId)}/previous/manifest`, {
      lease: job.leaseId,
    });
    return manifestValidator.parse(JSON.parse(r.body.toString('utf8')));
  }

  async previousModule(job: JobClaim): Promise<Buffer> {
    const r = await this.#call('GET', `/jobs/${encodeURIComponent(job.jobId)}/previous/module`, {
      lease: job.leaseId,
      timeoutMs: DOWNLOAD_TIMEOUT_MS,
    });
    return r.body;
  }

  async result(jobId: string, result: JobResult): Promise<void> {
    await this.#call('POST', `/jobs/${encodeURIComponent(jobId)}/result`, {
      body: result,
      timeoutMs: UPLOAD_TIMEOUT_MS,
      cap: 1024 * 1024,
    });
  }
}
