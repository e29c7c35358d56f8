import type { CveEntry } from './dataset.ts';
import type { UpstreamVersion } from './version.ts';

/**
 * The README rule specialised to one branch B. For V in B only the sublevel varies, so each
 * [first, fixed] pair becomes an interval [lo, hi) of sublevels (or nothing). Intervals are kept
 * sorted by lo: a lookup binary-searches the last lo <= sublevel and scans only those.
 */
export class BranchIndex {
  readonly branch: string;
  private readonly lo: Float64Array;
  private readonly hi: Float64Array;
  private readonly cve: Int32Array;
  private readonly pair: Int32Array;
  private readonly seen: Int32Array;
  private stamp = 0;
  /** Per-row cache for whatever the caller derives from (CVE, pair, branch); see affected.ts. */
  readonly rowCache: unknown[];

  constructor(entries: readonly CveEntry[], branch: UpstreamVersion) {
    this.branch = branch.branch;
    const rows: [number, number, number, number][] = [];
    entries.forEach((e, ci) => {
      e.pairs.forEach((p, pi) => {
        const iv = pairInterval(e, pi, branch);
        if (iv !== null) rows.push([iv[0], iv[1], ci, pi]);
      });
    });
    rows.sort((a, b) => a[0] - b[0]);
    this.lo = Float64Array.from(rows, (r) => r[0]);
    this.hi = Float64Array.from(rows, (r) => r[1]);
    this.cve = Int32Array.from(rows, (r) => r[2]);
    this.pair = Int32Array.from(rows, (r) => r[3]);
    this.seen = new Int32Array(entries.length);
    this.rowCache = new Array<unknown>(rows.length);
  }

  pairOf(row: number): number {
    return this.pair[row] as number;
  }

  get size(): number {
    return this.lo.length;
  }

  /**
   * Calls `hit(cveIndex, pairIndex, row)` once per affected CVE, with the first matching pair;
   * `row` identifies (CVE, pair) within this branch, for caching per-row results.
   */
  query(sublevel: number, hit: (cveIndex: number, pairIndex: number, row: number) => void): void {
    let a = 0;
    let b = this.lo.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if ((this.lo[mid] as number) <= sublevel) a = mid + 1;
      else b = mid;
    }
    // Stamps avoid clearing `seen` between queries.
    this.stamp += 1;
    const stamp = this.stamp;
    for (let k = 0; k < a; k++) {
      if ((this.hi[k] as number) <= sublevel) continue;
      const c = this.cve[k] as number;
      if (this.seen[c] === stamp) continue;
      this.seen[c] = stamp;
      hit(c, this.pair[k] as number, k);
    }
  }
}

/** Sublevel interval [lo, hi) of branch B where pair `pi` of the entry makes V affected; null if none. */
export function pairInterval(e: CveEntry, pi: number, b: UpstreamVersion): [number, number] | null {
  const p = e.pairs[pi];
  if (p === undefined) return null;
  let lo: number;
  const first = p.first;
  if (first === null) lo = 0;
  else if (first.mainline) {
    if (first.key > b.branchKey) return null; // introduced in a later release than B
    lo = 0;
  } else if (first.branch === b.branch) lo = first.sublevel;
  else return null; // a stable introduction in another branch says nothing about B

  let hi: number;
  const fixed = p.fixed;
  if (fixed === null) hi = Infinity;
  else if (!fixed.mainline) {
    if (fixed.branch !== b.branch) return null;
    hi = fixed.sublevel;
  } else {
    // A mainline fix counts only where the branch has no stable fix of its own.
    if (e.stableFixes.has(b.branch)) return null;
    if (fixed.key <= b.branchKey) return null;
    hi = Infinity;
  }
  return lo < hi ? [lo, hi] : null;
}
