import { hash } from 'node:crypto';
import { sql, type CompiledQuery, type Kysely, type Selectable } from 'kysely';
import {
  effectiveRelease,
  type ApplyResult,
  type BlockingTask,
  type CheckinRequest,
  type HostRecord,
  type HostState,
  type KernelEvent,
  type KernelIdentity,
  type PatchState,
} from '@livegraft/protocol';
import { DEFAULT_FEED } from './fleet-migration.ts';
import { HeartbeatBuffer } from './heartbeats.ts';
import { CompiledShapes } from './compiled.ts';
import type { ReadSync, WriteSync } from './node-sqlite.ts';
import type { Database, HostsTable } from './schema.ts';
import { sqlTrue } from './sql-bool.ts';

type HostRow = Selectable<HostsTable>;

/** Kernel events kept per host (the newest); older ones are in the audit log if they halted a rollout. */
const MAX_KERNEL_EVENTS_KEPT = 20;
/** Ids per `IN (...)` list, well under SQLite's and PostgreSQL's parameter limits. */
export const ID_CHUNK = 500;

export interface NewHost {
  id: string;
  hostname: string;
  tokenHash: string;
  kernel: KernelIdentity;
  agentVersion: string;
  feed?: string;
  tags?: string[];
}

/** What the fleet logic needs to know about a host to work out its desired level. */
export interface FleetHost {
  id: string;
  feed: string;
  kernelId: string;
  tags: string[];
  autoUpdate: boolean;
  appliedLevel: number;
  /** Fix ids the host is never offered: levels holding any of them are skipped. */
  ignore: string[];
}

/** What the fleet logic needs of a stored host (unset feed, tags and ignore-list read as their defaults). */
export function fleetHostOf(h: HostRecord): FleetHost {
  return {
    id: h.id,
    feed: h.feed ?? DEFAULT_FEED,
    kernelId: h.kernelId,
    tags: h.tags ?? [],
    autoUpdate: h.autoUpdate ?? true,
    appliedLevel: h.appliedLevel,
    ignore: h.ignore ?? [],
  };
}

export interface HostFilter {
  feed?: string;
  tag?: string;
  kernelId?: string;
}

export interface HostChanges {
  feed?: string;
  autoUpdate?: boolean;
  tags?: string[];
  /** Replaces the ignore-list. */
  ignore?: string[];
}

/** The host columns every check-in reads, by id (bound at run time). */
const slimSelect = (db: Kysely<Database>) =>
  db
    .selectFrom('hosts')
    .select([
      'id',
      'feed',
      'tags_json',
      'reported_tags_json',
      'auto_update',
      'ignore_json',
      'revoked_at',
      'applied_level',
      'report_fp',
      'last_apply_json',
      'kernel_id',
      // Whether the user-space part of the check-in has anything to offer (see UserspaceRepository),
      // read with the host instead of in a statement of its own.
      sql<unknown>`exists (select 1 from userspace_feed_levels where userspace_feed_levels.feed = hosts.feed)`.as(
        'userspace_levels',
      ),
      sql<unknown>`exists (select 1 from userspace_pins where userspace_pins.host_id = hosts.id)`.as('userspace_pins'),
    ])
    .where('id', '=', '');
type SlimQuery = ReturnType<ReturnType<typeof slimSelect>['compile']>;
type SlimRow = SlimQuery extends CompiledQuery<infer O> ? O : never;

/** Everything a report says except its uptime, which changes at every check-in. */
function reportFingerprint(report: CheckinRequest): string {
  const { uptimeSec: _uptime, ...rest } = report;
  return hash('sha256', JSON.stringify(rest));
}

/** The newest event time in a report, so events already judged do not count as new. */
function newestEventAt(report: CheckinRequest): string | null {
  let newest: string | null = null;
  for (const e of report.kernelEvents ?? []) if (newest === null || e.at > newest) newest = e.at;
  return newest;
}

export class HostRepository {
  readonly #db: Kysely<Database>;
  readonly #beats: HeartbeatBuffer;
  #slimQuery: SlimQuery | undefined;

  readonly #readSync: ReadSync | undefined;
  readonly #writeSync: WriteSync | undefined;
  /** The check-in's host-row update (one text per set of columns it writes) and the token lookup. */
  readonly #shapes = new CompiledShapes();

  /**
   * `readSync` and `writeSync` (SQLite only) serve the check-in's host read and update without a
   * round trip through Kysely.
   */
  constructor(
    db: Kysely<Database>,
    onError: (err: unknown) => void = () => {},
    readSync?: ReadSync,
    writeSync?: WriteSync,
  ) {
    this.#db = db;
    this.#beats = new HeartbeatBuffer(db, onError, writeSync);
    this.#readSync = readSync;
    this.#writeSync = writeSync;
  }

  /** A host as read, with its newer check-in time and uptime if they are still waiting to be written. */
  #withBeat(h: HostRecord): HostRecord {
    const beat = this.#beats.pending(h.id);
    if (beat === undefined || (h.lastCheckinAt !== null && beat.at < h.lastCheckinAt)) return h;
    return { ...h, lastCheckinAt: beat.at, uptimeSec: beat.uptimeSec };
  }

  /** The first row of a compiled read: synchronously on SQLite, else through Kysely. */
  async #first<R>(query: CompiledQuery): Promise<R | undefined> {
    if (this.#readSync === undefined) return (await this.#db.executeQuery<R>(query)).rows[0];
    return this.#readSync(query.sql, query.parameters)[0] as R | undefined;
  }

  /** Stores the check-in times and uptimes still waiting to be written with others. */
  flushHeartbeats(): Promise<void> {
    return this.#beats.flush();
  }

  async enroll(host: NewHost, now: Date): Promise<void> {
    await this.#db
      .insertInto('hosts')
      .values({
        id: host.id,
        hostname: host.hostname,
        token_hash: host.tokenHash,
        kernel_id: host.kernel.id,
        release: host.kernel.release,
        kernel_json: JSON.stringify(host.kernel),
        applied_level: 0,
        state: 'unpatched',
        last_error: null,
        last_apply_json: null,
        agent_version: host.agentVersion,
        uptime_sec: null,
        enrolled_at: now.toISOString(),
        last_checkin_at: null,
        ...(host.feed === undefined ? {} : { feed: host.feed }),
        ...(host.tags === undefined ? {} : { tags_json: JSON.stringify(host.tags) }),
      })
      .execute();
  }

  /** The live (not revoked) host whose token hashes to tokenHash, with the stored hash for a constant-time recheck. */
  async findByTokenHash(tokenHash: string): Promise<{ id: string; tokenHash: string } | undefined> {
    // Every check-in of a real fleet asks this: hosts check in less often than the token cache keeps a lookup.
    const query = this.#shapes.of('token', [tokenHash], () =>
      this.#db
        .selectFrom('hosts')
        .select(['id', 'token_hash'])
        .where('token_hash', '=', tokenHash)
        .where('revoked_at', 'is', null),
    );
    const row = await this.#first<{ id: string; token_hash: string }>(query);
    return row === undefined ? undefined : { id: row.id, tokenHash: row.token_hash };
  }

  /** Stores a check-in; returns the host's previous applied level and last apply time for change detection. */
  async checkin(
    id: string,
    report: CheckinRequest,
    now: Date,
  ): Promise<
    | {
        previousLevel: number;
        previousApplyAt: string | null;
        previousEventAt: string | null;
        /** The host as updated, for its desired level; undefined when it is revoked. */
        host: FleetHost | undefined;
        /** Whether, when the host was read, its feed held a library level or the host a library pin. */
        userspaceOffer: boolean;
      }
    | undefined
  > {
    // The hottest query of a fleet: compiled once, run with each host's id.
    this.#slimQuery ??= slimSelect(this.#db).compile();
    const slim = await this.#first<SlimRow>({ ...this.#slimQuery, parameters: [id] });
    if (slim === undefined) return undefined;
    const userspaceOffer = sqlTrue(slim.userspace_levels) || sqlTrue(slim.userspace_pins);
    const fp = reportFingerprint(report);
    const facts = (reportedTagsJson: string): FleetHost | undefined =>
      slim.revoked_at !== null
        ? undefined
        : toFleetHost({
            id: slim.id,
            feed: slim.feed,
            kernel_id: report.kernel.id,
            tags_json: slim.tags_json,
            reported_tags_json: reportedTagsJson,
            auto_update: slim.auto_update,
            ignore_json: slim.ignore_json,
            applied_level: report.appliedLevel,
          });
    if (slim.report_fp === fp) {
      // The same report as the one stored (by any node), already reviewed then: nothing is new.
      if (slim.revoked_at === null) this.#beats.add(id, now.toISOString(), report.uptimeSec);
      return {
        previousLevel: slim.applied_level,
        previousApplyAt: report.lastApply?.at ?? null,
        previousEventAt: newestEventAt(report),
        host: facts(slim.reported_tags_json),
        userspaceOffer,
      };
    }
    this.#beats.drop(id);
    // The stored events matter only to merge new ones (and to tell which are new).
    const stored =
      report.kernelEvents === undefined
        ? undefined
        : await this.#db.selectFrom('hosts').select('kernel_events_json').where('id', '=', id).executeTakeFirst();
    const prevEvents = parseJson<KernelEvent[]>(stored?.kernel_events_json ?? null) ?? [];
    const events =
      report.kernelEvents === undefined
        ? undefined
        : mergeEvents(prevEvents, report.kernelEvents).slice(-MAX_KERNEL_EVENTS_KEPT);
    const set = {
      // kernel_id is in two indexes: rewriting it unchanged still costs their upkeep.
      ...(slim.kernel_id === report.kernel.id ? {} : { kernel_id: report.kernel.id }),
      release: report.kernel.release,
      kernel_json: JSON.stringify(report.kernel),
      applied_level: report.appliedLevel,
      state: report.state,
      last_error: report.lastError ?? null,
      // A report without lastApply keeps the previous one: it is history, not state.
      ...(report.lastApply === undefined ? {} : { last_apply_json: JSON.stringify(report.lastApply) }),
      agent_version: report.agentVersion,
      uptime_sec: report.uptimeSec,
      clock_skew_sec: report.clockSkewSec ?? null,
      last_checkin_at: now.toISOString(),
      ...(report.tags === undefined ? {} : { reported_tags_json: JSON.stringify(report.tags) }),
      ...(report.blockingTasks === undefined ? {} : { blocking_json: JSON.stringify(report.blockingTasks) }),
      ...(report.patchState === undefined ? {} : { patch_state_json: JSON.stringify(report.patchState) }),
      ...(events === undefined ? {} : { kernel_events_json: JSON.stringify(events) }),
      report_fp: fp,
    };
    const update = this.#shapes.of(`checkin:${Object.keys(set).join(',')}`, [...Object.values(set), id], () =>
      this.#db.updateTable('hosts').set(set).where('id', '=', id),
    );
    if (this.#writeSync?.((exec) => exec(update.sql, update.parameters)) === undefined) {
      await this.#db.executeQuery(update);
    }
    return {
      previousLevel: slim.applied_level,
      previousApplyAt: parseJson<ApplyResult>(slim.last_apply_json)?.at ?? null,
      previousEventAt: prevEvents.at(-1)?.at ?? null,
      host: facts(report.tags === undefined ? slim.reported_tags_json : JSON.stringify(report.tags)),
      userspaceOffer,
    };
  }

  async get(id: string): Promise<HostRecord | undefined> {
    const row = await this.#db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : this.#withBeat(toHostRecord(row));
  }

  async list(filter: HostFilter = {}): Promise<HostRecord[]> {
    let q = this.#db.selectFrom('hosts').selectAll();
    if (filter.feed !== undefined) q = q.where('feed', '=', filter.feed);
    if (filter.kernelId !== undefined) q = q.where('kernel_id', '=', filter.kernelId);
    const rows = await q.orderBy('hostname').orderBy('id').execute();
    const records = rows.map((r) => this.#withBeat(toHostRecord(r)));
    return filter.tag === undefined ? records : records.filter((r) => r.tags?.includes(filter.tag ?? ''));
  }

  async update(id: string, changes: HostChanges): Promise<boolean> {
    const set = {
      ...(changes.feed === undefined ? {} : { feed: changes.feed }),
      ...(changes.autoUpdate === undefined ? {} : { auto_update: changes.autoUpdate ? 1 : 0 }),
      ...(changes.tags === undefined ? {} : { tags_json: JSON.stringify(changes.tags) }),
      ...(changes.ignore === undefined ? {} : { ignore_json: JSON.stringify(changes.ignore) }),
    };
    if (Object.keys(set).length === 0) return (await this.get(id)) !== undefined;
    const res = await this.#db.updateTable('hosts').set(set).where('id', '=', id).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Revokes the host's token; true if it was live. */
  async revoke(id: string, now: Date): Promise<boolean> {
    const res = await this.#db
      .updateTable('hosts')
      .set({ revoked_at: now.toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async fleetHost(id: string): Promise<FleetHost | undefined> {
    return (await this.fleetHosts([id]))[0];
  }

  /** Live hosts by id, for working out their desired levels. */
  async fleetHosts(ids: string[]): Promise<FleetHost[]> {
    const out: FleetHost[] = [];
    for (let i = 0; i < ids.length; i += ID_CHUNK) {
      const rows = await this.#db
        .selectFrom('hosts')
        .select([
          'id',
          'feed',
          'kernel_id',
          'tags_json',
          'reported_tags_json',
          'auto_update',
          'ignore_json',
          'applied_level',
        ])
        .where('id', 'in', ids.slice(i, i + ID_CHUNK))
        .where('revoked_at', 'is', null)
        .execute();
      for (const r of rows) out.push(toFleetHost(r));
    }
    return out;
  }

  /** Live hosts of a feed on a kernel: how many, and how many run `level` or later without error. */
  async appliedStats(feed: string, kernelId: string, level: number): Promise<{ total: number; applied: number }> {
    const row = await this.#db
      .selectFrom('hosts')
      .select((eb) => [
        eb.fn.countAll().as('total'),
        eb.fn
          .sum<number>(
            eb
              .case()
              .when(eb.and([eb('applied_level', '>=', level), eb('state', '=', 'patched')]))
              .then(1)
              .else(0)
              .end(),
          )
          .as('applied'),
      ])
      .where('feed', '=', feed)
      .where('kernel_id', '=', kernelId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return { total: Number(row?.total ?? 0), applied: Number(row?.applied ?? 0) };
  }

  /** Host counts by (feed, state) for metrics. */
  async countsByFeedAndState(): Promise<{ feed: string; state: string; count: number }[]> {
    const rows = await this.#db
      .selectFrom('hosts')
      .select(['feed', 'state', (eb) => eb.fn.countAll().as('n')])
      .where('revoked_at', 'is', null)
      .groupBy(['feed', 'state'])
      .execute();
    return rows.map((r) => ({ feed: r.feed, state: r.state, count: Number(r.n) }));
  }

  /** Hosts (not revoked) whose last check-in is older than `before`, per feed. */
  async countStaleByFeed(before: Date): Promise<{ feed: string; count: number }[]> {
    const rows = await this.#db
      .selectFrom('hosts')
      .select(['feed', (eb) => eb.fn.countAll().as('n')])
      .where('revoked_at', 'is', null)
      .where('last_checkin_at', '<', before.toISOString())
      .groupBy('feed')
      .execute();
    return rows.map((r) => ({ feed: r.feed, count: Number(r.n) }));
  }

  /** Live hosts whose agent last reported a clock more than `limitSec` away from the server's, per feed. */
  async countClockSkewedByFeed(limitSec: number): Promise<{ feed: string; count: number }[]> {
    const rows = await this.#db
      .selectFrom('hosts')
      .select(['feed', (eb) => eb.fn.countAll().as('n')])
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('clock_skew_sec', '>', limitSec), eb('clock_skew_sec', '<', -limitSec)]))
      .groupBy('feed')
      .execute();
    return rows.map((r) => ({ feed: r.feed, count: Number(r.n) }));
  }

  async countByFeed(): Promise<Map<string, number>> {
    const rows = await this.#db
      .selectFrom('hosts')
      .select(['feed', (eb) => eb.fn.countAll().as('n')])
      .where('revoked_at', 'is', null)
      .groupBy('feed')
      .execute();
    return new Map(rows.map((r) => [r.feed, Number(r.n)]));
  }

  /** Hosts in a feed, revoked or not (a feed that still has hosts cannot be deleted). */
  async countInFeed(feed: string): Promise<number> {
    const row = await this.#db
      .selectFrom('hosts')
      .select(sql<number>`count(*)`.as('n'))
      .where('feed', '=', feed)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}

function parseJson<T>(text: string | null): T | undefined {
  // Written by this repository from validated values; the database is ours.
  return text === null ? undefined : (JSON.parse(text) as T);
}

function mergeEvents(prev: KernelEvent[], next: KernelEvent[]): KernelEvent[] {
  const seen = new Set(prev.map((e) => `${e.at}\u0000${e.message}`));
  return [...prev, ...next.filter((e) => !seen.has(`${e.at}\u0000${e.message}`))];
}

export function effectiveTags(tagsJson: string, reportedJson: string): string[] {
  const all = new Set([...(JSON.parse(tagsJson) as string[]), ...(JSON.parse(reportedJson) as string[])]);
  return [...all].sort();
}

function toFleetHost(r: {
  id: string;
  feed: string;
  kernel_id: string;
  tags_json: string;
  reported_tags_json: string;
  auto_update: number;
  ignore_json: string;
  applied_level: number;
}): FleetHost {
  return {
    id: r.id,
    feed: r.feed,
    kernelId: r.kernel_id,
    tags: effectiveTags(r.tags_json, r.reported_tags_json),
    autoUpdate: Number(r.auto_update) !== 0,
    appliedLevel: r.applied_level,
    ignore: JSON.parse(r.ignore_json) as string[],
  };
}

function toHostRecord(row: HostRow): HostRecord {
  return {
    id: row.id,
    hostname: row.hostname,
    kernelId: row.kernel_id,
    release: row.release,
    effectiveRelease: effectiveRelease(row.release, row.applied_level),
    appliedLevel: row.applied_level,
    state: row.state as HostState,
    lastError: row.last_error,
    lastApply: parseJson<ApplyResult>(row.last_apply_json) ?? null,
    agentVersion: row.agent_version,
    enrolledAt: row.enrolled_at,
    lastCheckinAt: row.last_checkin_at,
    feed: row.feed,
    tags: effectiveTags(row.tags_json, row.reported_tags_json),
    autoUpdate: Number(row.auto_update) !== 0,
    ignore: JSON.parse(row.ignore_json) as string[],
    revokedAt: row.revoked_at,
    uptimeSec: row.uptime_sec === null ? null : Number(row.uptime_sec),
    clockSkewSec: row.clock_skew_sec === null ? null : Number(row.clock_skew_sec),
    blockingTasks: parseJson<BlockingTask[]>(row.blocking_json) ?? [],
    patchState: parseJson<PatchState>(row.patch_state_json) ?? null,
    kernelEvents: parseJson<KernelEvent[]>(row.kernel_events_json) ?? [],
  };
}
