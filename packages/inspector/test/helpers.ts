import { CveDatabase } from '../src/dataset.ts';
import { DATASET_FORMAT, DATASET_FORMAT_VERSION, type CompactCve, type Range } from '../src/schemas.ts';

export const fixture = (name: string): string => new URL(`./fixtures/${name}`, import.meta.url).pathname;

/** A database of hand-made records: `ranges` per id, everything else defaulted. */
export function dbOf(records: Record<string, Range[] | Partial<CompactCve>>): CveDatabase {
  const cves: CompactCve[] = Object.entries(records).map(([id, r]) => {
    const base: CompactCve = { id, title: `test ${id}`, published: '2025-01-01', modified: '2025-01-01', ranges: [] };
    return Array.isArray(r) ? { ...base, ranges: r } : { ...base, ...r };
  });
  return new CveDatabase({
    format: DATASET_FORMAT,
    formatVersion: DATASET_FORMAT_VERSION,
    generatedAt: '2026-01-01T00:00:00Z',
    sources: [{ name: 'test', repository: 'test', commit: '0'.repeat(40), commitDate: '2026-01-01', license: 'test' }],
    rejected: [],
    cves,
    debian: [],
  });
}
