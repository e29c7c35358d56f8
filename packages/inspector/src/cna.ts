import { Type, type Static } from 'typebox';
import { CveId, truncateTitle, type CompactCve, type Range } from './schemas.ts';
import { cvss3FromVector, type Cvss3 } from './severity.ts';
import { tryParseVersion, type UpstreamVersion } from './version.ts';

const CnaVersion = Type.Object({
  version: Type.String({ maxLength: 200 }),
  status: Type.Union([Type.Literal('affected'), Type.Literal('unaffected'), Type.Literal('unknown')]),
  versionType: Type.Optional(Type.String()),
  lessThan: Type.Optional(Type.String({ maxLength: 200 })),
  lessThanOrEqual: Type.Optional(Type.String({ maxLength: 200 })),
});

const CvssMetric = Type.Object({ vectorString: Type.String(), baseScore: Type.Optional(Type.Number()) });

/** The parts of a CVE JSON 5.x record (https://cveproject.github.io/cve-schema) the inspector reads. */
export const CnaRecordSchema = Type.Object({
  dataType: Type.Optional(Type.Literal('CVE_RECORD')),
  dataVersion: Type.Optional(Type.String({ pattern: '^5\\.' })),
  cveMetadata: Type.Object({
    cveId: CveId,
    state: Type.Union([Type.Literal('PUBLISHED'), Type.Literal('REJECTED')]),
    datePublished: Type.Optional(Type.String()),
    dateUpdated: Type.Optional(Type.String()),
  }),
  containers: Type.Object({
    cna: Type.Object({
      title: Type.Optional(Type.String()),
      descriptions: Type.Optional(Type.Array(Type.Object({ lang: Type.String(), value: Type.String() }))),
      providerMetadata: Type.Optional(Type.Object({ dateUpdated: Type.Optional(Type.String()) })),
      affected: Type.Optional(
        Type.Array(
          Type.Object({
            defaultStatus: Type.Optional(Type.String()),
            versions: Type.Optional(Type.Array(CnaVersion, { maxItems: 2000 })),
          }),
          { maxItems: 100 },
        ),
      ),
      metrics: Type.Optional(
        Type.Array(Type.Object({ cvssV3_1: Type.Optional(CvssMetric), cvssV3_0: Type.Optional(CvssMetric) })),
      ),
    }),
  }),
});
export type CnaRecord = Static<typeof CnaRecordSchema>;

export type Converted =
  { ok: true; record: CompactCve } | { ok: false; reason: string } | { ok: 'rejected'; id: string };

/**
 * Converts a CNA record into the compact ranges. The kernel CNA writes, besides git commit
 * ranges (not usable without the git history), a "semver" block with defaultStatus "affected":
 *   {version: "6.12", status: "affected"}                                   introduced in mainline 6.12
 *   {version: "0", lessThan: "6.12", status: "unaffected"}                  same, as a bound
 *   {version: "6.1.124", lessThanOrEqual: "6.1.*", status: "unaffected"}   fixed in 6.1.124
 *   {version: "6.13", lessThanOrEqual: "*", status: "unaffected",
 *    versionType: "original_commit_for_fix"}                                fixed in mainline 6.13
 *   {version: "6.1.116", lessThan: "6.1.124", status: "affected"}           an explicit range
 * Each fix becomes [introduction, fix], the introduction being the newest one not after the fix
 * (a stable one in the fix's own branch first). A stable fix in a branch older than every
 * introduction means the flaw was backported there at an unknown point: its first is null.
 */
export function convertCna(r: CnaRecord): Converted {
  const id = r.cveMetadata.cveId;
  if (r.cveMetadata.state === 'REJECTED') return { ok: 'rejected', id };
  const intros: UpstreamVersion[] = [];
  const stableFixes: UpstreamVersion[] = [];
  const mainlineFixes: UpstreamVersion[] = [];
  const explicit: Range[] = [];
  const bad: string[] = [];
  const ver = (s: string): UpstreamVersion | undefined => {
    const v = tryParseVersion(s);
    if (v === undefined) bad.push(s);
    return v;
  };
  for (const a of r.containers.cna.affected ?? []) {
    for (const v of a.versions ?? []) {
      if (v.versionType === 'git' || v.status === 'unknown') continue;
      const bound = v.lessThanOrEqual;
      if (v.status === 'affected') {
        if (v.lessThan !== undefined) {
          const f = ver(v.lessThan);
          const i = v.version === '0' ? null : ver(v.version);
          if (f !== undefined && i !== undefined) explicit.push([i?.text ?? null, f.text]);
        } else if (bound !== undefined && bound.endsWith('*')) {
          const i = ver(v.version);
          if (i !== undefined) explicit.push([i.text, null]);
        } else {
          const i = ver(v.version);
          if (i !== undefined) intros.push(i);
        }
      } else if (v.version === '0' && v.lessThan !== undefined) {
        const i = ver(v.lessThan);
        if (i !== undefined) intros.push(i);
      } else if (bound === '*') {
        const f = ver(v.version);
        if (f !== undefined) (f.mainline ? mainlineFixes : stableFixes).push(f);
      } else if (bound !== undefined && /^\d+\.\d+(\.\d+)?\.\*$/.test(bound)) {
        const f = ver(v.version);
        if (f !== undefined) stableFixes.push(f);
      }
    }
  }
  if (bad.length > 0) return { ok: false, reason: `unparseable kernel version(s) ${bad.slice(0, 3).join(', ')}` };
  const ranges: Range[] = [...explicit];
  const introFor = (f: UpstreamVersion): string | null => {
    const candidates = intros.filter((i) => i.key <= f.key && (i.mainline || i.branch === f.branch));
    const sameBranch = candidates.filter((i) => !i.mainline);
    const pool = sameBranch.length > 0 ? sameBranch : candidates;
    const best = pool.reduce<UpstreamVersion | null>((m, i) => (m === null || i.key > m.key ? i : m), null);
    return best?.text ?? null;
  };
  const explicitFixed = new Set(explicit.map((e) => e[1]));
  for (const f of [...stableFixes, ...mainlineFixes]) {
    if (!explicitFixed.has(f.text)) ranges.push([introFor(f), f.text]);
  }
  const fixedBranches = new Set(stableFixes.map((f) => f.branch));
  for (const i of intros) {
    // A backport into a branch that never got the fix.
    if (!i.mainline && !fixedBranches.has(i.branch)) ranges.push([i.text, null]);
  }
  if (ranges.length === 0) {
    return {
      ok: false,
      reason: 'no affected kernel versions in semver form (git commit ranges alone cannot be evaluated)',
    };
  }
  let cvss3: Cvss3 | null = null;
  for (const m of r.containers.cna.metrics ?? []) {
    const c = m.cvssV3_1 ?? m.cvssV3_0;
    if (c === undefined) continue;
    try {
      cvss3 = cvss3FromVector(c.vectorString);
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
    break;
  }
  const cna = r.containers.cna;
  const title = cna.title ?? cna.descriptions?.find((d) => d.lang.startsWith('en'))?.value ?? '';
  const record: CompactCve = {
    id,
    title: truncateTitle(title),
    published: day(r.cveMetadata.datePublished),
    modified: r.cveMetadata.dateUpdated ?? cna.providerMetadata?.dateUpdated ?? null,
    ranges: dedupe(ranges),
  };
  if (cvss3 !== null) record.cvss3 = cvss3;
  return { ok: true, record };
}

export function day(s: string | undefined): string | null {
  return s === undefined ? null : s.slice(0, 10);
}

export function dedupe(ranges: Range[]): Range[] {
  const seen = new Set<string>();
  return ranges.filter((r) => {
    const k = `${r[0]}|${r[1]}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
