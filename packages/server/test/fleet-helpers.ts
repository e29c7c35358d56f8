import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  API_PREFIX,
  type CheckinRequest,
  type CheckinResponse,
  type DesiredEvent,
  type EnrollResponse,
} from '@livegraft/protocol';
import { parseConfig, startServer, type Config, type RunningServer, type ServerDeps } from '../src/index.ts';
import { buildPatch, kernelIdentity, PROC_VERSION, type Answer, type CallInit } from './helpers.ts';

/** How long a test waits for a pushed event before failing. */
export const EVENT_TIMEOUT_MS = 5000;

/** A clock the test moves by hand. */
export class ManualClock {
  #t: number;
  constructor(start = Date.parse('2026-03-02T10:00:00.000Z')) {
    this.#t = start;
  }
  readonly now = (): Date => new Date(this.#t);
  advance(sec: number): void {
    this.#t += sec * 1000;
  }
  set(iso: string): void {
    this.#t = Date.parse(iso);
  }
}

export interface FleetHarness {
  server: RunningServer;
  dataDir: string;
  adminToken: string;
  registrationKey: string;
  call: (method: string, path: string, init?: CallInit) => Promise<Answer>;
  /** call() that asserts a 2xx status and returns the JSON. */
  ok: <T = unknown>(method: string, path: string, init?: CallInit) => Promise<T>;
  enroll: (hostname: string, opts?: { key?: string; procVersion?: string }) => Promise<EnrollResponse>;
  checkin: (token: string, over?: Partial<CheckinRequest>) => Promise<CheckinResponse>;
  publish: (level: number, opts?: { kernelId?: string }) => Promise<void>;
  stop: () => Promise<void>;
}

export interface FleetHarnessOptions {
  /** A PostgreSQL URL; SQLite in the data dir otherwise. */
  database?: string;
  config?: Partial<Config>;
  deps?: ServerDeps;
  /** Share secrets between nodes of one deployment. */
  adminToken?: string;
  registrationKey?: string;
}

export async function startFleetHarness(o: FleetHarnessOptions = {}): Promise<FleetHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-fleet-test-'));
  const config = parseConfig({
    dataDir: dir,
    port: 0,
    checkinIntervalSec: 600,
    logLevel: 'silent',
    pushSpreadSec: 0,
    ...(o.database === undefined ? {} : { database: o.database }),
    ...(o.adminToken === undefined ? {} : { adminToken: o.adminToken }),
    ...(o.registrationKey === undefined ? {} : { registrationKey: o.registrationKey }),
    ...o.config,
  });
  const server = await startServer(config, {
    logger: pino({ level: 'silent' }),
    ...o.deps,
    fleet: { promotionTimer: false, ...o.deps?.fleet },
  }).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const adminToken = o.adminToken ?? (await readFile(join(dir, 'admin-token'), 'utf8')).trim();
  const registrationKey = o.registrationKey ?? (await readFile(join(dir, 'registration-key'), 'utf8')).trim();
  const call = async (method: string, path: string, init: CallInit = {}): Promise<Answer> => {
    const headers: Record<string, string> = {};
    const token = init.token === undefined ? adminToken : init.token;
    if (token !== null) headers['authorization'] = `Bearer ${token}`;
    let body: string | Uint8Array | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.body !== undefined) {
      headers['content-type'] = init.contentType ?? 'application/octet-stream';
      body = init.body;
    }
    const url = /^\/(api|metrics|openapi\.json|healthz|tuf)/.test(path) ? path : `${API_PREFIX}${path}`;
    const res = await fetch(`${server.url}${url}`, { method, headers, body });
    const bytes = Buffer.from(await res.arrayBuffer());
    const isJson = (res.headers.get('content-type') ?? '').includes('application/json');
    return { status: res.status, headers: res.headers, bytes, json: isJson ? JSON.parse(bytes.toString()) : undefined };
  };
  const h: FleetHarness = {
    server,
    dataDir: dir,
    adminToken,
    registrationKey,
    call,
    async ok<T>(method: string, path: string, init?: CallInit): Promise<T> {
      const res = await call(method, path, init);
      assert.ok(res.status >= 200 && res.status < 300, `${method} ${path}: ${res.status} ${res.bytes.toString()}`);
      return res.json as T;
    },
    async enroll(hostname, opts = {}) {
      return h.ok<EnrollResponse>('POST', '/hosts/enroll', {
        token: null,
        json: {
          registrationKey: opts.key ?? registrationKey,
          hostname,
          kernel: kernelIdentity(opts.procVersion ?? PROC_VERSION),
          agentVersion: '0.2.0',
        },
      });
    },
    async checkin(token, over = {}) {
      return h.ok<CheckinResponse>('POST', '/hosts/checkin', {
        token,
        json: {
          kernel: kernelIdentity(),
          appliedLevel: 0,
          state: 'unpatched',
          agentVersion: '0.2.0',
          uptimeSec: 100,
          ...over,
        } satisfies CheckinRequest,
      });
    },
    async publish(level, opts = {}) {
      const p = buildPatch({ level, ...(opts.kernelId === undefined ? {} : { kernelId: opts.kernelId }) });
      await h.ok('PUT', `/modules/${p.sha256}`, { body: p.bytes });
      await h.ok('POST', '/patches', { json: { manifest: p.manifest, publish: true } });
    },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}

/** A Server-Sent Events client on a host token, collecting `desired` events. */
export class SseClient {
  readonly events: DesiredEvent[] = [];
  status = 0;
  closed = false;
  readonly #abort = new AbortController();
  #waiters: (() => void)[] = [];
  #done: Promise<void> = Promise.resolve();

  static async open(baseUrl: string, token: string): Promise<SseClient> {
    const c = new SseClient();
    const res = await fetch(`${baseUrl}${API_PREFIX}/events/stream`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: c.#abort.signal,
    });
    c.status = res.status;
    if (res.status !== 200 || res.body === null) {
      await res.arrayBuffer().catch(() => {});
      c.closed = true;
      return c;
    }
    c.#done = c.#read(res.body);
    return c;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const lines = frame.split('\n');
          const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
          const data = lines.find((l) => l.startsWith('data: '))?.slice(6);
          if (event === 'desired' && data !== undefined) this.events.push(JSON.parse(data) as DesiredEvent);
          this.#wake();
        }
      }
    } catch {
      /* aborted by close() */
    }
    this.closed = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits for an event satisfying the predicate (already received ones count). */
  async waitFor(pred: (e: DesiredEvent) => boolean, timeoutMs = EVENT_TIMEOUT_MS): Promise<DesiredEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(pred);
      if (found !== undefined) return found;
      if (this.closed) throw new Error('stream closed before the event came');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits until the server ends the stream. */
  async waitClosed(timeoutMs = EVENT_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('stream still open');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done;
  }
}
