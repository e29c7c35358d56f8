import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { join } from 'node:path';
import pg from 'pg';
import { LivegraftError } from '@livegraft/protocol';
import { migrateToLatest } from './migrations.ts';
import { openNodeSqlite, type ReadSync, type WriteSync } from './node-sqlite.ts';
import type { Database } from './schema.ts';

export const DB_FILE = 'livegraft.db';
/** Connections one server node keeps to PostgreSQL at most, unless configured. */
export const DEFAULT_PG_POOL_SIZE = 10;
/** A connection attempt that takes longer than this fails instead of queueing requests forever. */
const PG_CONNECT_TIMEOUT_MS = 10_000;
const PG_IDLE_TIMEOUT_MS = 30_000;

export interface DatabaseOptions {
  /** postgres://... selects PostgreSQL; absent means SQLite in the data dir. */
  url?: string | undefined;
  poolSize?: number | undefined;
  /** Told when an idle pooled PostgreSQL connection breaks. */
  onIdleError?: (err: Error) => void;
}

export interface OpenedDatabase {
  db: Kysely<Database>;
  kind: 'sqlite' | 'postgres';
  /** The PostgreSQL connection string (for LISTEN/NOTIFY), when kind is postgres. */
  url?: string;
  /** SQLite only: a synchronous read on the same connection, for the hottest query. */
  readSync?: ReadSync;
  /** SQLite only: a transaction run at once on the same connection, for the check-in's writes. */
  writeSync?: WriteSync;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/** A Kysely instance for a PostgreSQL URL with a bounded pool; no migration. */
export function postgresKysely(
  url: string,
  poolSize = DEFAULT_PG_POOL_SIZE,
  onIdleError?: (err: Error) => void,
): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: PG_IDLE_TIMEOUT_MS,
  });
  // An idle connection that dies (server restart, failover) is dropped by the pool; without a
  // listener its 'error' event would crash the process. Queries on it fail and are reported there.
  pool.on('error', (err) => onIdleError?.(err));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Opens the database and brings its schema up to date: PostgreSQL when a
 * URL is given, else `<dataDir>/livegraft.db` (created if needed).
 */
export async function openDatabase(dataDir: string, opts: DatabaseOptions = {}): Promise<OpenedDatabase> {
  let opened: OpenedDatabase;
  if (opts.url !== undefined) {
    if (!isPostgresUrl(opts.url)) {
      throw new LivegraftError('CONFIG_INVALID', 'the database URL must start with postgres:// or postgresql://');
    }
    opened = { db: postgresKysely(opts.url, opts.poolSize, opts.onIdleError), kind: 'postgres', url: opts.url };
  } else {
    const database = openNodeSqlite(join(dataDir, DB_FILE));
    opened = {
      db: new Kysely<Database>({ dialect: new SqliteDialect({ database }) }),
      kind: 'sqlite',
      readSync: database.readSync,
      writeSync: database.writeSync,
    };
  }
  try {
    await migrateToLatest(opened.db as unknown as Kysely<unknown>);
  } catch (err) {
    await opened.db.destroy();
    throw err;
  }
  return opened;
}
