import { Kysely, SqliteDialect } from 'kysely';
import { join } from 'node:path';
import { migrateToLatest } from './migrations.ts';
import { openNodeSqlite } from './node-sqlite.ts';
import type { Database } from './schema.ts';

export const DB_FILE = 'livegraft.db';

/** Opens (creating if needed) `<dataDir>/livegraft.db` and brings its schema up to date. */
export async function openDatabase(dataDir: string): Promise<Kysely<Database>> {
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: openNodeSqlite(join(dataDir, DB_FILE)) }) });
  try {
    await migrateToLatest(db as unknown as Kysely<unknown>);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}
