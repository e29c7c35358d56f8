import type { Kysely, Migration } from 'kysely';

/** Migration 0050: API tokens may expire (`tokens create --expires 90d`); null means never. */
/** Migration 0061: the clock skew each host's agent last reported (seconds, positive when ahead). */
export const hostClockSkewMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('hosts').addColumn('clock_skew_sec', 'bigint').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('hosts').dropColumn('clock_skew_sec').execute();
  },
};

export const tokenExpiryMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('api_tokens').addColumn('expires_at', 'varchar(40)').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('api_tokens').dropColumn('expires_at').execute();
  },
};
