import { chmodSync, closeSync, openSync } from 'node:fs';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/** How long a statement waits for another connection's write lock before failing. */
const BUSY_TIMEOUT_MS = 5000;
/** Prepared statements kept per connection; Kysely emits the same few hundred SQL texts over and over. */
const STATEMENT_CACHE_SIZE = 512;

/** Runs a read on the connection at once, without Kysely's asynchronous round trip. */
export type ReadSync = (sql: string, params: readonly unknown[]) => Record<string, unknown>[];

/** Runs one statement inside a WriteSync body: the rows of a statement that returns rows, else none. */
export type ExecSync = (sql: string, params: readonly unknown[]) => Record<string, unknown>[];

/**
 * Runs a body of statements as one transaction at once, committed before it
 * returns, or rolled back if the body throws. Undefined, with nothing run,
 * while another caller's transaction is open on the connection (Kysely holds
 * it across awaits): the caller then takes the asynchronous path, which waits
 * for that transaction.
 */
export type WriteSync = <T>(body: (exec: ExecSync) => T) => { value: T } | undefined;

/**
 * Adapts Node's built-in `node:sqlite` to the shape Kysely's SqliteDialect
 * expects (it was written for better-sqlite3): parameters come as one array,
 * and `reader` tells whether the statement returns rows.
 */
/**
 * Creates the database file owner-only before SQLite does (SQLite would follow the umask, and it
 * gives its -wal and -shm files the database file's mode), and tightens one created looser.
 */
function ownerOnly(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

export function openNodeSqlite(path: string): SqliteDatabase & { readSync: ReadSync; writeSync: WriteSync } {
  if (path !== ':memory:') ownerOnly(path);
  const db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  db.exec('PRAGMA journal_mode = WAL');
  // In WAL mode NORMAL never corrupts the database; it fsyncs at checkpoints instead of at every
  // commit, so a power cut may lose the last moments of check-ins, never the file. FULL made every
  // check-in wait for the disk, which capped a fleet's check-ins at the disk's fsync rate.
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA foreign_keys = ON');
  // Compiling SQL cost more than running it on the check-in path; statements are reused by text.
  const cache = new Map<string, { stmt: StatementSync; reader: boolean }>();
  const prepared = (sql: string): { stmt: StatementSync; reader: boolean } => {
    const hit = cache.get(sql);
    if (hit !== undefined) {
      cache.delete(sql);
      cache.set(sql, hit);
      return hit;
    }
    const stmt = db.prepare(sql);
    const entry = { stmt, reader: stmt.columns().length > 0 };
    cache.set(sql, entry);
    if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    return entry;
  };
  const params = (values: ReadonlyArray<unknown>): SQLInputValue[] => values.map(toSqlValue);
  return {
    prepare(sql: string): SqliteStatement {
      const { stmt, reader } = prepared(sql);
      return {
        reader,
        all: (values) => stmt.all(...params(values)),
        run: (values) => stmt.run(...params(values)),
        // An open iterator holds its statement; a cached one could be reset under it by the next query.
        iterate: (values) => db.prepare(sql).iterate(...params(values)),
      };
    },
    close: () => db.close(),
    // For the check-in's one read: SQLite is in-process and synchronous anyway, and Kysely's
    // connection mutex and promise chain cost more than the statement. Reads only, so it can
    // never interleave a write into another caller's transaction.
    readSync: (sql, values) => {
      const { stmt, reader } = prepared(sql);
      if (!reader) throw new TypeError('readSync runs statements that return rows only');
      return stmt.all(...params(values)) as Record<string, unknown>[];
    },
    // For the check-in's writes. Nothing awaits between BEGIN and COMMIT, so no other caller's
    // statement can land inside this transaction, nor this one inside another's.
    writeSync: <T>(body: (exec: ExecSync) => T): { value: T } | undefined => {
      if (db.isTransaction) return undefined;
      const exec: ExecSync = (sql, values) => {
        const { stmt, reader } = prepared(sql);
        if (reader) return stmt.all(...params(values)) as Record<string, unknown>[];
        stmt.run(...params(values));
        return [];
      };
      db.exec('BEGIN');
      try {
        const value = body(exec);
        db.exec('COMMIT');
        return { value };
      } catch (err) {
        if (db.isTransaction) db.exec('ROLLBACK');
        throw err;
      }
    },
  };
}

// node:sqlite binds only null, numbers, bigints, strings and byte arrays.
function toSqlValue(value: unknown): SQLInputValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`cannot bind a ${typeof value} as an SQL parameter`);
}
