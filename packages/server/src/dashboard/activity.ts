import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  API_PREFIX,
  type ApplyResult,
  type AuditEntry,
  type CheckinRequest,
  type HostState,
  type TripwireReport,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { AuditRepository } from '../db/audit.ts';
import type { App, RouteContext } from '../context.ts';
import { StreamQuota } from '../stream-quota.ts';

/** Audit entries written on another server node reach this one's dashboards within this. */
export const ACTIVITY_POLL_MS = 2000;
/** Comment lines keep idle proxies from dropping a quiet stream. */
const HEARTBEAT_MS = 25_000;
/** Dashboards open at once on one node; more are refused (each is a socket and a poll). */
export const MAX_ACTIVITY_STREAMS = 200;
/** One token (every dashboard tab signed in with it) holds at most this many, so it cannot take them all. */
export const MAX_ACTIVITY_STREAMS_PER_TOKEN = 10;
/** A dashboard that lets this much pile up unread is dropped; it reconnects and reloads. */
const MAX_BUFFERED_BYTES = 256 * 1024;
/** Audit entries read per poll; a burst larger than this shows its newest part. */
const AUDIT_PER_POLL = 200;
/** Hosts whose last announced apply is remembered, so a repeated check-in is not an apply again. */
const MAX_REMEMBERED_HOSTS = 50_000;
/** Tripwire hits carried per event; the page reloads the full list anyway. */
const TRIPWIRE_EVENTS_PER_MESSAGE = 10;
const CLIENT_RETRY_MS = 5000;

export const ACTIVITY_STREAM_PATH = '/activity/stream';

/** `event: checkin` data. */
export interface CheckinActivity {
  hostId: string;
  hostname: string;
  kernelId: string;
  state: HostState;
  appliedLevel: number;
  /** Set when this check-in reported an apply (or rollback) not announced before. */
  apply: ApplyResult | null;
  at: string;
}

/** `event: tripwire` data. */
export interface TripwireActivity {
  hostId: string;
  hostname: string;
  accepted: number;
  events: { cve: string; comm: string; pid: number; at: string }[];
}

/**
 * The dashboard's live feed (`GET /api/v1/activity/stream`, Server-Sent
 * Events, any API token or session): audit entries (publishes, promotions,
 * rollbacks, pins, halts...) as they are written, check-ins with their
 * applies, and tripwire hits. Audit entries come from the shared database (so
 * changes made on any node appear); check-ins and tripwires are announced by
 * the node that received them.
 */
export class ActivityHub {
  readonly #streams = new Set<ServerResponse>();
  readonly #audit: (since: string) => Promise<AuditEntry[]>;
  readonly #clock: () => Date;
  readonly #onError: (err: unknown) => void;
  readonly #applies = new Map<string, string>();
  /** Each host's last announced state, to tell a change from a heartbeat. */
  readonly #lastSeen = new Map<string, string>();
  #changes = 0;
  #cursor = '';
  #seenAtCursor = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #again = false;
  readonly #startedAt: string;

  constructor(o: {
    audit: (since: string) => Promise<AuditEntry[]>;
    clock: () => Date;
    onError: (err: unknown) => void;
  }) {
    this.#audit = o.audit;
    this.#clock = o.clock;
    this.#onError = o.onError;
    this.#startedAt = o.clock().toISOString();
  }

  get size(): number {
    return this.#streams.size;
  }

  /**
   * Goes up with every change the live dashboards are told of (a host's
   * state, level or kernel, an apply, an audit entry); heartbeats leave it.
   * Summaries they reload on such an event must not be answered from before it.
   */
  get changes(): number {
    return this.#changes;
  }

  open(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    if (this.#streams.size === 0) {
      this.#cursor = this.#clock().toISOString();
      this.#seenAtCursor = new Set();
      this.#timer = setInterval(() => this.poll(), ACTIVITY_POLL_MS);
      this.#timer.unref();
      this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
      this.#heartbeat.unref();
    }
    this.#streams.add(res);
    res.on('close', () => this.#forget(res));
    res.write(`retry: ${CLIENT_RETRY_MS}\n\n`);
    res.write(`event: ready\ndata: ${JSON.stringify({ at: this.#cursor })}\n\n`);
  }

  /** Reads new audit entries now (after a change on this node) instead of at the next tick. */
  poll(): void {
    if (this.#streams.size === 0) return;
    if (this.#polling !== undefined) {
      this.#again = true;
      return;
    }
    this.#polling = this.#pollAudit()
      .catch(this.#onError)
      .finally(() => {
        this.#polling = undefined;
        if (this.#again) {
          this.#again = false;
          this.poll();
        }
      });
  }

  /** Resolves when no poll is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#polling !== undefined) await this.#polling;
  }

  checkin(a: Omit<CheckinActivity, 'apply'>, report: CheckinRequest): void {
    if (this.#streams.size === 0) return;
    const last = report.lastApply;
    let apply: ApplyResult | null = null;
    // Applies from before the first dashboard connected are history, not activity.
    if (last !== undefined && last.at >= this.#startedAt && this.#applies.get(a.hostId) !== last.at) {
      apply = last;
      this.#applies.delete(a.hostId);
      this.#applies.set(a.hostId, last.at);
      if (this.#applies.size > MAX_REMEMBERED_HOSTS) {
        const oldest = this.#applies.keys().next().value;
        if (oldest !== undefined) this.#applies.delete(oldest);
      }
    }
    const seen = `${a.state} ${a.appliedLevel} ${a.kernelId}`;
    if (apply !== null || this.#lastSeen.get(a.hostId) !== seen) {
      this.#changes++;
      this.#lastSeen.delete(a.hostId);
      this.#lastSeen.set(a.hostId, seen);
      if (this.#lastSeen.size > MAX_REMEMBERED_HOSTS) {
        const oldest = this.#lastSeen.keys().next().value;
        if (oldest !== undefined) this.#lastSeen.delete(oldest);
      }
    }
    this.#broadcast('checkin', { ...a, apply } satisfies CheckinActivity);
  }

  tripwire(t: TripwireActivity): void {
    this.#broadcast('tripwire', t);
  }

  closeAll(): void {
    for (const res of this.#streams) res.end();
    this.#stopTimers();
  }

  async #pollAudit(): Promise<void> {
    const rows = await this.#audit(this.#cursor);
    const fresh = rows.filter((r) => !this.#seenAtCursor.has(r.id)).reverse();
    for (const e of fresh) {
      if (e.at > this.#cursor) {
        this.#cursor = e.at;
        this.#seenAtCursor = new Set();
      }
      if (e.at === this.#cursor) this.#seenAtCursor.add(e.id);
      this.#changes++;
      this.#broadcast('audit', e);
    }
  }

  #broadcast(event: string, data: unknown): void {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.#streams) {
      if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
      else res.write(text);
    }
  }

  #beat(): void {
    for (const res of this.#streams) res.write(': hb\n\n');
  }

  #forget(res: ServerResponse): void {
    if (!this.#streams.delete(res)) return;
    if (this.#streams.size === 0) this.#stopTimers();
  }

  #stopTimers(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#timer = undefined;
    this.#heartbeat = undefined;
  }
}

const CHECKIN_ROUTE = `${API_PREFIX}/hosts/checkin`;
const TRIPWIRE_ROUTE = `${API_PREFIX}/hosts/tripwire`;

/** `GET /activity/stream` under the API prefix: any API token or dashboard session. */
export function activityStreamRoute(api: App, ctx: RouteContext, hub: ActivityHub): void {
  const perToken = new StreamQuota(MAX_ACTIVITY_STREAMS_PER_TOKEN, 'activity streams');
  api.get(ACTIVITY_STREAM_PATH, { onRequest: guard(ctx.auth, 'viewer') }, async (req, reply) => {
    if (hub.size >= MAX_ACTIVITY_STREAMS) {
      void reply.header('retry-after', '30');
      return reply.status(503).send({ code: 'UNAVAILABLE', message: 'too many dashboards are connected' });
    }
    const who = req.principal;
    if (who?.kind === 'admin') perToken.acquire(who.tokenId, `token "${who.name}"`, reply.raw);
    reply.hijack();
    hub.open(reply.raw);
  });
}

/**
 * On the root app: an onResponse hook feeding the hub (any successful change
 * through the API triggers an audit read; check-ins and tripwire reports are
 * announced) and stream shutdown before the server waits for connections.
 */
export function activityHooks(root: App, ctx: RouteContext, hub: ActivityHub): void {
  // A callback hook, not an async one: it runs after every response of a busy fleet.
  root.addHook('onResponse', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    done();
    if (hub.size === 0 || reply.statusCode >= 300) return;
    const route = req.routeOptions.url;
    if (route === CHECKIN_ROUTE || route === TRIPWIRE_ROUTE) {
      announceHost(ctx, hub, req, route === CHECKIN_ROUTE).catch((err: unknown) =>
        req.log.warn({ err }, 'activity announcement failed'),
      );
    } else if (req.method !== 'GET' && req.method !== 'HEAD' && req.url.startsWith(API_PREFIX)) {
      hub.poll();
    }
  });
  root.addHook('preClose', (done) => {
    hub.closeAll();
    done();
  });
}

async function announceHost(ctx: RouteContext, hub: ActivityHub, req: FastifyRequest, checkin: boolean): Promise<void> {
  const who = req.principal;
  if (who?.kind !== 'host') return;
  const host = await ctx.hosts.get(who.hostId);
  if (host === undefined) return;
  if (checkin) {
    const report = req.body as CheckinRequest;
    hub.checkin(
      {
        hostId: host.id,
        hostname: host.hostname,
        kernelId: host.kernelId,
        state: host.state,
        appliedLevel: host.appliedLevel,
        at: host.lastCheckinAt ?? ctx.clock().toISOString(),
      },
      report,
    );
    // A check-in can halt a rollout or promote a level; those are audited.
    hub.poll();
    return;
  }
  const report = req.body as TripwireReport;
  hub.tripwire({
    hostId: host.id,
    hostname: host.hostname,
    accepted: report.events.length,
    events: report.events
      .slice(0, TRIPWIRE_EVENTS_PER_MESSAGE)
      .map((e) => ({ cve: e.cve, comm: e.comm, pid: e.pid, at: e.at })),
  });
}

/** New audit entries for the hub: those at or after `since`, newest first, bounded. */
export function auditSince(audit: AuditRepository): (since: string) => Promise<AuditEntry[]> {
  return (since) => audit.list({ since, limit: AUDIT_PER_POLL });
}
