import type { Kysely, Migration } from 'kysely';

/** The feeds a fresh server starts with; see docs/fleet.md for why production auto-publishes. */
export const DEFAULT_FEEDS = [
  {
    name: 'canary',
    description: 'first hosts to get a new level',
    promotes_to: 'staging',
    auto_publish: 1,
    promotion_json: JSON.stringify({ afterSec: 86400 }),
  },
  {
    name: 'staging',
    description: 'gets a level a day after canary, unless halted',
    promotes_to: 'production',
    auto_publish: 0,
    promotion_json: JSON.stringify({ afterSec: 86400 }),
  },
  {
    name: 'production',
    description: 'the default registration key enrols here; auto-publishes until staged rollout is turned on',
    promotes_to: null,
    auto_publish: 1,
    promotion_json: null,
  },
] as const;
export const DEFAULT_FEED = 'production';

const HOST_COLUMNS: [string, string, string | number | null][] = [
  ['feed', 'varchar(64)', DEFAULT_FEED],
  ['tags_json', 'text', '[]'],
  ['reported_tags_json', 'text', '[]'],
  ['auto_update', 'integer', 1],
  ['revoked_at', 'varchar(40)', null],
  ['blocking_json', 'text', null],
  ['patch_state_json', 'text', null],
  ['kernel_events_json', 'text', null],
];

/** Schema builder only, one column per ALTER (SQLite's limit), so it runs on SQLite and PostgreSQL. */
export const fleetMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('feeds')
      .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('promotes_to', 'varchar(64)')
      .addColumn('auto_publish', 'integer', (c) => c.notNull())
      .addColumn('promotion_json', 'text')
      .addColumn('windows_json', 'text', (c) => c.notNull())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('feed_levels')
      .addColumn('feed', 'varchar(64)', (c) => c.notNull())
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('previous_level', 'integer', (c) => c.notNull())
      .addColumn('source', 'varchar(16)', (c) => c.notNull())
      .addColumn('allow_downgrade', 'integer', (c) => c.notNull())
      .addColumn('set_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('healthy_since', 'varchar(40)')
      .addPrimaryKeyConstraint('feed_levels_pk', ['feed', 'kernel_id'])
      .execute();
    await db.schema
      .createTable('level_halts')
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('host_id', 'varchar(64)')
      .addColumn('at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('level_halts_pk', ['kernel_id', 'level'])
      .execute();
    await db.schema
      .createTable('pins')
      .addColumn('scope', 'varchar(8)', (c) => c.notNull())
      .addColumn('subject', 'varchar(253)', (c) => c.notNull())
      .addColumn('kernel_key', 'varchar(64)', (c) => c.notNull())
      .addColumn('level', 'integer')
      .addColumn('cutoff', 'varchar(40)')
      .addColumn('allow_downgrade', 'integer', (c) => c.notNull())
      .addColumn('reason', 'varchar(16)', (c) => c.notNull())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('created_by', 'varchar(128)', (c) => c.notNull())
      .addPrimaryKeyConstraint('pins_pk', ['scope', 'subject', 'kernel_key'])
      .execute();
    await db.schema
      .createTable('api_tokens')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(64)', (c) => c.notNull())
      .addColumn('role', 'varchar(16)', (c) => c.notNull())
      .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('created_by', 'varchar(128)', (c) => c.notNull())
      .addColumn('revoked_at', 'varchar(40)')
      .execute();
    await db.schema
      .createTable('registration_keys')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(64)', (c) => c.notNull())
      .addColumn('feed', 'varchar(64)', (c) => c.notNull())
      .addColumn('tags_json', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('revoked_at', 'varchar(40)')
      .execute();
    await db.schema
      .createTable('audit_log')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('at', 'varchar(40)', (c) => c.notNull())
      .addColumn('actor_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('actor_name', 'varchar(128)', (c) => c.notNull())
      .addColumn('actor_role', 'varchar(16)', (c) => c.notNull())
      .addColumn('ip', 'varchar(64)')
      .addColumn('action', 'varchar(64)', (c) => c.notNull())
      .addColumn('target', 'varchar(300)', (c) => c.notNull())
      .addColumn('details_json', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_log_at_idx').on('audit_log').columns(['at', 'id']).execute();
    for (const [name, type, dflt] of HOST_COLUMNS) {
      await db.schema
        .alterTable('hosts')
        .addColumn(name, type as 'text', (c) => (dflt === null ? c : c.notNull().defaultTo(dflt)))
        .execute();
    }
    await db.schema.createIndex('hosts_feed_kernel_idx').on('hosts').columns(['feed', 'kernel_id']).execute();

    const fleet = db as unknown as Kysely<{
      feeds: { name: string; description: string; promotes_to: string | null; auto_publish: number };
      feed_levels: Record<string, unknown>;
      patches: { kernel_id: string; level: number; published_at: string | null };
    }>;
    const now = new Date().toISOString();
    for (const f of DEFAULT_FEEDS) {
      await (fleet as unknown as Kysely<{ feeds: Record<string, unknown> }>)
        .insertInto('feeds')
        .values({ ...f, windows_json: '[]', created_at: now })
        .execute();
    }
    // Levels published before this migration were what every host got; auto-publish feeds keep them.
    const latest = await fleet
      .selectFrom('patches')
      .select(['kernel_id', (eb) => eb.fn.max('level').as('level')])
      .where('published_at', 'is not', null)
      .groupBy('kernel_id')
      .execute();
    for (const row of latest) {
      for (const f of DEFAULT_FEEDS.filter((x) => x.auto_publish === 1)) {
        await fleet
          .insertInto('feed_levels')
          .values({
            feed: f.name,
            kernel_id: row.kernel_id,
            level: Number(row.level),
            previous_level: 0,
            source: 'publish',
            allow_downgrade: 0,
            set_at: now,
            healthy_since: null,
          })
          .execute();
      }
    }
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('hosts_feed_kernel_idx').execute();
    for (const [name] of [...HOST_COLUMNS].reverse()) await db.schema.alterTable('hosts').dropColumn(name).execute();
    for (const t of ['audit_log', 'registration_keys', 'api_tokens', 'pins', 'level_halts', 'feed_levels', 'feeds']) {
      await db.schema.dropTable(t).execute();
    }
  },
};

/**
 * Migration 0030: the per-host ignore-list. Existing hosts get an empty list,
 * so nothing they are offered changes.
 */
export const hostIgnoreMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable('hosts')
      .addColumn('ignore_json', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('hosts').dropColumn('ignore_json').execute();
  },
};

/**
 * Migration 0031: the fingerprint of each host's last stored report, so a
 * check-in that repeats it can skip the full row write (see db/heartbeats.ts).
 * Existing hosts have none: their next check-in is written in full.
 */
export const hostReportFingerprintMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('hosts').addColumn('report_fp', 'varchar(64)').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('hosts').dropColumn('report_fp').execute();
  },
};
