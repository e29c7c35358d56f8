import type { Kysely, Selectable } from 'kysely';
import type {
  FeedCreate,
  FeedLevel,
  FeedUpdate,
  HaltRecord,
  LevelSource,
  MaintenanceWindow,
  PromotionRule,
} from '@livegraft/protocol';
import type { FeedLevelsTable, FeedsTable } from './fleet-schema.ts';
import type { Database } from './schema.ts';

export type FeedLevelRow = Selectable<FeedLevelsTable>;

export interface Feed {
  name: string;
  description: string;
  promotesTo: string | null;
  autoPublish: boolean;
  promotion: PromotionRule | null;
  windows: MaintenanceWindow[];
  createdAt: string;
  requireValidated: boolean;
}

export interface LevelChange {
  feed: string;
  kernelId: string;
  level: number;
  source: LevelSource;
  allowDowngrade: boolean;
  /** Only move up (publish, promotion); rollback and manual set any level. */
  onlyUpward: boolean;
}

/** How many times a level change retries after losing a race with another writer. */
const MAX_SET_LEVEL_ATTEMPTS = 5;

export class FeedRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async list(): Promise<Feed[]> {
    const rows = await this.#db.selectFrom('feeds').selectAll().orderBy('name').execute();
    return rows.map(toFeed);
  }

  async get(name: string): Promise<Feed | undefined> {
    const row = await this.#db.selectFrom('feeds').selectAll().where('name', '=', name).executeTakeFirst();
    return row === undefined ? undefined : toFeed(row);
  }

  /** False if the name is taken. */
  async create(spec: FeedCreate, now: Date): Promise<boolean> {
    const res = await this.#db
      .insertInto('feeds')
      .values({
        name: spec.name,
        description: spec.description ?? '',
        promotes_to: spec.promotesTo ?? null,
        auto_publish: spec.autoPublish === true ? 1 : 0,
        promotion_json: spec.promotion === undefined || spec.promotion === null ? null : JSON.stringify(spec.promotion),
        windows_json: JSON.stringify(spec.windows ?? []),
        created_at: now.toISOString(),
        // Gated unless said otherwise, except canary: it is where unproven levels are meant to land.
        require_validated: (spec.requireValidated ?? spec.name !== 'canary') ? 1 : 0,
      })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async update(name: string, u: FeedUpdate): Promise<boolean> {
    const set = {
      ...(u.description === undefined ? {} : { description: u.description }),
      ...(u.promotesTo === undefined ? {} : { promotes_to: u.promotesTo }),
      ...(u.autoPublish === undefined ? {} : { auto_publish: u.autoPublish ? 1 : 0 }),
      ...(u.promotion === undefined
        ? {}
        : { promotion_json: u.promotion === null ? null : JSON.stringify(u.promotion) }),
      ...(u.windows === undefined ? {} : { windows_json: JSON.stringify(u.windows) }),
      ...(u.requireValidated === undefined ? {} : { require_validated: u.requireValidated ? 1 : 0 }),
    };
    if (Object.keys(set).length === 0) return (await this.get(name)) !== undefined;
    const res = await this.#db.updateTable('feeds').set(set).where('name', '=', name).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async delete(name: string): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      await tx.deleteFrom('feed_levels').where('feed', '=', name).execute();
      await tx.deleteFrom('pins').where('scope', '=', 'feed').where('subject', '=', name).execute();
      await tx.updateTable('feeds').set({ promotes_to: null }).where('promotes_to', '=', name).execute();
      await tx.deleteFrom('feeds').where('name', '=', name).execute();
    });
  }

  async levels(filter: { feed?: string; kernelIds?: string[] } = {}): Promise<FeedLevelRow[]> {
    let q = this.#db.selectFrom('feed_levels').selectAll();
    if (filter.feed !== undefined) q = q.where('feed', '=', filter.feed);
    if (filter.kernelIds !== undefined) {
      if (filter.kernelIds.length === 0) return [];
      q = q.where('kernel_id', 'in', filter.kernelIds);
    }
    return q.orderBy('feed').orderBy('kernel_id').execute();
  }

  async level(feed: string, kernelId: string): Promise<FeedLevelRow | undefined> {
    return this.#db
      .selectFrom('feed_levels')
      .selectAll()
      .where('feed', '=', feed)
      .where('kernel_id', '=', kernelId)
      .executeTakeFirst();
  }

  /**
   * Sets a feed's level for a kernel. Returns the previous level when the
   * row changed, undefined when nothing changed (same level, or an upward-only
   * change that would not go up). Conditional writes make concurrent nodes
   * agree on one winner.
   */
  async setLevel(c: LevelChange, now: Date): Promise<{ previous: number } | undefined> {
    for (let attempt = 0; attempt < MAX_SET_LEVEL_ATTEMPTS; attempt++) {
      const current = await this.level(c.feed, c.kernelId);
      if (current === undefined) {
        const res = await this.#db
          .insertInto('feed_levels')
          .values({
            feed: c.feed,
            kernel_id: c.kernelId,
            level: c.level,
            previous_level: 0,
            source: c.source,
            allow_downgrade: c.allowDowngrade ? 1 : 0,
            set_at: now.toISOString(),
            healthy_since: null,
          })
          .onConflict((oc) => oc.columns(['feed', 'kernel_id']).doNothing())
          .executeTakeFirst();
        if (Number(res.numInsertedOrUpdatedRows ?? 0n) > 0) return { previous: 0 };
        continue;
      }
      if (c.onlyUpward ? c.level <= current.level : sameLevel(current, c)) return undefined;
      const res = await this.#db
        .updateTable('feed_levels')
        .set({
          level: c.level,
          previous_level: current.level,
          source: c.source,
          allow_downgrade: c.allowDowngrade ? 1 : 0,
          set_at: now.toISOString(),
          healthy_since: null,
        })
        .where('feed', '=', c.feed)
        .where('kernel_id', '=', c.kernelId)
        .where('level', '=', current.level)
        .where('set_at', '=', current.set_at)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) > 0) return { previous: current.level };
    }
    return undefined;
  }

  async setHealthySince(feed: string, kernelId: string, level: number, since: string | null): Promise<void> {
    await this.#db
      .updateTable('feed_levels')
      .set({ healthy_since: since })
      .where('feed', '=', feed)
      .where('kernel_id', '=', kernelId)
      .where('level', '=', level)
      .execute();
  }

  /** Records a halt; false if that level was already halted. */
  async halt(h: HaltRecord): Promise<boolean> {
    const res = await this.#db
      .insertInto('level_halts')
      .values({ kernel_id: h.kernelId, level: h.level, reason: h.reason, host_id: h.hostId, at: h.at })
      .onConflict((oc) => oc.columns(['kernel_id', 'level']).doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async resume(kernelId: string, level: number): Promise<boolean> {
    const res = await this.#db
      .deleteFrom('level_halts')
      .where('kernel_id', '=', kernelId)
      .where('level', '=', level)
      .executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  /**
   * Levels that may enter a gated feed (key: kernelId + NUL + level): a passed
   * VM validation or an operator's recorded override.
   */
  async validatedLevels(kernelIds?: string[]): Promise<Set<string>> {
    let q = this.#db
      .selectFrom('level_validations')
      .select(['kernel_id', 'level'])
      .where('result', 'in', ['passed', 'override']);
    if (kernelIds !== undefined) {
      if (kernelIds.length === 0) return new Set();
      q = q.where('kernel_id', 'in', kernelIds);
    }
    const rows = await q.execute();
    return new Set(rows.map((r) => `${r.kernel_id}\u0000${r.level}`));
  }

  async halts(kernelIds?: string[]): Promise<HaltRecord[]> {
    let q = this.#db.selectFrom('level_halts').selectAll();
    if (kernelIds !== undefined) {
      if (kernelIds.length === 0) return [];
      q = q.where('kernel_id', 'in', kernelIds);
    }
    const rows = await q.orderBy('at').orderBy('kernel_id').orderBy('level').execute();
    return rows.map((r) => ({ kernelId: r.kernel_id, level: r.level, reason: r.reason, hostId: r.host_id, at: r.at }));
  }
}

function sameLevel(row: FeedLevelRow, c: LevelChange): boolean {
  return row.level === c.level && row.source === c.source && Number(row.allow_downgrade) === (c.allowDowngrade ? 1 : 0);
}

function toFeed(row: Selectable<FeedsTable>): Feed {
  return {
    name: row.name,
    description: row.description,
    promotesTo: row.promotes_to,
    autoPublish: Number(row.auto_publish) !== 0,
    promotion: row.promotion_json === null ? null : (JSON.parse(row.promotion_json) as PromotionRule),
    windows: JSON.parse(row.windows_json) as MaintenanceWindow[],
    createdAt: row.created_at,
    requireValidated: Number(row.require_validated) !== 0,
  };
}

export function toFeedLevel(row: FeedLevelRow, halt: HaltRecord | undefined): FeedLevel {
  return {
    kernelId: row.kernel_id,
    level: row.level,
    previousLevel: row.previous_level,
    source: row.source as LevelSource,
    allowDowngrade: Number(row.allow_downgrade) !== 0,
    setAt: row.set_at,
    haltedAt: halt?.at ?? null,
    haltReason: halt?.reason ?? null,
    healthySince: row.healthy_since,
  };
}
