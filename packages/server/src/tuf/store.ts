import type { Kysely } from 'kysely';
import type { PatchManifest, ValidationSummary } from '@livegraft/protocol';
import type { Database } from '../db/schema.ts';

export type TufMetadataRole = 'root' | 'targets' | 'snapshot' | 'timestamp';

export interface TufMetadataTable {
  role: string;
  version: number;
  /** The metadata file exactly as served and hashed. */
  json: string;
  created_at: string;
}

/** The tables this module reads; `patches` belongs to the patch routes and is only read here. */
interface TufTables {
  tuf_metadata: TufMetadataTable;
  patches: {
    kernel_id: string;
    level: number;
    name: string;
    manifest_json: string;
    module_sha256: string;
    size: number;
    published_at: string | null;
  };
  /** Written by the build pipeline (migration 0040); only read here. */
  level_validations: { kernel_id: string; level: number; result: string; summary_json: string | null };
}

export interface StoredMetadata {
  version: number;
  json: string;
}

export interface PublishedTarget {
  kernelId: string;
  level: number;
  name: string;
  sha256: string;
  size: number;
  manifest: PatchManifest;
  /** The VM validation summary (ValidationSummary) of a level the build pipeline proved; absent otherwise. */
  validation?: ValidationSummary;
}

/** Signed metadata rows, versioned per role; rows are only ever added (or pruned when long superseded). */
export class TufMetadataStore {
  readonly #db: Kysely<TufTables>;

  constructor(db: Kysely<Database>) {
    // The shared Database type gains tuf_metadata through the migration; this module names only what it uses.
    this.#db = db as unknown as Kysely<TufTables>;
  }

  async latest(role: TufMetadataRole): Promise<StoredMetadata | undefined> {
    return this.#db
      .selectFrom('tuf_metadata')
      .select(['version', 'json'])
      .where('role', '=', role)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  async get(role: TufMetadataRole, version: number): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('tuf_metadata')
      .select('json')
      .where('role', '=', role)
      .where('version', '=', version)
      .executeTakeFirst();
    return row?.json;
  }

  /**
   * Adds a version unless it exists. False means another writer (another
   * server node) took that version first: the caller re-reads and retries.
   */
  async insert(role: TufMetadataRole, version: number, json: string, now: Date): Promise<boolean> {
    const result = await this.#db
      .insertInto('tuf_metadata')
      .values({ role, version, json, created_at: now.toISOString() })
      .onConflict((oc) => oc.columns(['role', 'version']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  /** Deletes versions of a role below `keepFrom`. Roots are never pruned: clients walk the whole chain. */
  async prune(role: Exclude<TufMetadataRole, 'root'>, keepFrom: number): Promise<void> {
    await this.#db.deleteFrom('tuf_metadata').where('role', '=', role).where('version', '<', keepFrom).execute();
  }

  /** One published level, or undefined when it does not exist or is not published. */
  async publishedTarget(kernelId: string, level: number): Promise<Omit<PublishedTarget, 'manifest'> | undefined> {
    const r = await this.#db
      .selectFrom('patches')
      .select(['kernel_id', 'level', 'name', 'module_sha256', 'size'])
      .where('kernel_id', '=', kernelId)
      .where('level', '=', level)
      .where('published_at', 'is not', null)
      .executeTakeFirst();
    return r === undefined
      ? undefined
      : { kernelId: r.kernel_id, level: r.level, name: r.name, sha256: r.module_sha256, size: r.size };
  }

  /** Every published patch level: the TUF targets. */
  async publishedTargets(): Promise<PublishedTarget[]> {
    const rows = await this.#db
      .selectFrom('patches')
      .leftJoin('level_validations as v', (j) =>
        j.onRef('v.kernel_id', '=', 'patches.kernel_id').onRef('v.level', '=', 'patches.level'),
      )
      .select([
        'patches.kernel_id',
        'patches.level',
        'patches.name',
        'patches.manifest_json',
        'patches.module_sha256',
        'patches.size',
        'v.summary_json',
      ])
      .where('patches.published_at', 'is not', null)
      .orderBy('patches.kernel_id')
      .orderBy('patches.level')
      .execute();
    return rows.map((r) => ({
      kernelId: r.kernel_id,
      level: r.level,
      name: r.name,
      sha256: r.module_sha256,
      size: r.size,
      // Written by the patch routes from a validated manifest.
      manifest: JSON.parse(r.manifest_json) as PatchManifest,
      ...(r.summary_json === null || r.summary_json === undefined
        ? {}
        : { validation: JSON.parse(r.summary_json) as ValidationSummary }),
    }));
  }
}
