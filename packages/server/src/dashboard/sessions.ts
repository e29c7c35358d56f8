import { createHash, randomBytes } from 'node:crypto';
import type { Kysely, Migration } from 'kysely';

/** The dashboard's session cookie; its value is the session id, the database keeps only its hash. */
export const SESSION_COOKIE = 'lg_session';
/** A session lasts a working day; signing in again is cheap and a stolen cookie dies soon. */
export const SESSION_TTL_MS = 12 * 3600 * 1000;
/** Session ids are 32 random bytes, base64url: 43 characters. */
const SESSION_ID_CHARS = 43;

interface SessionsTable {
  id_hash: string;
  /** sha256 of the API token that signed in; re-checked on every request so revoking it ends the session. */
  token_hash: string;
  created_at: string;
  expires_at: string;
}

interface SessionDb {
  dashboard_sessions: SessionsTable;
}

/** 0020: dashboard sessions. Schema builder only (SQLite and PostgreSQL). */
export const sessionMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('dashboard_sessions')
      .addColumn('id_hash', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('token_hash', 'varchar(64)', (c) => c.notNull())
      .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('expires_at', 'varchar(40)', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('dashboard_sessions_expires_idx')
      .on('dashboard_sessions')
      .column('expires_at')
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('dashboard_sessions').execute();
  },
};

function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/**
 * The CSRF token of a session, derived from its id: only someone holding the
 * (HttpOnly) cookie value or told it by GET /session can know it.
 */
export function csrfTokenFor(sessionId: string): string {
  return createHash('sha256').update(`livegraft-csrf\0${sessionId}`, 'utf8').digest('base64url');
}

export function looksLikeSessionId(value: string): boolean {
  return value.length === SESSION_ID_CHARS && /^[A-Za-z0-9_-]+$/.test(value);
}

export interface LiveSession {
  tokenHash: string;
  expiresAt: string;
}

/** Server-side sessions in the shared database, so every server node knows them. */
export class SessionStore {
  readonly #db: Kysely<SessionDb>;
  readonly #clock: () => Date;

  constructor(db: Kysely<unknown>, clock: () => Date) {
    this.#db = db as Kysely<SessionDb>;
    this.#clock = clock;
  }

  /** Starts a session for an API token (by hash); returns the id for the cookie. */
  async create(tokenHash: string): Promise<{ id: string; expiresAt: string }> {
    const now = this.#clock();
    // Expired rows are dropped whenever someone signs in, so the table stays the size of the live sessions.
    await this.#db.deleteFrom('dashboard_sessions').where('expires_at', '<', now.toISOString()).execute();
    const id = randomBytes(32).toString('base64url');
    const expiresAt = new Date(now.getTime() + SESSION_TTL_MS).toISOString();
    await this.#db
      .insertInto('dashboard_sessions')
      .values({ id_hash: sha256(id), token_hash: tokenHash, created_at: now.toISOString(), expires_at: expiresAt })
      .execute();
    return { id, expiresAt };
  }

  async find(id: string): Promise<LiveSession | undefined> {
    if (!looksLikeSessionId(id)) return undefined;
    const row = await this.#db
      .selectFrom('dashboard_sessions')
      .select(['token_hash', 'expires_at'])
      .where('id_hash', '=', sha256(id))
      .executeTakeFirst();
    if (row === undefined || row.expires_at <= this.#clock().toISOString()) return undefined;
    return { tokenHash: row.token_hash, expiresAt: row.expires_at };
  }

  async delete(id: string): Promise<void> {
    if (!looksLikeSessionId(id)) return;
    await this.#db.deleteFrom('dashboard_sessions').where('id_hash', '=', sha256(id)).execute();
  }
}
