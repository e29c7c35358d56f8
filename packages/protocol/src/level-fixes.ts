import { Type, type Static } from 'typebox';
import { CveId, FixCommit, FixId } from './fix.ts';
import { ManifestFix, type ManifestSkippedFix, type PatchManifest } from './manifest.ts';

/**
 * One fix of a level as the server's API, the agent and the dashboard show
 * it: the manifest's entry with `kind` and `commits` always present. A
 * manifest without `kind` predates patch-built fixes, so its fixes are
 * hand-written C ("source").
 */
export const LevelFix = Type.Object(
  {
    id: FixId,
    title: Type.String({ maxLength: 200 }),
    cves: Type.Array(CveId),
    functions: ManifestFix.properties.functions,
    kind: Type.Union([Type.Literal('patch'), Type.Literal('source')]),
    commits: Type.Array(FixCommit, { maxItems: 20 }),
  },
  { additionalProperties: false },
);
export type LevelFix = Static<typeof LevelFix>;

/** A fix the build was asked for but left out of the module, with the builder's reason. */
export type SkippedFix = Static<typeof ManifestSkippedFix>;

/** What a level carries, and what its build left out. */
export interface LevelFixes {
  fixes: LevelFix[];
  skipped: SkippedFix[];
}

/** The fixes of a manifest in API form, in manifest order. */
export function levelFixesOf(m: Pick<PatchManifest, 'fixes' | 'skipped'>): LevelFixes {
  return {
    fixes: m.fixes.map((f) => ({ ...f, kind: f.kind ?? 'source', commits: f.commits ?? [] })),
    skipped: (m.skipped ?? []).map((s) => ({ ...s, cves: [...s.cves] })),
  };
}

/**
 * The CVEs a level fixes live: the manifest's `cves`, less any CVE that only
 * a skipped fix names (a fix not in the module fixes nothing at run time,
 * even if a manifest lists its CVEs).
 */
export function liveFixedCves(m: Pick<PatchManifest, 'cves' | 'fixes' | 'skipped'>): string[] {
  if (m.skipped === undefined || m.skipped.length === 0) return [...m.cves];
  const built = new Set(m.fixes.flatMap((f) => f.cves));
  const onlySkipped = new Set(m.skipped.flatMap((s) => s.cves).filter((c) => !built.has(c)));
  return m.cves.filter((c) => !onlySkipped.has(c));
}

/** Git's customary short form of a commit id. */
export const SHORT_COMMIT_LENGTH = 12;

/**
 * A commit the way kernel changelogs cite one: `abcdef012345 ("subject")`,
 * or just the quoted subject when the id is unknown.
 */
export function commitText(c: FixCommit): string {
  return c.id === undefined ? `("${c.subject}")` : `${c.id.slice(0, SHORT_COMMIT_LENGTH)} ("${c.subject}")`;
}

/** A fix's commits in one line, `; `-separated; empty when it has none. */
export function commitsText(commits: readonly FixCommit[] | undefined): string {
  return (commits ?? []).map(commitText).join('; ');
}

/** How a fix was made, with its upstream commit(s): `patch from upstream 1a2b3c4d5e6f ("subject")`. */
export function fixOrigin(f: Pick<LevelFix, 'kind' | 'commits'>): string {
  const commits = commitsText(f.commits);
  if (f.kind === 'patch') return `patch from upstream ${commits || '(commit not named)'}`;
  return `hand-written C${commits === '' ? '' : `, for upstream ${commits}`}`;
}

/** One line per fix and a second with its origin, then the fixes the build left out and why. */
export function fixLines(
  fixes: readonly Pick<LevelFix, 'id' | 'title' | 'cves' | 'kind' | 'commits'>[],
  skipped: readonly SkippedFix[],
  indent = '  ',
): string[] {
  const cves = (list: readonly string[]): string => (list.length > 0 ? ` [${list.join(', ')}]` : '');
  const lines: string[] = [];
  for (const f of fixes) lines.push(`${indent}${f.id}: ${f.title}${cves(f.cves)}`, `${indent}  ${fixOrigin(f)}`);
  for (const k of skipped) lines.push(`${indent}not built: ${k.id}${cves(k.cves)}: ${k.reason}`);
  return lines;
}
