import type { ServerResponse } from 'node:http';
import type { DesiredEvent, DesiredLevel } from '@livegraft/protocol';
import type { FleetHost } from '../db/hosts.ts';
import type { Notice } from './bus.ts';

/** Comment lines keep idle proxies and NATs from dropping a quiet stream. */
export const HEARTBEAT_MS = 25_000;
/** A client that lets this much pile up unread is dropped; it reconnects and is told the current state. */
const MAX_BUFFERED_BYTES = 64 * 1024;
/** Tells EventSource-style clients how long to wait before reconnecting. */
const CLIENT_RETRY_MS = 10_000;

/** One open stream: a few strings per host, no timers of its own. */
interface Conn {
  host: FleetHost;
  res: ServerResponse;
  /** The desired level last sent, as text, so unchanged levels are not pushed again. */
  lastKey: string;
}

export interface PushOptions {
  heartbeatMs?: number;
  /** Window of the per-host random delay carried by each event. */
  spreadMs: number;
  random?: () => number;
  clock: () => Date;
  /** Fresh hosts (unknown or revoked ones left out) with their desired levels. */
  resolve: (hostIds: string[]) => Promise<Map<string, { host: FleetHost; desired: DesiredLevel | null }>>;
  onPushed?: (latencySec: number) => void;
  onError: (err: unknown) => void;
}

/**
 * The server side of `GET /events/stream`: holds every open stream of this
 * node and pushes `desired` events when a notice may have changed a host's
 * desired level. One shared heartbeat timer serves all streams.
 */
export class PushHub {
  readonly #byHost = new Map<string, Set<Conn>>();
  readonly #opts: PushOptions;
  readonly #random: () => number;
  #size = 0;
  #heartbeat: NodeJS.Timeout | undefined;
  // Notices are handled one at a time so a slower, older computation never overwrites a newer one.
  #queue: Promise<void> = Promise.resolve();

  constructor(opts: PushOptions) {
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
  }

  get size(): number {
    return this.#size;
  }

  start(): void {
    this.#heartbeat = setInterval(() => this.#beat(), this.#opts.heartbeatMs ?? HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Takes over a hijacked response, sends the current desired level, and keeps it until either side closes. */
  open(res: ServerResponse, host: FleetHost, desired: DesiredLevel | null): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    });
    const conn: Conn = { host, res, lastKey: '' };
    let set = this.#byHost.get(host.id);
    if (set === undefined) this.#byHost.set(host.id, (set = new Set()));
    set.add(conn);
    this.#size++;
    res.on('close', () => this.#forget(conn));
    res.write(`retry: ${CLIENT_RETRY_MS}\n\n`);
    this.#send(conn, desired, undefined);
  }

  /** A check-in told the host its desired level already; remember it so it is not pushed again. */
  noteDesired(host: FleetHost, desired: DesiredLevel | null): void {
    for (const conn of this.#byHost.get(host.id) ?? []) {
      conn.host = host;
      conn.lastKey = keyOf(host, desired);
    }
  }

  handle(n: Notice): void {
    this.#queue = this.#queue.then(() => this.#handle(n)).catch(this.#opts.onError);
  }

  /** Resolves once every notice handed over so far has been acted on. */
  idle(): Promise<void> {
    return this.#queue;
  }

  closeAll(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    for (const set of this.#byHost.values()) for (const c of set) c.res.end();
  }

  async #handle(n: Notice): Promise<void> {
    if (n.kind === 'revoke') {
      for (const id of n.hostIds) for (const c of this.#byHost.get(id) ?? []) c.res.end();
      return;
    }
    const matched: Conn[] = [];
    for (const set of this.#byHost.values()) for (const c of set) if (matches(n, c.host)) matched.push(c);
    if (matched.length === 0) return;
    const fresh = await this.#opts.resolve([...new Set(matched.map((c) => c.host.id))]);
    for (const c of matched) {
      const now = fresh.get(c.host.id);
      if (now === undefined) {
        c.res.end();
        continue;
      }
      c.host = now.host;
      this.#send(c, now.desired, n.at);
    }
  }

  #send(c: Conn, desired: DesiredLevel | null, noticeAt: number | undefined): void {
    const key = keyOf(c.host, desired);
    if (key === c.lastKey || c.res.writableEnded) return;
    c.lastKey = key;
    const now = this.#opts.clock();
    const data: DesiredEvent = {
      kernelId: c.host.kernelId,
      desired,
      spreadMs: Math.floor(this.#random() * this.#opts.spreadMs),
      at: now.toISOString(),
    };
    c.res.write(`event: desired\ndata: ${JSON.stringify(data)}\n\n`);
    if (noticeAt !== undefined) this.#opts.onPushed?.(Math.max(0, Date.now() - noticeAt) / 1000);
  }

  #beat(): void {
    for (const set of this.#byHost.values()) {
      for (const c of set) {
        if (c.res.writableLength > MAX_BUFFERED_BYTES) c.res.destroy();
        else c.res.write(': hb\n\n');
      }
    }
  }

  #forget(conn: Conn): void {
    const set = this.#byHost.get(conn.host.id);
    if (set === undefined || !set.delete(conn)) return;
    this.#size--;
    if (set.size === 0) this.#byHost.delete(conn.host.id);
  }
}

function keyOf(host: FleetHost, desired: DesiredLevel | null): string {
  return `${host.kernelId} ${JSON.stringify(desired)}`;
}

function matches(n: Notice & { kind: 'desired' }, h: FleetHost): boolean {
  if (n.all === true) return true;
  if (n.hostIds?.includes(h.id) === true) return true;
  if (n.tags !== undefined && n.tags.some((t) => h.tags.includes(t))) return true;
  const kernelOk = n.kernelIds === undefined || n.kernelIds.includes(h.kernelId);
  if (n.feeds !== undefined) return n.feeds.includes(h.feed) && kernelOk;
  return n.kernelIds !== undefined && n.hostIds === undefined && n.tags === undefined && kernelOk;
}
