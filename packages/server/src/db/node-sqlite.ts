import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/** How long a statement waits for another connection's write lock before failing. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Adapts Node's built-in `node:sqlite` to the shape Kysely's SqliteDialect
 * expects (it was written for better-sqlite3): parameters come as one array,
 * and `reader` tells whether the statement returns rows.
 */
export function openNodeSqlite(path: string): SqliteDatabase {
  const db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA foreign_keys = ON');
  return {
    prepare(sql: string): SqliteStatement {
      const stmt = db.prepare(sql);
      const params = (values: ReadonlyArray<unknown>): SQLInputValue[] => values.map(toSqlValue);
      return {
        reader: stmt.columns().length > 0,
        all: (values) => stmt.all(...params(values)),
        run: (values) => stmt.run(...params(values)),
        iterate: (values) => stmt.iterate(...params(values)),
      };
    },
    close: () => db.close(),
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
