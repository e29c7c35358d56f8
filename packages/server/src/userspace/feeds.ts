import type { Kysely, Migration } from 'kysely';
import type { UserspaceFeedLevel, UserspaceLibraryStatus, UserspacePromotion } from '@livegraft/protocol';
import type { Feed } from '../db/feeds.ts';
import { inMaintenanceWindow } from '../fleet/windows.ts';

/** Feeds' user-space levels per library build-id (the kernel's feed_levels, keyed by build-id). */
export const userspaceFeedsMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('userspace_feed_levels')
      .addColumn('feed', 'varchar(64)', (c) => c.notNull())
      .addColumn('build_id', 'varchar(80)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('previous_level', 'integer', (c) => c.notNull())
      .addColumn('source', 'varchar(16)', (c) => c.notNull())
      .addColumn('allow_downgrade', 'integer', (c) => c.notNull())
      .addColumn('set_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('healthy_since', 'varchar(40)')
      .addPrimaryKeyConstraint('userspace_feed_levels_pk', ['feed', 'build_id'])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('userspace_feed_levels').execute();
  },
};

interface FeedLevelRow {
  feed: string;
  build_id: string;
  level: number;
  previous_level: number;
  source: UserspaceFeedLevel['source'];
  allow_downgrade: number;
  set_at: string;
  healthy_since: string | null;
}

interface Tables {
  userspace_feed_levels: FeedLevelRow;
  userspace_host_libraries: { host_id: string; build_id: string; status_json: string; updated_at: string };
  hosts: { id: string; feed: string; revoked_at: string | null };
}

const since = (iso: string, now: Date): number => (now.getTime() - Date.parse(iso)) / 1000;

function record(r: FeedLevelRow): UserspaceFeedLevel {
  return {
    feed: r.feed,
    buildId: r.build_id,
    level: r.level,
    previousLevel: r.previous_level,
    source: r.source,
    allowDowngrade: Number(r.allow_downgrade) !== 0,
    setAt: r.set_at,
    healthySince: r.healthy_since,
  };
}

export interface FeedLevelChange {
  feed: string;
  buildId: string;
  level: number;
  source: UserspaceFeedLevel['source'];
  allowDowngrade: boolean;
  /** Only raise the level (publish, promotion); the write is conditional, so concurrent nodes move it once. */
  onlyUpward: boolean;
}

/**
 * Which user-space level each feed holds per library build-id, and its
 * promotion: the same rules as kernel levels (delay in the feed, hosts that
 * run it everywhere, how long that held, the next feed's maintenance
 * windows). A feed that requires validation takes user-space levels by hand
 * only (they have no validation run).
 */
export class UserspaceFeedLevels {
  readonly #db: Kysely<Tables>;

  constructor(db: Kysely<unknown>) {
    this.#db = db as unknown as Kysely<Tables>;
  }

  async list(filter: { feed?: string; buildId?: string } = {}): Promise<UserspaceFeedLevel[]> {
    let q = this.#db.selectFrom('userspace_feed_levels').selectAll();
    if (filter.feed !== undefined) q = q.where('feed', '=', filter.feed);
    if (filter.buildId !== undefined) q = q.where('build_id', '=', filter.buildId);
    return (await q.orderBy('feed').orderBy('build_id').execute()).map(record);
  }

  /** Sets a feed's level; undefined when an upward-only change would not raise it (nothing written). */
  async set(c: FeedLevelChange, now: Date): Promise<{ previous: number } | undefined> {
    const at = now.toISOString();
    const row = await this.#db
      .selectFrom('userspace_feed_levels')
      .selectAll()
      .where('feed', '=', c.feed)
      .where('build_id', '=', c.buildId)
      .executeTakeFirst();
    const values = {
      level: c.level,
      source: c.source,
      allow_downgrade: c.allowDowngrade ? 1 : 0,
      set_at: at,
      healthy_since: null,
    };
    if (row === undefined) {
      const res = await this.#db
        .insertInto('userspace_feed_levels')
        .values({ feed: c.feed, build_id: c.buildId, previous_level: 0, ...values })
        .onConflict((oc) => oc.columns(['feed', 'build_id']).doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0n) > 0) return { previous: 0 };
      return this.set(c, now); // another node inserted it meanwhile
    }
    if (c.onlyUpward && row.level >= c.level) return undefined;
    if (!c.onlyUpward && row.level === c.level && row.source === c.source) return { previous: row.previous_level };
    const res = await this.#db
      .updateTable('userspace_feed_levels')
      .set({ ...values, previous_level: row.level })
      .where('feed', '=', c.feed)
      .where('build_id', '=', c.buildId)
      .where('level', '=', row.level)
      .where('set_at', '=', row.set_at)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0 ? { previous: row.level } : undefined;
  }

  /** A newly published level lands in every feed with autoPublish (never lowering a feed). */
  async landPublished(feeds: readonly Feed[], buildId: string, level: number, now: Date): Promise<string[]> {
    const landed: string[] = [];
    for (const f of feeds.filter((x) => x.autoPublish)) {
      const moved = await this.set(
        { feed: f.name, buildId, level, source: 'publish', allowDowngrade: false, onlyUpward: true },
        now,
      );
      if (moved !== undefined) landed.push(f.name);
    }
    return landed;
  }

  /** Hosts of `feed` that report `buildId`, and those that run `level` in every process mapping it. */
  async #hostStats(feed: string, buildId: string, level: number): Promise<{ total: number; applied: number }> {
    const rows = await this.#db
      .selectFrom('userspace_host_libraries')
      .innerJoin('hosts', 'hosts.id', 'userspace_host_libraries.host_id')
      .select(['userspace_host_libraries.status_json'])
      .where('hosts.feed', '=', feed)
      .where('hosts.revoked_at', 'is', null)
      .where('userspace_host_libraries.build_id', '=', buildId)
      .execute();
    let applied = 0;
    for (const r of rows) {
      const s = JSON.parse(r.status_json) as UserspaceLibraryStatus;
      if (s.level === level && s.unpatched === 0 && s.refused === 0 && s.halted !== true) applied++;
    }
    return { total: rows.length, applied };
  }

  /**
   * Moves each feed level that the next feed lacks, when the rule holds
   * (`force`: now, whatever the rule says, as `promote` by an operator).
   * Halted levels never move.
   */
  async promote(
    feeds: readonly Feed[],
    halted: ReadonlySet<string>,
    now: Date,
    opts: { from?: string; to?: string; buildId?: string; force?: boolean } = {},
  ): Promise<UserspacePromotion[]> {
    const byName = new Map(feeds.map((f) => [f.name, f]));
    const done: UserspacePromotion[] = [];
    for (const feed of feeds) {
      if (opts.from !== undefined && feed.name !== opts.from) continue;
      const destName = opts.to ?? feed.promotesTo;
      const dest = destName === null ? undefined : byName.get(destName);
      if (dest === undefined) continue;
      const rule = feed.promotion;
      if (opts.force !== true) {
        if (rule === null || dest.requireValidated) continue;
        if (Object.values(rule).every((v) => v === undefined)) continue;
        if (!inMaintenanceWindow(dest.windows, now)) continue;
      }
      const destLevels = new Map((await this.list({ feed: dest.name })).map((r) => [r.buildId, r.level]));
      for (const row of await this.list({ feed: feed.name, ...(opts.buildId ? { buildId: opts.buildId } : {}) })) {
        if (row.level === 0 || (destLevels.get(row.buildId) ?? 0) >= row.level) continue;
        if (halted.has(`${row.buildId}/${row.level}`)) continue;
        if (opts.force !== true && rule !== null && !(await this.#ruleHolds(feed.name, rule, row, now))) continue;
        const moved = await this.set(
          {
            feed: dest.name,
            buildId: row.buildId,
            level: row.level,
            source: 'promotion',
            allowDowngrade: false,
            onlyUpward: true,
          },
          now,
        );
        if (moved !== undefined)
          done.push({
            from: feed.name,
            to: dest.name,
            buildId: row.buildId,
            level: row.level,
            previous: moved.previous,
          });
      }
    }
    return done;
  }

  async #ruleHolds(
    feed: string,
    rule: NonNullable<Feed['promotion']>,
    row: UserspaceFeedLevel,
    now: Date,
  ): Promise<boolean> {
    const delayOk = rule.afterSec === undefined || since(row.setAt, now) >= rule.afterSec;
    const countsHosts = rule.minHosts !== undefined || rule.minPercent !== undefined;
    if (!countsHosts) return delayOk && (rule.healthySec === undefined || since(row.setAt, now) >= rule.healthySec);
    const { total, applied } = await this.#hostStats(feed, row.buildId, row.level);
    const met =
      (rule.minHosts === undefined || applied >= rule.minHosts) &&
      (rule.minPercent === undefined || (total > 0 && (applied * 100) / total >= rule.minPercent));
    let healthySince = row.healthySince;
    if (met !== (healthySince !== null)) {
      healthySince = met ? now.toISOString() : null;
      await this.#db
        .updateTable('userspace_feed_levels')
        .set({ healthy_since: healthySince })
        .where('feed', '=', feed)
        .where('build_id', '=', row.buildId)
        .where('level', '=', row.level)
        .execute();
    }
    return delayOk && healthySince !== null && since(healthySince, now) >= (rule.healthySec ?? 0);
  }
}
