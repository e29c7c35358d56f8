import type { Kysely, Selectable } from 'kysely';
import { levelFixesOf, type LatestResponse, type PatchManifest, type PatchRecord } from '@livegraft/protocol';
import { canonicalJson } from './canonical-json.ts';
import type { Database, PatchesTable } from './schema.ts';

type PatchRow = Selectable<PatchesTable>;

export interface InsertOutcome {
  /** False when the same (kernel, level) already existed. */
  inserted: boolean;
  /** The row now stored for (kernel, level), which may differ from the one offered. */
  row: PatchRow;
  sameManifest: boolean;
}

export class PatchRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /**
   * Inserts unless (kernel, level) exists; never overwrites. ON CONFLICT DO
   * NOTHING keeps two concurrent publishes of one level from both winning.
   */
  async insert(manifest: PatchManifest, now: Date, publish: boolean): Promise<InsertOutcome> {
    const json = canonicalJson(manifest);
    const at = now.toISOString();
    const result = await this.#db
      .insertInto('patches')
      .values({
        kernel_id: manifest.kernel.id,
        level: manifest.level,
        name: manifest.name,
        release: manifest.kernel.release,
        manifest_json: json,
        module_sha256: manifest.module.sha256,
        size: manifest.module.size,
        created_at: at,
        published_at: publish ? at : null,
      })
      .onConflict((oc) => oc.columns(['kernel_id', 'level']).doNothing())
      .executeTakeFirst();
    const row = await this.#get(manifest.kernel.id, manifest.level);
    if (row === undefined) throw new Error('patch row vanished right after insert');
    return {
      inserted: Number(result.numInsertedOrUpdatedRows ?? 0n) > 0,
      row,
      sameManifest: row.manifest_json === json,
    };
  }

  /** Sets published_at once; publishing again keeps the first time. Returns undefined if no such level. */
  async publish(kernelId: string, level: number, now: Date): Promise<PatchRecord | undefined> {
    await this.#db
      .updateTable('patches')
      .set({ published_at: now.toISOString() })
      .where('kernel_id', '=', kernelId)
      .where('level', '=', level)
      .where('published_at', 'is', null)
      .execute();
    const row = await this.#get(kernelId, level);
    return row === undefined ? undefined : toPatchRecord(row);
  }

  async list(kernelId?: string): Promise<PatchRecord[]> {
    let q = this.#db.selectFrom('patches').selectAll();
    if (kernelId !== undefined) q = q.where('kernel_id', '=', kernelId);
    const rows = await q.orderBy('kernel_id').orderBy('level').execute();
    return rows.map(toPatchRecord);
  }

  /** The highest published level for a kernel, or undefined when it has none. */
  async latestPublished(kernelId: string): Promise<LatestResponse | undefined> {
    const row = await this.#db
      .selectFrom('patches')
      .selectAll()
      .where('kernel_id', '=', kernelId)
      .where('published_at', 'is not', null)
      .orderBy('level', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row === undefined ? undefined : toLatest(row);
  }

  async publishedLevel(kernelId: string, level: number): Promise<LatestResponse | undefined> {
    const row = await this.#get(kernelId, level);
    return row === undefined || row.published_at === null ? undefined : toLatest(row);
  }

  /** A stored level, published or not, with its fixes; undefined when the server never stored it. */
  async level(kernelId: string, level: number): Promise<{ record: PatchRecord; manifest: PatchManifest } | undefined> {
    const row = await this.#get(kernelId, level);
    return row === undefined ? undefined : { record: toPatchRecord(row), manifest: manifestOf(row) };
  }

  async #get(kernelId: string, level: number): Promise<PatchRow | undefined> {
    return this.#db
      .selectFrom('patches')
      .selectAll()
      .where('kernel_id', '=', kernelId)
      .where('level', '=', level)
      .executeTakeFirst();
  }
}

function manifestOf(row: PatchRow): PatchManifest {
  // Written by insert() from a validated manifest; the database is ours.
  return JSON.parse(row.manifest_json) as PatchManifest;
}

function toLatest(row: PatchRow): LatestResponse {
  return { kernelId: row.kernel_id, level: row.level, manifest: manifestOf(row) };
}

export function toPatchRecord(row: PatchRow): PatchRecord {
  const manifest = manifestOf(row);
  const { fixes, skipped } = levelFixesOf(manifest);
  return {
    kernelId: row.kernel_id,
    level: row.level,
    name: row.name,
    release: row.release,
    cves: manifest.cves,
    fixIds: manifest.fixes.map((f) => f.id),
    fixes,
    skipped,
    moduleSha256: row.module_sha256,
    size: row.size,
    published: row.published_at !== null,
    createdAt: row.created_at,
    publishedAt: row.published_at,
  };
}
