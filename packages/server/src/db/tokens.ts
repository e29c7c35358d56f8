import type { Kysely, Selectable } from 'kysely';
import type { ApiRole, RegistrationKeyRecord, TokenRecord } from '@livegraft/protocol';
import type { ApiTokensTable, RegistrationKeysTable } from './fleet-schema.ts';
import type { Database } from './schema.ts';

export interface StoredToken extends TokenRecord {
  tokenHash: string;
}

/** API tokens with a role; only their sha256 is stored. */
export class ApiTokenRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(t: Omit<StoredToken, 'revokedAt'>): Promise<void> {
    await this.#db
      .insertInto('api_tokens')
      .values({
        id: t.id,
        name: t.name,
        role: t.role,
        token_hash: t.tokenHash,
        created_at: t.createdAt,
        created_by: t.createdBy,
        revoked_at: null,
        expires_at: t.expiresAt ?? null,
      })
      .execute();
  }

  async list(): Promise<TokenRecord[]> {
    const rows = await this.#db.selectFrom('api_tokens').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => {
      const { tokenHash: _hidden, ...rec } = toToken(r);
      return rec;
    });
  }

  async findLiveByHash(tokenHash: string): Promise<StoredToken | undefined> {
    const row = await this.#db
      .selectFrom('api_tokens')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return row === undefined ? undefined : toToken(row);
  }

  async revoke(id: string, now: Date): Promise<boolean> {
    const res = await this.#db
      .updateTable('api_tokens')
      .set({ revoked_at: now.toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }
}

function toToken(r: Selectable<ApiTokensTable>): StoredToken {
  return {
    id: r.id,
    name: r.name,
    role: r.role as ApiRole,
    tokenHash: r.token_hash,
    createdAt: r.created_at,
    createdBy: r.created_by,
    revokedAt: r.revoked_at,
    expiresAt: r.expires_at,
  };
}

export interface StoredRegistrationKey extends RegistrationKeyRecord {
  keyHash: string;
}

/** Registration keys beyond the default one: each enrols into a feed with tags. */
export class RegistrationKeyRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(k: Omit<StoredRegistrationKey, 'revokedAt'>): Promise<void> {
    await this.#db
      .insertInto('registration_keys')
      .values({
        id: k.id,
        name: k.name,
        feed: k.feed,
        tags_json: JSON.stringify(k.tags),
        key_hash: k.keyHash,
        created_at: k.createdAt,
        revoked_at: null,
      })
      .execute();
  }

  async list(): Promise<RegistrationKeyRecord[]> {
    const rows = await this.#db
      .selectFrom('registration_keys')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map((r) => {
      const { keyHash: _hidden, ...rec } = toKey(r);
      return rec;
    });
  }

  async findLiveByHash(keyHash: string): Promise<StoredRegistrationKey | undefined> {
    const row = await this.#db
      .selectFrom('registration_keys')
      .selectAll()
      .where('key_hash', '=', keyHash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return row === undefined ? undefined : toKey(row);
  }

  async revoke(id: string, now: Date): Promise<boolean> {
    const res = await this.#db
      .updateTable('registration_keys')
      .set({ revoked_at: now.toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }
}

function toKey(r: Selectable<RegistrationKeysTable>): StoredRegistrationKey {
  return {
    id: r.id,
    name: r.name,
    feed: r.feed,
    tags: JSON.parse(r.tags_json) as string[],
    keyHash: r.key_hash,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}
