import type { Kysely, Migration } from 'kysely';
import type { Database } from '../db/schema.ts';

/**
 * The build pipeline's tables (migration 0040). Times are ISO-8601 text and
 * JSON columns are text, so SQLite and PostgreSQL store the same values.
 */
export interface FixesTable {
  id: string;
  /** Submission order; jobs of one kernel build run in this order. */
  seq: number;
  title: string;
  cves_json: string;
  /** [{id: string|null, subject}] */
  commits_json: string;
  sha256: string;
  /** The FixBundle as submitted, canonical JSON. */
  bundle_json: string;
  submitted_at: string;
  submitted_by: string;
}

export interface FixPlansTable {
  fix_id: string;
  kernel_id: string;
  release: string;
  state: string;
  version: string | null;
  reason: string | null;
  job_id: string | null;
  level: number | null;
  updated_at: string;
}

export interface JobsTable {
  id: string;
  fix_id: string;
  fix_seq: number;
  kernel_id: string;
  release: string;
  proc_version: string;
  package_version: string | null;
  state: string;
  outcome: string | null;
  reason: string | null;
  level: number | null;
  attempts: number;
  worker: string | null;
  phase: string | null;
  lease_id: string | null;
  lease_expires_at: string | null;
  /** The JobClaim handed to the worker holding the lease (its fixes and previous level). */
  claim_json: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  timings_json: string | null;
  validation_json: string | null;
  build_log: string | null;
  console_log: string | null;
}

export interface PipelineTables {
  fixes: FixesTable;
  fix_plans: FixPlansTable;
  jobs: JobsTable;
}

export type PipelineDatabase = Database & PipelineTables;

/**
 * 0040: submitted fixes, their plans per kernel build, build jobs, the
 * validation record of each level, and the feeds' validation gate. Existing
 * feeds get requireValidated = false, so nothing already rolling out changes.
 */
export const pipelineMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('fixes')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('seq', 'integer', (c) => c.notNull().unique())
      .addColumn('title', 'varchar(200)', (c) => c.notNull())
      .addColumn('cves_json', 'text', (c) => c.notNull())
      .addColumn('commits_json', 'text', (c) => c.notNull())
      .addColumn('sha256', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('bundle_json', 'text', (c) => c.notNull())
      .addColumn('submitted_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('submitted_by', 'varchar(128)', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('fix_plans')
      .addColumn('fix_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('release', 'varchar(128)', (c) => c.notNull())
      .addColumn('state', 'varchar(32)', (c) => c.notNull())
      .addColumn('version', 'varchar(64)')
      .addColumn('reason', 'text')
      .addColumn('job_id', 'varchar(64)')
      .addColumn('level', 'integer')
      .addColumn('updated_at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('fix_plans_pk', ['fix_id', 'kernel_id'])
      .execute();
    await db.schema
      .createTable('jobs')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('fix_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('fix_seq', 'integer', (c) => c.notNull())
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('release', 'varchar(128)', (c) => c.notNull())
      .addColumn('proc_version', 'text', (c) => c.notNull())
      .addColumn('package_version', 'varchar(64)')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('outcome', 'varchar(32)')
      .addColumn('reason', 'text')
      .addColumn('level', 'integer')
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('worker', 'varchar(128)')
      .addColumn('phase', 'varchar(16)')
      .addColumn('lease_id', 'varchar(64)')
      .addColumn('lease_expires_at', 'varchar(40)')
      .addColumn('claim_json', 'text')
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('started_at', 'varchar(40)')
      .addColumn('finished_at', 'varchar(40)')
      .addColumn('timings_json', 'text')
      .addColumn('validation_json', 'text')
      .addColumn('build_log', 'text')
      .addColumn('console_log', 'text')
      .execute();
    await db.schema.createIndex('jobs_state_idx').on('jobs').columns(['state', 'fix_seq']).execute();
    await db.schema.createIndex('jobs_kernel_idx').on('jobs').columns(['kernel_id', 'fix_seq']).execute();
    await db.schema
      .createTable('level_validations')
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('result', 'varchar(16)', (c) => c.notNull())
      .addColumn('summary_json', 'text')
      .addColumn('reason', 'text')
      .addColumn('actor', 'varchar(128)', (c) => c.notNull())
      .addColumn('at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('level_validations_pk', ['kernel_id', 'level'])
      .execute();
    await db.schema
      .alterTable('feeds')
      .addColumn('require_validated', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('feeds').dropColumn('require_validated').execute();
    for (const t of ['level_validations', 'jobs', 'fix_plans', 'fixes']) await db.schema.dropTable(t).execute();
  },
};
