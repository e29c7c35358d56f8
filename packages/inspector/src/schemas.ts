import { Type, type Static } from 'typebox';

const Version = Type.String({
  pattern: '^\\d{1,3}\\.\\d{1,3}(\\.\\d{1,5}){0,2}$',
  description: 'upstream kernel version',
});
export const CveId = Type.String({ pattern: '^CVE-\\d{4}-\\d{4,}$' });
const Day = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}' });

export const Cvss3Schema = Type.Object({
  vector: Type.String({ pattern: '^CVSS:3\\.[01]/', maxLength: 200 }),
  score: Type.Number({ minimum: 0, maximum: 10 }),
  severity: Type.String({ maxLength: 16 }),
});

/** `[first vulnerable version | null, first fixed version | null]`, as in the kernel CNA's .dyad files. */
export const RangeSchema = Type.Tuple([Type.Union([Version, Type.Null()]), Type.Union([Version, Type.Null()])]);
export type Range = Static<typeof RangeSchema>;

/**
 * One CVE in the compact format: the shipped dataset's records, and import format `jsonl`
 * (the shared extraction's lines validate too: unknown fields are allowed and dropped).
 */
export const CompactCveSchema = Type.Object({
  id: CveId,
  title: Type.String({ maxLength: 4096 }),
  published: Type.Union([Day, Type.Null()]),
  modified: Type.Union([Day, Type.Null()]),
  cvss3: Type.Optional(Type.Union([Cvss3Schema, Type.Null()])),
  ranges: Type.Array(RangeSchema, { maxItems: 1000 }),
});
export type CompactCve = Static<typeof CompactCveSchema>;

export const DebianEntrySchema = Type.Object({
  version: Type.String({ minLength: 1, maxLength: 64 }),
  cves: Type.Array(CveId),
});

export const DebianChangelogSchema = Type.Object({
  /** Binary package whose changelog this is, e.g. linux-image-6.1.0-56-amd64-unsigned. */
  package: Type.String(),
  packageVersion: Type.String(),
  /** Newest first, as in the changelog; CVEs named by each upload (revert items included). */
  entries: Type.Array(DebianEntrySchema),
  /** `6.1.0-56` -> Debian package versions built with that ABI name, oldest first. */
  abi: Type.Record(Type.String(), Type.Array(Type.String())),
});
export type DebianChangelog = Static<typeof DebianChangelogSchema>;

export const DatasetSourceSchema = Type.Object({
  /** What the source gives: CVE records, or a Debian changelog (older files: told from name and repository). */
  kind: Type.Optional(Type.Union([Type.Literal('cve-records'), Type.Literal('debian-changelog')])),
  name: Type.String(),
  repository: Type.String(),
  commit: Type.String(),
  /** The date of the data: the records' snapshot, or the day a changelog was read from the archive. */
  commitDate: Type.String(),
  license: Type.String(),
});

/** Titles are for a report line; the full text is one click away on cve.org. */
export const MAX_TITLE = 100;

export function truncateTitle(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > MAX_TITLE ? `${t.slice(0, MAX_TITLE - 1)}…` : t;
}

export const DATASET_FORMAT = 'livegraft-kernel-cves';
export const DATASET_FORMAT_VERSION = 1;

export const DatasetFileSchema = Type.Object({
  format: Type.Literal(DATASET_FORMAT),
  formatVersion: Type.Literal(DATASET_FORMAT_VERSION),
  generatedAt: Type.String(),
  sources: Type.Array(DatasetSourceSchema),
  rejected: Type.Array(CveId),
  cves: Type.Array(CompactCveSchema),
  debian: Type.Array(DebianChangelogSchema),
});
export type DatasetFile = Static<typeof DatasetFileSchema>;
