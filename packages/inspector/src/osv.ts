import { Type, type Static } from 'typebox';
import { day, dedupe, type Converted } from './cna.ts';
import { truncateTitle, type CompactCve, type Range } from './schemas.ts';
import { cvss3FromVector, type Cvss3 } from './severity.ts';
import { tryParseVersion, type UpstreamVersion } from './version.ts';

const OsvEvent = Type.Object({
  introduced: Type.Optional(Type.String({ maxLength: 200 })),
  fixed: Type.Optional(Type.String({ maxLength: 200 })),
  last_affected: Type.Optional(Type.String({ maxLength: 200 })),
  limit: Type.Optional(Type.String({ maxLength: 200 })),
});

/** The parts of an OSV record (https://ossf.github.io/osv-schema/) the inspector reads. */
export const OsvRecordSchema = Type.Object({
  schema_version: Type.Optional(Type.String()),
  id: Type.String({ minLength: 1, maxLength: 200 }),
  modified: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}' }),
  published: Type.Optional(Type.String()),
  withdrawn: Type.Optional(Type.String()),
  aliases: Type.Optional(Type.Array(Type.String())),
  upstream: Type.Optional(Type.Array(Type.String())),
  summary: Type.Optional(Type.String()),
  details: Type.Optional(Type.String()),
  severity: Type.Optional(Type.Array(Type.Object({ type: Type.String(), score: Type.String() }))),
  affected: Type.Array(
    Type.Object({
      package: Type.Optional(Type.Object({ ecosystem: Type.String(), name: Type.String() })),
      ranges: Type.Optional(
        Type.Array(
          Type.Object({ type: Type.String(), events: Type.Array(OsvEvent, { minItems: 1, maxItems: 2000 }) }),
          {
            maxItems: 200,
          },
        ),
      ),
    }),
    { maxItems: 100 },
  ),
});
export type OsvRecord = Static<typeof OsvRecordSchema>;

const CVE_RE = /^CVE-\d{4}-\d{4,}$/;

/**
 * Converts an OSV record. ECOSYSTEM and SEMVER range events are sorted by version and paired in
 * order (introduced -> fixed), `introduced: "0"` becoming null and `last_affected: L` becoming a
 * fix at the next sublevel. The pairs are then read with the same branch rule as the CNA data, so
 * `[0, 6.1.124)` says 6.1 before 6.1.124 is affected, not every older branch. GIT ranges are skipped.
 */
export function convertOsv(r: OsvRecord): Converted {
  const id = [r.id, ...(r.aliases ?? []), ...(r.upstream ?? [])].find((x) => CVE_RE.test(x));
  if (id === undefined) return { ok: false, reason: `OSV record ${r.id} has no CVE id (neither its id nor an alias)` };
  if (r.withdrawn !== undefined) return { ok: 'rejected', id };
  const ranges: Range[] = [];
  const bad: string[] = [];
  for (const a of r.affected) {
    for (const range of a.ranges ?? []) {
      if (range.type !== 'ECOSYSTEM' && range.type !== 'SEMVER') continue;
      type Ev = { kind: 'introduced' | 'fixed' | 'last_affected'; v: UpstreamVersion | null };
      const evs: Ev[] = [];
      for (const e of range.events) {
        const kinds = (['introduced', 'fixed', 'last_affected'] as const).filter((k) => e[k] !== undefined);
        for (const kind of kinds) {
          const text = e[kind] as string;
          if (kind === 'introduced' && text === '0') {
            evs.push({ kind, v: null });
            continue;
          }
          const v = tryParseVersion(text);
          if (v === undefined) bad.push(text);
          else evs.push({ kind, v });
        }
      }
      evs.sort((x, y) => (x.v?.key ?? -1) - (y.v?.key ?? -1));
      let open: UpstreamVersion | null | undefined;
      for (const e of evs) {
        if (e.kind === 'introduced') {
          if (open === undefined) open = e.v;
        } else if (open !== undefined && e.v !== null) {
          const fix = e.kind === 'fixed' ? e.v : nextSublevel(e.v);
          if (fix !== undefined) ranges.push([open?.text ?? null, fix.text]);
          open = undefined;
        }
      }
      if (open !== undefined) ranges.push([open?.text ?? null, null]);
    }
  }
  if (bad.length > 0) return { ok: false, reason: `unparseable kernel version(s) ${bad.slice(0, 3).join(', ')}` };
  if (ranges.length === 0) return { ok: false, reason: 'no ECOSYSTEM or SEMVER ranges with kernel versions' };
  let cvss3: Cvss3 | null = null;
  for (const s of r.severity ?? []) {
    if (s.type !== 'CVSS_V3') continue;
    try {
      cvss3 = cvss3FromVector(s.score);
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
    break;
  }
  const record: CompactCve = {
    id,
    title: truncateTitle(r.summary ?? r.details?.split('\n')[0] ?? ''),
    published: day(r.published),
    modified: r.modified,
    ranges: dedupe(ranges),
  };
  if (cvss3 !== null) record.cvss3 = cvss3;
  return { ok: true, record };
}

function nextSublevel(v: UpstreamVersion): UpstreamVersion | undefined {
  return tryParseVersion(`${v.branch}.${v.sublevel + 1}`);
}
