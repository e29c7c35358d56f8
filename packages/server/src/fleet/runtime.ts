import { readFile } from 'node:fs/promises';
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { CLOCK_SKEW_WARN_SEC, LivegraftError } from '@livegraft/protocol';
import type { Config } from '../config.ts';
import type { App, RouteContext } from '../context.ts';
import type { HostRepository } from '../db/hosts.ts';
import type { OpenedDatabase } from '../db/open.ts';
import type { PatchRepository } from '../db/patches.ts';
import type { Database } from '../db/schema.ts';
import { ServerMetrics } from '../metrics.ts';
import { RateLimiter } from '../rate-limit.ts';
import { eventRoutes } from '../routes/events.ts';
import { feedRoutes } from '../routes/feeds.ts';
import { fleetHostRoutes } from '../routes/fleet-hosts.ts';
import { pinRoutes } from '../routes/pins.ts';
import { tokenRoutes } from '../routes/tokens.ts';
import { LocalBus, PgBus, type FleetBus, type Notice } from './bus.ts';
import { PushHub } from './push.ts';
import { Fleet } from './service.ts';

export const DEFAULT_PUSH_SPREAD_SEC = 120;
export const DEFAULT_PROMOTION_INTERVAL_SEC = 60;
export const DEFAULT_ENROLL_BURST = 20;
export const DEFAULT_ENROLL_PER_MINUTE = 60;
export const DEFAULT_STALL_SEC = 600;

/** Test seams for the fleet parts; production uses the defaults. */
export interface FleetDeps {
  heartbeatMs?: number;
  /** For the push spread; Math.random by default. */
  random?: () => number;
  /** Milliseconds for the enrolment rate limiter. */
  now?: () => number;
  /** False turns off the periodic promotion job (tests call evaluatePromotions themselves). */
  promotionTimer?: boolean;
}

export interface FleetRuntime {
  fleet: Fleet;
  push: PushHub;
  metrics: ServerMetrics;
  enrollLimit: RateLimiter;
  /** Calls `fn` with every fleet notice (any node's), before the push streams hear of it. */
  onNotice(fn: (n: Notice) => void): void;
  start(): Promise<void>;
  /** Ends the push streams (before the HTTP server waits for its connections). */
  closeStreams(): void;
  stop(): Promise<void>;
}

export function createFleetRuntime(o: {
  config: Config;
  database: OpenedDatabase;
  hosts: HostRepository;
  patches: PatchRepository;
  clock: () => Date;
  randomId: () => string;
  log: Logger;
  deps?: FleetDeps;
}): FleetRuntime {
  const { config, database, log } = o;
  const deps = o.deps ?? {};
  const db: Kysely<Database> = database.db;
  const bus: FleetBus =
    database.kind === 'postgres' && database.url !== undefined
      ? new PgBus(database.url, log, async (channel, payload) => {
          await sql`select pg_notify(${channel}, ${payload})`.execute(db);
        })
      : new LocalBus();
  const fleet = new Fleet({
    db,
    hosts: o.hosts,
    patches: o.patches,
    bus,
    clock: o.clock,
    randomId: o.randomId,
    log,
    stallSec: config.stallSec ?? DEFAULT_STALL_SEC,
  });
  // The metrics read the hub's size lazily; the hub reports latencies into the metrics.
  const hubRef: { hub?: PushHub } = {};
  const metrics = new ServerMetrics({
    hostsByState: () => o.hosts.countsByFeedAndState(),
    feedLevels: async () =>
      (await fleet.feeds.levels()).map((r) => ({ feed: r.feed, kernelId: r.kernel_id, level: r.level })),
    sseConnections: () => hubRef.hub?.size ?? 0,
    staleHosts: () => o.hosts.countStaleByFeed(new Date(o.clock().getTime() - 2 * config.checkinIntervalSec * 1000)),
    clockSkewedHosts: () => o.hosts.countClockSkewedByFeed(CLOCK_SKEW_WARN_SEC),
  });
  const hub = new PushHub({
    spreadMs: (config.pushSpreadSec ?? DEFAULT_PUSH_SPREAD_SEC) * 1000,
    clock: o.clock,
    resolve: (ids) => fleet.resolve(ids),
    onPushed: (sec) => metrics.pushSeconds.observe(sec),
    onError: (err) => log.error({ err }, 'push failed'),
    ...(deps.heartbeatMs === undefined ? {} : { heartbeatMs: deps.heartbeatMs }),
    ...(deps.random === undefined ? {} : { random: deps.random }),
  });
  hubRef.hub = hub;
  const listeners: ((n: Notice) => void)[] = [];
  bus.onNotice((n) => {
    // Any node's change (this one's included) may alter the fleet snapshot the check-ins read.
    fleet.invalidate();
    for (const fn of listeners) fn(n);
    hub.handle(n);
  });
  const enrollLimit = new RateLimiter({
    burst: config.enrollBurst ?? DEFAULT_ENROLL_BURST,
    perMinute: config.enrollPerMinute ?? DEFAULT_ENROLL_PER_MINUTE,
    ...(deps.now === undefined ? {} : { now: deps.now }),
  });
  let timer: NodeJS.Timeout | undefined;
  let evaluating = false;
  return {
    fleet,
    push: hub,
    metrics,
    enrollLimit,
    onNotice(fn) {
      listeners.push(fn);
    },
    async start() {
      await bus.start();
      hub.start();
      if (deps.promotionTimer === false) return;
      const every = (config.promotionIntervalSec ?? DEFAULT_PROMOTION_INTERVAL_SEC) * 1000;
      timer = setInterval(() => {
        if (evaluating) return;
        evaluating = true;
        fleet
          .evaluatePromotions()
          .then((done) => {
            if (done.length > 0) log.info({ promoted: done }, 'promotion rules moved levels');
          })
          .catch((err: unknown) => log.error({ err }, 'promotion job failed'))
          .finally(() => (evaluating = false));
      }, every);
      timer.unref();
    },
    closeStreams() {
      if (timer !== undefined) clearInterval(timer);
      hub.closeAll();
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      fleet.stop();
      await hub.idle().catch(() => {});
      await bus.close();
    },
  };
}

/** Every fleet route under the API prefix. */
export function fleetRoutes(api: App, ctx: RouteContext): void {
  feedRoutes(api, ctx);
  pinRoutes(api, ctx);
  fleetHostRoutes(api, ctx);
  tokenRoutes(api, ctx);
  eventRoutes(api, ctx);
}

/** Fastify's `https` option from --tls-cert/--tls-key, or undefined for plain HTTP. */
export async function tlsOptions(config: Config): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (config.tlsCert === undefined && config.tlsKey === undefined) return undefined;
  if (config.tlsCert === undefined || config.tlsKey === undefined) {
    throw new LivegraftError('CONFIG_INVALID', 'TLS needs both --tls-cert and --tls-key');
  }
  const read = async (path: string, what: string): Promise<Buffer> =>
    readFile(path).catch((err: NodeJS.ErrnoException) => {
      throw new LivegraftError('CONFIG_INVALID', `cannot read the TLS ${what} ${path}: ${err.message}`);
    });
  return { cert: await read(config.tlsCert, 'certificate'), key: await read(config.tlsKey, 'key') };
}
