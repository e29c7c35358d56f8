import { sql, type Kysely } from 'kysely';
import {
  userspaceTargetPath,
  type HostUserspaceLibrary,
  type UserspaceDesired,
  type UserspaceLevelRecord,
  type UserspaceLibraryStatus,
  type UserspaceManifest,
  type UserspacePromotion,
} from '@livegraft/protocol';
import { FeedRepository } from '../db/feeds.ts';
import type { Database } from '../db/schema.ts';
import { sqlTrue } from '../db/sql-bool.ts';
import { UserspaceFeedLevels } from './feeds.ts';

interface LevelRow {
  build_id: string;
  level: number;
  soname: string;
  package: string;
  version: string;
  manifest_json: string;
  code_sha256: string;
  code_size: number;
  created_at: string;
  published_at: string | null;
}

interface Tables {
  userspace_levels: LevelRow;
  userspace_halts: { build_id: string; level: number; reason: string; created_at: string };
  userspace_pins: { host_id: string; build_id: string; level: number; created_at: string };
  userspace_host_libraries: { host_id: string; build_id: string; status_json: string; updated_at: string };
  hosts: { id: string; feed: string };
}

/** Records what a check-in changed on its own (no operator): the audit log, by the system actor. */
export type UserspaceAudit = (
  action: 'userspace.halt' | 'userspace.promote',
  target: string,
  details: unknown,
) => Promise<void>;

/** At most this many build-ids get a desired level in one check-in answer. */
const MAX_DESIRED = 256;

export interface UserspaceTarget {
  path: string;
  length: number;
  sha256: string;
  custom: { livegraft: { userspace: UserspaceManifest } };
}

/** The consistent-snapshot file name of a level's code object. */
export function targetFileName(sha256: string, file: string): string {
  return `${sha256}.${file}`;
}

/**
 * User-space levels: stored per (library build-id, level), published into
 * TUF like kernel levels, halted fleet-wide (by an operator or by a host's
 * crash-loop guard), pinned per host; and each host's last report.
 */
export class UserspaceRepository {
  readonly #db: Kysely<Tables>;
  readonly #feeds: FeedRepository;
  /** Each feed's level per build-id. */
  readonly feedLevels: UserspaceFeedLevels;

  constructor(db: Kysely<unknown>) {
    // The shared Database type does not name these tables; this module names what it uses.
    this.#db = db as unknown as Kysely<Tables>;
    this.#feeds = new FeedRepository(db as unknown as Kysely<Database>);
    this.feedLevels = new UserspaceFeedLevels(db);
  }

  #record(r: LevelRow, halted: boolean): UserspaceLevelRecord {
    const m = JSON.parse(r.manifest_json) as UserspaceManifest;
    return {
      buildId: r.build_id,
      level: r.level,
      soname: r.soname,
      package: r.package,
      version: r.version,
      cves: m.cves,
      fixIds: m.fixes.map((f) => f.id),
      functions: m.functions.map((f) => f.symbol),
      codeSha256: r.code_sha256,
      size: r.code_size,
      published: r.published_at !== null,
      halted,
      createdAt: r.created_at,
      publishedAt: r.published_at,
      target: userspaceTargetPath(r.build_id, r.level, m.code.file),
    };
  }

  async #halted(buildId?: string): Promise<Set<string>> {
    let q = this.#db.selectFrom('userspace_halts').select(['build_id', 'level']);
    if (buildId !== undefined) q = q.where('build_id', '=', buildId);
    return new Set((await q.execute()).map((h) => `${h.build_id}/${h.level}`));
  }

  /** Stores a level; false (and nothing written) when that level exists with another manifest. */
  async insert(m: UserspaceManifest, now: Date): Promise<{ inserted: boolean; same: boolean }> {
    const existing = await this.#db
      .selectFrom('userspace_levels')
      .select(['code_sha256'])
      .where('build_id', '=', m.library.buildId)
      .where('level', '=', m.level)
      .executeTakeFirst();
    if (existing !== undefined) return { inserted: false, same: existing.code_sha256 === m.code.sha256 };
    await this.#db
      .insertInto('userspace_levels')
      .values({
        build_id: m.library.buildId,
        level: m.level,
        soname: m.library.soname,
        package: m.library.package,
        version: m.library.version,
        manifest_json: JSON.stringify(m),
        code_sha256: m.code.sha256,
        code_size: m.code.size,
        created_at: now.toISOString(),
        published_at: null,
      })
      .execute();
    return { inserted: true, same: true };
  }

  /** Publishes a level: signed into TUF (by the caller's sync), and into every feed with autoPublish. */
  async publish(buildId: string, level: number, now: Date): Promise<UserspaceLevelRecord | undefined> {
    const res = await this.#db
      .updateTable('userspace_levels')
      .set({ published_at: now.toISOString() })
      .where('build_id', '=', buildId)
      .where('level', '=', level)
      .where('published_at', 'is', null)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) > 0)
      await this.feedLevels.landPublished(await this.#feeds.list(), buildId, level, now);
    return (await this.list(buildId)).find((r) => r.level === level);
  }

  /**
   * Sets a feed's level for a build by hand: a level above the feed's is
   * rolled out as usual, one below it is a rollback (hosts go down to it).
   */
  async setFeedLevel(feed: string, buildId: string, level: number, now: Date): Promise<'set' | 'rollback'> {
    const current = (await this.feedLevels.list({ feed, buildId }))[0]?.level ?? 0;
    const rollback = level < current;
    await this.feedLevels.set(
      { feed, buildId, level, source: rollback ? 'rollback' : 'set', allowDowngrade: rollback, onlyUpward: false },
      now,
    );
    return rollback ? 'rollback' : 'set';
  }

  /** A feed by name (for the routes' checks). */
  feed(name: string): ReturnType<FeedRepository['get']> {
    return this.#feeds.get(name);
  }

  /** Promotion: by the feeds' rules (`force`: now, by an operator). Halted levels never move. */
  async promote(
    now: Date,
    opts: { from?: string; to?: string; buildId?: string; force?: boolean } = {},
  ): Promise<UserspacePromotion[]> {
    return this.feedLevels.promote(await this.#feeds.list(), await this.#halted(), now, opts);
  }

  async list(buildId?: string): Promise<UserspaceLevelRecord[]> {
    let q = this.#db.selectFrom('userspace_levels').selectAll();
    if (buildId !== undefined) q = q.where('build_id', '=', buildId);
    const rows = await q.orderBy('build_id').orderBy('level').execute();
    const halted = await this.#halted(buildId);
    return rows.map((r) => this.#record(r, halted.has(`${r.build_id}/${r.level}`)));
  }

  async manifest(buildId: string, level: number): Promise<UserspaceManifest | undefined> {
    const r = await this.#db
      .selectFrom('userspace_levels')
      .select(['manifest_json'])
      .where('build_id', '=', buildId)
      .where('level', '=', level)
      .executeTakeFirst();
    return r === undefined ? undefined : (JSON.parse(r.manifest_json) as UserspaceManifest);
  }

  /** Every published level as a TUF target; its custom data carries the whole manifest. */
  async publishedTargets(): Promise<UserspaceTarget[]> {
    const rows = await this.#db
      .selectFrom('userspace_levels')
      .selectAll()
      .where('published_at', 'is not', null)
      .orderBy('build_id')
      .orderBy('level')
      .execute();
    return rows.map((r) => {
      const m = JSON.parse(r.manifest_json) as UserspaceManifest;
      return {
        path: userspaceTargetPath(r.build_id, r.level, m.code.file),
        length: r.code_size,
        sha256: r.code_sha256,
        custom: { livegraft: { userspace: m } },
      };
    });
  }

  /** The code object hash behind a published level's consistent-snapshot file name, else undefined. */
  async publishedObject(buildId: string, level: number, file: string): Promise<string | undefined> {
    const r = await this.#db
      .selectFrom('userspace_levels')
      .select(['manifest_json', 'code_sha256'])
      .where('build_id', '=', buildId)
      .where('level', '=', level)
      .where('published_at', 'is not', null)
      .executeTakeFirst();
    if (r === undefined) return undefined;
    const m = JSON.parse(r.manifest_json) as UserspaceManifest;
    return file === targetFileName(r.code_sha256, m.code.file) ? r.code_sha256 : undefined;
  }

  async halt(buildId: string, level: number, reason: string, now: Date): Promise<boolean> {
    const res = await this.#db
      .insertInto('userspace_halts')
      .values({ build_id: buildId, level, reason: reason.slice(0, 2000), created_at: now.toISOString() })
      .onConflict((oc) => oc.columns(['build_id', 'level']).doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async unhalt(buildId: string, level: number): Promise<boolean> {
    const res = await this.#db
      .deleteFrom('userspace_halts')
      .where('build_id', '=', buildId)
      .where('level', '=', level)
      .executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  async pin(hostId: string, buildId: string, level: number, now: Date): Promise<void> {
    await this.#db
      .insertInto('userspace_pins')
      .values({ host_id: hostId, build_id: buildId, level, created_at: now.toISOString() })
      .onConflict((oc) => oc.columns(['host_id', 'build_id']).doUpdateSet({ level, created_at: now.toISOString() }))
      .execute();
  }

  async unpin(hostId: string, buildId: string): Promise<boolean> {
    const res = await this.#db
      .deleteFrom('userspace_pins')
      .where('host_id', '=', hostId)
      .where('build_id', '=', buildId)
      .executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  /**
   * Records a host's report and answers what it should run per build-id:
   * its pin, else the newest published level that is not halted. A report
   * that the crash-loop guard halted a level halts it fleet-wide. Such a
   * halt, and each level the feed's promotion rule then moves, is audited.
   */
  async checkin(
    host: { id: string; feed: string },
    report: readonly UserspaceLibraryStatus[],
    now: Date,
    audit?: UserspaceAudit,
    /**
     * Whether the host's feed held a library level or the host a library pin when the check-in read
     * the host (HostRepository.checkin), which spares reading it again. It is only taken when this
     * check-in writes no library state, since that may promote a level into the feed.
     */
    offer?: boolean,
  ): Promise<UserspaceDesired[]> {
    const known = report.length === 0 ? offer : undefined;
    if (known === false) return [];
    const at = now.toISOString();
    const hostId = host.id;
    for (const lib of report) {
      await this.#db
        .insertInto('userspace_host_libraries')
        .values({ host_id: hostId, build_id: lib.buildId, status_json: JSON.stringify(lib), updated_at: at })
        .onConflict((oc) =>
          oc.columns(['host_id', 'build_id']).doUpdateSet({ status_json: JSON.stringify(lib), updated_at: at }),
        )
        .execute();
      if (lib.halted === true && lib.level > 0) {
        const reason = `the crash-loop guard of host ${hostId} halted it`;
        if (await this.halt(lib.buildId, lib.level, reason, now))
          await audit?.('userspace.halt', lib.buildId, { level: lib.level, reason, hostId });
      }
    }
    // The feed's promotion rules are looked at when its hosts report (rules that count hosts change then).
    // (Writes are conditional: each level moves once.)
    if (report.length > 0) {
      for (const p of await this.promote(now, { from: host.feed }))
        await audit?.('userspace.promote', p.to, { ...p, rule: true });
    }
    return known === true ? this.#desired(host) : this.desiredFor(host);
  }

  /**
   * What a host should run per build-id: its feed's level (a halted one
   * steps the host back to the best level below it), overridden by a host
   * pin. A build its feed holds no level for is not offered.
   */
  async desiredFor(host: { id: string; feed: string }): Promise<UserspaceDesired[]> {
    // Most hosts are in a feed that holds no library level and have no pin: one read finds that there
    // is nothing to offer, without reading levels, pins, published levels and halts.
    const { rows } = await sql<{ levels: unknown; pins: unknown }>`select
        exists (select 1 from userspace_feed_levels where feed = ${host.feed}) as levels,
        exists (select 1 from userspace_pins where host_id = ${host.id}) as pins`.execute(this.#db);
    if (!sqlTrue(rows[0]?.levels) && !sqlTrue(rows[0]?.pins)) return [];
    return this.#desired(host);
  }

  /** desiredFor, for a host whose feed holds a library level or that has a library pin. */
  async #desired(host: { id: string; feed: string }): Promise<UserspaceDesired[]> {
    const hostId = host.id;
    const feedLevels = await this.feedLevels.list({ feed: host.feed });
    const pins = await this.#db.selectFrom('userspace_pins').selectAll().where('host_id', '=', hostId).execute();
    const published = await this.#db
      .selectFrom('userspace_levels')
      .select(['build_id', 'level', 'manifest_json'])
      .where('published_at', 'is not', null)
      .orderBy('build_id')
      .orderBy('level')
      .execute();
    const halted = await this.#halted();
    const files = new Map(
      published.map((p) => [`${p.build_id}/${p.level}`, (JSON.parse(p.manifest_json) as UserspaceManifest).code.file]),
    );
    const target = (buildId: string, level: number): { target?: string } => {
      const file = files.get(`${buildId}/${level}`);
      return level > 0 && file !== undefined ? { target: userspaceTargetPath(buildId, level, file) } : {};
    };
    const out = new Map<string, UserspaceDesired>();
    for (const row of feedLevels) {
      const id = row.buildId;
      if (row.level > 0 && halted.has(`${id}/${row.level}`)) {
        // A halted level: hosts step back to the best published level below it (0: restore the processes).
        const best = Math.max(
          0,
          ...published
            .filter((p) => p.build_id === id && p.level < row.level && !halted.has(`${id}/${p.level}`))
            .map((p) => p.level),
        );
        out.set(id, { buildId: id, level: best, reason: 'halt', allowDowngrade: true, ...target(id, best) });
        continue;
      }
      if (row.level > 0 && !files.has(`${id}/${row.level}`)) continue; // not published (yet)
      out.set(id, {
        buildId: id,
        level: row.level,
        reason: row.source === 'rollback' ? 'rollback' : 'feed',
        allowDowngrade: row.allowDowngrade,
        ...target(id, row.level),
      });
    }
    for (const pin of pins)
      out.set(pin.build_id, {
        buildId: pin.build_id,
        level: pin.level,
        reason: pin.level === 0 ? 'rollback' : 'pin',
        allowDowngrade: true,
        ...target(pin.build_id, pin.level),
      });
    return [...out.values()].slice(0, MAX_DESIRED);
  }

  async hostLibraries(hostId: string): Promise<HostUserspaceLibrary[]> {
    const rows = await this.#db
      .selectFrom('userspace_host_libraries')
      .selectAll()
      .where('host_id', '=', hostId)
      .orderBy('build_id')
      .execute();
    const pins = new Map(
      (await this.#db.selectFrom('userspace_pins').selectAll().where('host_id', '=', hostId).execute()).map((p) => [
        p.build_id,
        p.level,
      ]),
    );
    return rows.map((r) => ({
      ...(JSON.parse(r.status_json) as UserspaceLibraryStatus),
      updatedAt: r.updated_at,
      pinned: pins.get(r.build_id) ?? null,
    }));
  }

  /** Every host's libraries (for fleet reports): host id → libraries. */
  async allHostLibraries(): Promise<Map<string, UserspaceLibraryStatus[]>> {
    const rows = await this.#db.selectFrom('userspace_host_libraries').selectAll().orderBy('host_id').execute();
    const out = new Map<string, UserspaceLibraryStatus[]>();
    for (const r of rows) {
      const list = out.get(r.host_id) ?? [];
      list.push(JSON.parse(r.status_json) as UserspaceLibraryStatus);
      out.set(r.host_id, list);
    }
    return out;
  }
}
