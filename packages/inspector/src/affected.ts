import { LivegraftError } from '@livegraft/protocol';
import { compareIds, MAX_MEMO_KERNELS, type CveDatabase, type CveEntry, type Pair } from './dataset.ts';
import { parseKernel, type InspectionWarning, type KernelTarget } from './kernel.ts';
import { severityBucket, SEVERITY_ORDER, type SeverityBucket } from './severity.ts';
import { parseVersion, type UpstreamVersion } from './version.ts';

/**
 * The README rule, literally: V (branch B) is affected by pair [i, f] if
 * (i is null, or i <= V and i is mainline or in B) and
 * (f is null, or f is a stable version of B and V < f, or f is mainline, B has no stable fix and V < f).
 * The branch index computes the same thing faster; tests hold the two equal.
 */
export function pairAffects(entry: CveEntry, pair: Pair, v: UpstreamVersion): boolean {
  const { first, fixed } = pair;
  const firstOk = first === null || (first.key <= v.key && (first.mainline || first.branch === v.branch));
  if (!firstOk) return false;
  if (fixed === null) return true;
  if (!fixed.mainline) return fixed.branch === v.branch && v.key < fixed.key;
  return !entry.stableFixes.has(v.branch) && v.key < fixed.key;
}

/** Index of the first pair that makes V affected, or -1. */
export function affectingPair(entry: CveEntry, v: UpstreamVersion | string): number {
  const ver = typeof v === 'string' ? parseVersion(v) : v;
  return entry.pairs.findIndex((p) => pairAffects(entry, p, ver));
}

export interface FixedIn {
  version: string;
  kind: 'stable' | 'mainline';
}

export interface CveFinding {
  id: string;
  title: string;
  severity: SeverityBucket;
  cvssScore: number | null;
  cvssVector: string | null;
  published: string | null;
  /** The fix for the kernel's branch, else the mainline fix if it is newer than the kernel, else null. */
  fixedIn: FixedIn | null;
  why: string;
}

export type SeverityCounts = Record<SeverityBucket, number> & { total: number };

export interface InspectionResult {
  kernel: {
    release: string;
    distro: KernelTarget['distro'];
    upstream: string;
    branch: string;
    debianPackageVersion: string | null;
    key: string;
  };
  dataset: { generatedAt: string; sources: { name: string; commit: string; commitDate: string }[]; cves: number };
  affected: CveFinding[];
  counts: SeverityCounts;
  /** CVEs the upstream rule reports but the distribution changelog names as fixed. */
  fixedByDistro: string[];
  warnings: InspectionWarning[];
}

export function fixedInFor(entry: CveEntry, v: UpstreamVersion): FixedIn | null {
  const stable = entry.stableFixes.get(v.branch);
  if (stable !== undefined) return { version: stable.text, kind: 'stable' };
  const m = entry.mainlineFix;
  if (m !== null && m.key > v.key) return { version: m.text, kind: 'mainline' };
  return null;
}

/** Why the pair makes a version of `branch` affected; independent of the sublevel, so shared. */
function why(entry: CveEntry, pair: Pair, branch: string): string {
  const from =
    pair.first === null
      ? 'vulnerable since before the first known release'
      : pair.first.mainline
        ? `introduced in mainline ${pair.first.text}`
        : `introduced in ${pair.first.text} by a backport`;
  let to: string;
  if (pair.fixed === null) to = `no fix in ${branch} yet`;
  else if (pair.fixed.mainline) to = `fixed in mainline ${pair.fixed.text}, no ${branch} stable fix`;
  else to = `fixed in ${pair.fixed.text}`;
  const unfixed = pair.fixed === null && entry.mainlineFix !== null ? ` (mainline fix ${entry.mainlineFix.text})` : '';
  return `${from}; ${to}${unfixed}`;
}

export function emptyCounts(): SeverityCounts {
  const c = { total: 0 } as SeverityCounts;
  for (const s of SEVERITY_ORDER) c[s] = 0;
  return c;
}

export function countBySeverity(findings: readonly CveFinding[]): SeverityCounts {
  const c = emptyCounts();
  for (const f of findings) {
    c[f.severity] += 1;
    c.total += 1;
  }
  return c;
}

/** Most severe first, then highest score, then newest id. */
export function compareFindings(a: CveFinding, b: CveFinding): number {
  return (
    SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity) ||
    (b.cvssScore ?? -1) - (a.cvssScore ?? -1) ||
    compareIds(b.id, a.id)
  );
}

interface Evaluation {
  affected: CveFinding[];
  counts: SeverityCounts;
  fixedByDistro: string[];
  /** 1 at the `ordered()` position of each affected CVE. */
  member: Uint8Array;
}

/**
 * Evaluates a parsed kernel. The CVE list is memoised per normalised kernel key on the database,
 * so hosts on the same kernel share one evaluation (and one findings array: treat it as read-only).
 */
export function evaluate(db: CveDatabase, target: KernelTarget): InspectionResult {
  return toResult(db, target, evaluation(db, target));
}

function evaluation(db: CveDatabase, target: KernelTarget): Evaluation {
  const memoKey = `eval\u0000${target.key}`;
  let ev = db.memo.get(memoKey) as Evaluation | undefined;
  if (ev === undefined) {
    ev = computeEvaluation(db, target);
    if (db.memo.size >= MAX_MEMO_KERNELS) db.memo.clear();
    db.memo.set(memoKey, ev);
  }
  return ev;
}

function datasetSummary(db: CveDatabase): InspectionResult['dataset'] {
  let d = db.memo.get('dataset') as InspectionResult['dataset'] | undefined;
  if (d === undefined) {
    d = {
      generatedAt: db.generatedAt,
      sources: db.sources.map((s) => ({ name: s.name, commit: s.commit, commitDate: s.commitDate })),
      cves: db.entries.size,
    };
    db.memo.set('dataset', d);
  }
  return d;
}

function toResult(db: CveDatabase, target: KernelTarget, ev: Evaluation): InspectionResult {
  const v = target.upstream;
  return {
    kernel: {
      release: target.release,
      distro: target.distro,
      upstream: v.text,
      branch: v.branch,
      debianPackageVersion: target.debianPackageVersion,
      key: target.key,
    },
    dataset: datasetSummary(db),
    affected: ev.affected,
    counts: ev.counts,
    fixedByDistro: ev.fixedByDistro,
    warnings: target.warnings,
  };
}

function computeEvaluation(db: CveDatabase, target: KernelTarget): Evaluation {
  const v = target.upstream;
  const branchStart = parseVersion(v.branch);
  const entries = db.ordered();
  const distroFixes =
    target.debianPackageVersion === null ? undefined : db.debian.fixesFor(target.debianPackageVersion)?.cves;
  const index = db.branchIndex(v);
  const member = new Uint8Array(entries.length);
  const hits: number[] = [];
  const rowOf = new Map<number, number>();
  const fixedByDistro: string[] = [];
  index.query(v.sublevel, (ci, _pi, row) => {
    const e = entries[ci] as CveEntry;
    if (distroFixes?.has(e.record.id) === true) {
      fixedByDistro.push(e.record.id);
      return;
    }
    member[ci] = 1;
    hits.push(ci);
    rowOf.set(ci, row);
  });
  // Positions are report order, so sorting the positions sorts the findings.
  hits.sort((a, b) => a - b);
  const affected = hits.map((ci) => {
    const row = rowOf.get(ci) as number;
    let f = index.rowCache[row] as CveFinding | undefined;
    if (f === undefined) {
      f = finding(entries[ci] as CveEntry, index.pairOf(row), branchStart);
      index.rowCache[row] = f;
    }
    return f;
  });
  fixedByDistro.sort(compareIds);
  return { affected, counts: countBySeverity(affected), fixedByDistro, member };
}

/** A finding depends only on (CVE, pair, branch): built once per branch index row and shared. */
function finding(e: CveEntry, pairIndex: number, branch: UpstreamVersion): CveFinding {
  const score = e.record.cvss3?.score ?? null;
  return Object.freeze({
    id: e.record.id,
    title: e.record.title,
    severity: severityBucket(score),
    cvssScore: score,
    cvssVector: e.record.cvss3?.vector ?? null,
    published: e.record.published,
    fixedIn: fixedInFor(e, branch),
    why: why(e, e.pairs[pairIndex] as Pair, branch.branch),
  });
}

/** Kernel result plus membership, for exposure computations. */
export function evaluationOf(db: CveDatabase, kernel: string): { result: InspectionResult; member: Uint8Array } {
  const target = parseKernelCached(db, kernel);
  const ev = evaluation(db, target);
  return { result: toResult(db, target, ev), member: ev.member };
}

/**
 * CVEs affecting a kernel given as text (bare version, uname -r, /proc/version line, or several
 * pasted together). Throws KERNEL_VERSION_UNKNOWN if the upstream base cannot be determined.
 * The result is shared between callers with the same kernel: treat it as read-only.
 */
export function affected(db: CveDatabase, kernel: string): InspectionResult {
  return evaluate(db, parseKernelCached(db, kernel));
}

function parseKernelCached(db: CveDatabase, kernel: string): KernelTarget {
  const key = `parse\u0000${kernel}`;
  const hit = db.memo.get(key);
  if (hit instanceof LivegraftError) throw hit;
  if (hit !== undefined) return hit as KernelTarget;
  let t: KernelTarget | LivegraftError;
  try {
    t = parseKernel(kernel, db.debian);
  } catch (err) {
    if (!(err instanceof LivegraftError)) throw err;
    t = err;
  }
  if (db.memo.size >= MAX_MEMO_KERNELS) db.memo.clear();
  db.memo.set(key, t);
  if (t instanceof LivegraftError) throw t;
  return t;
}
