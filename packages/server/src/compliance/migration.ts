import type { Kysely, Migration } from 'kysely';

/** 0010: exposure history per host, tripwire events, compliance settings. Schema builder only (SQLite and PostgreSQL). */
export const complianceMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('host_kernel_history')
      .addColumn('host_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('release', 'varchar(128)', (c) => c.notNull())
      .addColumn('proc_version', 'text', (c) => c.notNull())
      .addColumn('first_seen', 'varchar(40)', (c) => c.notNull())
      .addColumn('last_seen', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('host_kernel_history_pk', ['host_id', 'seq'])
      .execute();
    await db.schema
      .createTable('host_level_history')
      .addColumn('host_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('cves_json', 'text', (c) => c.notNull())
      .addColumn('from_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('to_at', 'varchar(40)')
      .addPrimaryKeyConstraint('host_level_history_pk', ['host_id', 'seq'])
      .execute();
    await db.schema
      .createTable('tripwire_events')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('host_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('cve', 'varchar(32)', (c) => c.notNull())
      .addColumn('fix_id', 'varchar(64)')
      .addColumn('level', 'integer')
      .addColumn('pid', 'bigint', (c) => c.notNull())
      .addColumn('uid', 'bigint', (c) => c.notNull())
      .addColumn('comm', 'varchar(64)', (c) => c.notNull())
      .addColumn('kernel_time', 'double precision')
      .addColumn('at', 'varchar(40)', (c) => c.notNull())
      .addColumn('received_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('message', 'text')
      .execute();
    await db.schema.createIndex('tripwire_events_at_idx').on('tripwire_events').columns(['at', 'id']).execute();
    await db.schema.createIndex('tripwire_events_host_idx').on('tripwire_events').columns(['host_id', 'at']).execute();
    await db.schema.createIndex('tripwire_events_cve_idx').on('tripwire_events').columns(['cve', 'at']).execute();
    await db.schema
      .createTable('compliance_settings')
      .addColumn('key', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('value_json', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'varchar(40)', (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('compliance_settings').execute();
    await db.schema.dropTable('tripwire_events').execute();
    await db.schema.dropTable('host_level_history').execute();
    await db.schema.dropTable('host_kernel_history').execute();
  },
};
