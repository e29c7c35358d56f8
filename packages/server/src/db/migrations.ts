import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { LivegraftError } from '@livegraft/protocol';
import { tufMigration } from '../tuf/migration.ts';
import { fleetMigration, hostIgnoreMigration, hostReportFingerprintMigration } from './fleet-migration.ts';
import { hostClockSkewMigration, tokenExpiryMigration } from './token-expiry-migration.ts';
import { complianceMigration } from '../compliance/migration.ts';
import { vexDocumentsMigration } from '../compliance/vex-store.ts';
import { hostAppliesMigration } from '../dashboard/applies.ts';
import { sessionMigration } from '../dashboard/sessions.ts';
import { pipelineMigration } from '../pipeline/schema.ts';
import { userspaceMigration } from '../userspace/migration.ts';
import { userspaceFeedsMigration } from '../userspace/feeds.ts';

/**
 * Numbered, append-only. Written with the schema builder only (no SQLite-only
 * SQL) so the same set runs on PostgreSQL. Never edit a shipped migration.
 */
export const migrations: Record<string, Migration> = {
  '0001_init': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('patches')
        .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('level', 'integer', (c) => c.notNull())
        .addColumn('name', 'varchar(64)', (c) => c.notNull())
        .addColumn('release', 'varchar(128)', (c) => c.notNull())
        .addColumn('manifest_json', 'text', (c) => c.notNull())
        .addColumn('module_sha256', 'varchar(64)', (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
        .addColumn('published_at', 'varchar(40)')
        .addPrimaryKeyConstraint('patches_pk', ['kernel_id', 'level'])
        .execute();
      await db.schema
        .createTable('hosts')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('hostname', 'varchar(253)', (c) => c.notNull())
        .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('release', 'varchar(128)', (c) => c.notNull())
        .addColumn('kernel_json', 'text', (c) => c.notNull())
        .addColumn('applied_level', 'integer', (c) => c.notNull())
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('last_apply_json', 'text')
        .addColumn('agent_version', 'varchar(64)', (c) => c.notNull())
        .addColumn('uptime_sec', 'double precision')
        .addColumn('enrolled_at', 'varchar(40)', (c) => c.notNull())
        .addColumn('last_checkin_at', 'varchar(40)')
        .execute();
      await db.schema.createIndex('hosts_kernel_id_idx').on('hosts').column('kernel_id').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('hosts').execute();
      await db.schema.dropTable('patches').execute();
    },
  },
  '0002_tuf': tufMigration,
  '0003_fleet': fleetMigration,
  '0010_compliance': complianceMigration,
  '0020_dashboard_sessions': sessionMigration,
  '0030_host_ignore': hostIgnoreMigration,
  '0031_host_report_fp': hostReportFingerprintMigration,
  '0040_pipeline': pipelineMigration,
  '0050_token_expiry': tokenExpiryMigration,
  '0060_userspace': userspaceMigration,
  '0061_host_clock_skew': hostClockSkewMigration,
  '0065_userspace_feeds': userspaceFeedsMigration,
  '0070_host_applies': hostAppliesMigration,
  '0075_vex_documents': vexDocumentsMigration,
};

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };

export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  const { error } = await new Migrator({ db, provider }).migrateToLatest();
  if (error !== undefined) {
    throw new LivegraftError('DB_MIGRATION_FAILED', `database migration failed: ${String(error)}`, { cause: error });
  }
}
