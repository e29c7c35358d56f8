import type { Kysely, Migration } from 'kysely';

/**
 * User-space levels (per library build-id, cumulative), their halts, host
 * pins per build-id, and what each host last reported per library.
 */
export const userspaceMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('userspace_levels')
      .addColumn('build_id', 'varchar(80)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('soname', 'varchar(100)', (c) => c.notNull())
      .addColumn('package', 'varchar(64)', (c) => c.notNull())
      .addColumn('version', 'varchar(100)', (c) => c.notNull())
      .addColumn('manifest_json', 'text', (c) => c.notNull())
      .addColumn('code_sha256', 'varchar(64)', (c) => c.notNull())
      .addColumn('code_size', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('published_at', 'varchar(40)')
      .addPrimaryKeyConstraint('userspace_levels_pk', ['build_id', 'level'])
      .execute();
    await db.schema
      .createTable('userspace_halts')
      .addColumn('build_id', 'varchar(80)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('userspace_halts_pk', ['build_id', 'level'])
      .execute();
    await db.schema
      .createTable('userspace_pins')
      .addColumn('host_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('build_id', 'varchar(80)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('userspace_pins_pk', ['host_id', 'build_id'])
      .execute();
    await db.schema
      .createTable('userspace_host_libraries')
      .addColumn('host_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('build_id', 'varchar(80)', (c) => c.notNull())
      .addColumn('status_json', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('userspace_host_libraries_pk', ['host_id', 'build_id'])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    for (const t of ['userspace_host_libraries', 'userspace_pins', 'userspace_halts', 'userspace_levels'])
      await db.schema.dropTable(t).execute();
  },
};
