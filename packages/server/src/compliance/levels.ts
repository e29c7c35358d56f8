import type { Kysely } from 'kysely';
import { levelFixesOf, liveFixedCves, type LevelFix, type PatchManifest } from '@livegraft/protocol';
import type { ComplianceDatabase } from './schema.ts';

/** Distinct (kernel, level) manifests kept in memory; beyond this the cache restarts. */
const MAX_CACHED_LEVELS = 10_000;

export interface LevelInfo {
  kernelId: string;
  level: number;
  moduleName: string;
  cves: string[];
  /** The level's fixes (with kind and upstream commits) per CVE. */
  fixesByCve: Map<string, LevelFix[]>;
  published: boolean;
}

/** What each (kernel, level) fixes, from the stored manifests. Manifests never change once stored. */
export class LevelCatalog {
  readonly #db: Kysely<ComplianceDatabase>;
  readonly #cache = new Map<string, LevelInfo | null>();

  constructor(db: Kysely<ComplianceDatabase>) {
    this.#db = db;
  }

  /** The level's manifest facts, or undefined when level 0 or the server never stored that level. */
  async get(kernelId: string, level: number): Promise<LevelInfo | undefined> {
    if (level <= 0) return undefined;
    const key = `${kernelId}/${level}`;
    if (this.#cache.has(key)) return this.#cache.get(key) ?? undefined;
    const row = await this.#db
      .selectFrom('patches')
      .select(['kernel_id', 'level', 'name', 'manifest_json', 'published_at'])
      .where('kernel_id', '=', kernelId)
      .where('level', '=', level)
      .executeTakeFirst();
    const info =
      row === undefined ? null : toInfo(row.kernel_id, row.level, row.name, row.manifest_json, row.published_at);
    // An unpublished level may be published later; only cache what cannot change.
    if (this.#cache.size >= MAX_CACHED_LEVELS) this.#cache.clear();
    if (info !== null && info.published) this.#cache.set(key, info);
    return info ?? undefined;
  }

  async cves(kernelId: string, level: number): Promise<string[]> {
    // Level 0 is the unpatched kernel: nothing fixed, nothing to look up.
    if (level === 0) return [];
    return (await this.get(kernelId, level))?.cves ?? [];
  }

  /** The published levels of a kernel, lowest first. */
  async publishedLevels(kernelId: string): Promise<LevelInfo[]> {
    const rows = await this.#db
      .selectFrom('patches')
      .select(['kernel_id', 'level', 'name', 'manifest_json', 'published_at'])
      .where('kernel_id', '=', kernelId)
      .where('published_at', 'is not', null)
      .orderBy('level')
      .execute();
    return rows.map((r) => toInfo(r.kernel_id, r.level, r.name, r.manifest_json, r.published_at));
  }
}

function toInfo(kernelId: string, level: number, name: string, json: string, publishedAt: string | null): LevelInfo {
  // Stored by the patch routes from a validated manifest.
  const m = JSON.parse(json) as PatchManifest;
  const fixesByCve = new Map<string, LevelFix[]>();
  for (const f of levelFixesOf(m).fixes) {
    for (const c of f.cves) fixesByCve.set(c, [...(fixesByCve.get(c) ?? []), f]);
  }
  return { kernelId, level, moduleName: name, cves: liveFixedCves(m), fixesByCve, published: publishedAt !== null };
}
