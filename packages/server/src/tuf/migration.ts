import type { Kysely, Migration } from 'kysely';

/**
 * `tuf_metadata` holds every signed TUF metadata file the server serves, as
 * the exact text whose hash the next role signs, so all server nodes sharing
 * the database serve byte-identical files.
 */
export const tufMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('tuf_metadata')
      .addColumn('role', 'varchar(16)', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('json', 'text', (c) => c.notNull())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('tuf_metadata_pk', ['role', 'version'])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('tuf_metadata').execute();
  },
};
