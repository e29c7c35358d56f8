import { createHash } from 'node:crypto';
import type { Kysely, Migration } from 'kysely';

/** One stored OpenVEX document identity per scope (the fleet, or one host). */
interface VexDocumentsTable {
  scope: string;
  doc_id: string;
  version: number;
  statements_sha256: string;
  issued_at: string;
  updated_at: string;
}

interface VexDatabase {
  vex_documents: VexDocumentsTable;
}

/** 0075: the @id, version and dates of the OpenVEX documents served, so a fetch of unchanged statements repeats them. */
export const vexDocumentsMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('vex_documents')
      .addColumn('scope', 'varchar(80)', (c) => c.primaryKey())
      .addColumn('doc_id', 'varchar(128)', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('statements_sha256', 'varchar(64)', (c) => c.notNull())
      .addColumn('issued_at', 'varchar(40)', (c) => c.notNull())
      .addColumn('updated_at', 'varchar(40)', (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('vex_documents').execute();
  },
};

/** What a document's header says about its identity and history. */
export interface VexStamp {
  id: string;
  version: number;
  /** When version 1 was issued. */
  issuedAt: string;
  /** When this version was issued (equal to issuedAt for version 1). */
  updatedAt: string;
}

/** A store-independent digest of the statements: same statements, same digest. */
export function statementsDigest(statements: unknown): string {
  return createHash('sha256').update(JSON.stringify(statements), 'utf8').digest('hex');
}

/** Attempts at an update another node raced; each retry reads the row again. */
const MAX_RACES = 5;

/**
 * Document identities in the database (every server node and restart sees
 * the same): the first document of a scope gets an id and version 1; the same
 * statements get the same stamp back; changed statements bump the version.
 */
export class VexStampStore {
  readonly #db: Kysely<VexDatabase>;

  constructor(db: Kysely<unknown>) {
    this.#db = db as Kysely<VexDatabase>;
  }

  async stamp(scope: string, digest: string, now: Date, newId: () => string): Promise<VexStamp> {
    for (let attempt = 0; attempt < MAX_RACES; attempt++) {
      const row = await this.#db.selectFrom('vex_documents').selectAll().where('scope', '=', scope).executeTakeFirst();
      const at = now.toISOString();
      if (row === undefined) {
        const values = {
          scope,
          doc_id: newId(),
          version: 1,
          statements_sha256: digest,
          issued_at: at,
          updated_at: at,
        };
        const r = await this.#db
          .insertInto('vex_documents')
          .values(values)
          .onConflict((oc) => oc.column('scope').doNothing())
          .executeTakeFirst();
        if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 1) return toStamp(values);
        continue;
      }
      if (row.statements_sha256 === digest) return toStamp(row);
      const r = await this.#db
        .updateTable('vex_documents')
        .set({ version: row.version + 1, statements_sha256: digest, updated_at: at })
        .where('scope', '=', scope)
        .where('version', '=', row.version)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 1) {
        return toStamp({ ...row, version: row.version + 1, updated_at: at });
      }
    }
    throw new Error(`VEX document ${scope}: updated concurrently ${MAX_RACES} times in a row`);
  }
}

function toStamp(r: Pick<VexDocumentsTable, 'doc_id' | 'version' | 'issued_at' | 'updated_at'>): VexStamp {
  return { id: r.doc_id, version: r.version, issuedAt: r.issued_at, updatedAt: r.updated_at };
}
