import pg from 'pg';
import type { Logger } from 'pino';

/**
 * A change that may alter some hosts' desired levels, or close their push
 * streams. Nodes receive every notice (their own included) and act on the
 * push connections they hold.
 */
export type Notice =
  | {
      kind: 'desired';
      /** ms since the epoch when the change was made; push latency is measured from it. */
      at: number;
      all?: boolean;
      feeds?: string[];
      kernelIds?: string[];
      hostIds?: string[];
      tags?: string[];
    }
  | { kind: 'revoke'; at: number; hostIds: string[] };

export interface FleetBus {
  publish(n: Notice): Promise<void>;
  /** One handler; set before start. */
  onNotice(handler: (n: Notice) => void): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** One server node (SQLite): notices go straight to the handler. */
export class LocalBus implements FleetBus {
  #handler: (n: Notice) => void = () => {};

  onNotice(handler: (n: Notice) => void): void {
    this.#handler = handler;
  }

  publish(n: Notice): Promise<void> {
    queueMicrotask(() => this.#handler(n));
    return Promise.resolve();
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export const PG_CHANNEL = 'livegraft_fleet';
/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7900;
/** Host ids per notice, so a big list splits into payloads under the limit. */
const HOST_IDS_PER_NOTICE = 100;
const RECONNECT_DELAY_MS = 1000;

/**
 * Several server nodes on one PostgreSQL: notices travel by NOTIFY on one
 * channel, and every node LISTENs on a dedicated connection (outside the
 * pool). After a lost connection the node resynchronises all its streams,
 * since notices sent meanwhile are gone.
 */
export class PgBus implements FleetBus {
  readonly #url: string;
  readonly #log: Logger;
  readonly #notify: (payload: string) => Promise<void>;
  #handler: (n: Notice) => void = () => {};
  #client: pg.Client | undefined;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  /** `notify` sends one payload with pg_notify through the node's pool. */
  constructor(url: string, log: Logger, notify: (channel: string, payload: string) => Promise<void>) {
    this.#url = url;
    this.#log = log;
    this.#notify = (payload) => notify(PG_CHANNEL, payload);
  }

  onNotice(handler: (n: Notice) => void): void {
    this.#handler = handler;
  }

  async publish(n: Notice): Promise<void> {
    for (const part of split(n)) {
      const payload = JSON.stringify(part);
      if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
        // Too many feeds or tags to name: every node rechecks all its streams instead.
        await this.#notify(JSON.stringify({ kind: 'desired', at: n.at, all: true } satisfies Notice));
      } else {
        await this.#notify(payload);
      }
    }
  }

  async start(): Promise<void> {
    await this.#connect();
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#url });
    client.on('notification', (msg) => {
      if (msg.channel !== PG_CHANNEL || msg.payload === undefined) return;
      let n: Notice;
      try {
        n = JSON.parse(msg.payload) as Notice;
      } catch {
        this.#log.warn({ payload: msg.payload.slice(0, 200) }, 'ignoring a malformed fleet notice');
        return;
      }
      this.#handler(n);
    });
    client.on('error', (err) => {
      this.#log.warn({ err }, 'fleet notice connection lost; reconnecting');
      this.#scheduleReconnect(client);
    });
    client.on('end', () => this.#scheduleReconnect(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${PG_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    this.#client = client;
  }

  #scheduleReconnect(dead: pg.Client): void {
    if (this.#closed || this.#client !== dead || this.#retry !== undefined) return;
    this.#client = undefined;
    void dead.end().catch(() => {});
    const attempt = (): void => {
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        if (this.#closed) return;
        this.#connect().then(
          () => this.#handler({ kind: 'desired', at: Date.now(), all: true }),
          (err: unknown) => {
            this.#log.warn({ err }, 'fleet notice reconnect failed; retrying');
            if (!this.#closed) attempt();
          },
        );
      }, RECONNECT_DELAY_MS);
      this.#retry.unref();
    };
    attempt();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    const c = this.#client;
    this.#client = undefined;
    if (c !== undefined) await c.end().catch(() => {});
  }
}

function split(n: Notice): Notice[] {
  if (n.hostIds === undefined || n.hostIds.length <= HOST_IDS_PER_NOTICE) return [n];
  const out: Notice[] = [];
  for (let i = 0; i < n.hostIds.length; i += HOST_IDS_PER_NOTICE) {
    out.push({ ...n, hostIds: n.hostIds.slice(i, i + HOST_IDS_PER_NOTICE) });
  }
  return out;
}
