import type { Kysely } from 'kysely';
import type { PatchManifest } from '@livegraft/protocol';
import { ID_CHUNK } from '../db/hosts.ts';
import type { Database } from '../db/schema.ts';

/** (kernel, level) fix lists kept in memory; past this the oldest are read again when next needed. */
export const LEVEL_FIXES_MAX_ENTRIES = 8192;

export const levelKey = (kernelId: string, level: number): string => `${kernelId}\u0000${level}`;

/**
 * The fix ids of each stored level, read from its manifest once. A level's
 * manifest never changes after it is stored (insert never overwrites), so
 * the lists stay valid across snapshot invalidations and server nodes; the
 * fleet snapshot, rebuilt every few seconds, then costs no manifest parsing.
 */
export class LevelFixes {
  readonly #db: Kysely<Database>;
  readonly #known = new Map<string, string[]>();

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /**
   * Fix ids for each (kernel, level) asked for, keyed by levelKey. Manifests
   * not seen yet are read in one query per chunk of kernels (usually only the
   * newest levels: the ones published since the last read).
   */
  async of(levels: { kernelId: string; level: number }[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const lowestMissing = new Map<string, number>();
    for (const l of levels) {
      const k = levelKey(l.kernelId, l.level);
      const known = this.#known.get(k);
      if (known !== undefined) out.set(k, known);
      else lowestMissing.set(l.kernelId, Math.min(l.level, lowestMissing.get(l.kernelId) ?? l.level));
    }
    const kernels = [...lowestMissing.keys()];
    for (let i = 0; i < kernels.length; i += ID_CHUNK) {
      const chunk = kernels.slice(i, i + ID_CHUNK);
      const from = Math.min(...chunk.map((k) => lowestMissing.get(k) ?? 0));
      const rows = await this.#db
        .selectFrom('patches')
        .select(['kernel_id', 'level', 'manifest_json'])
        .where('kernel_id', 'in', chunk)
        .where('level', '>=', from)
        .execute();
      for (const r of rows) {
        const k = levelKey(r.kernel_id, r.level);
        if (this.#known.has(k)) continue;
        // Written by the patch repository from a validated manifest; the database is ours.
        const fixIds = (JSON.parse(r.manifest_json) as PatchManifest).fixes.map((f) => f.id);
        this.#remember(k, fixIds);
        out.set(k, fixIds);
      }
    }
    return out;
  }

  #remember(k: string, fixIds: string[]): void {
    this.#known.set(k, fixIds);
    while (this.#known.size > LEVEL_FIXES_MAX_ENTRIES) {
      const oldest = this.#known.keys().next().value;
      if (oldest === undefined) break;
      this.#known.delete(oldest);
    }
  }
}
