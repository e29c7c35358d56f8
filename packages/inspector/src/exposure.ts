import {
  countBySeverity,
  evaluationOf,
  type CveFinding,
  type InspectionResult,
  type SeverityCounts,
} from './affected.ts';
import type { CveDatabase, CveEntry } from './dataset.ts';
import { severityBucket } from './severity.ts';

export interface ExposureResult {
  inspection: InspectionResult;
  /** Affected CVEs not fixed by an applied live patch: what the host is still exposed to. */
  effective: CveFinding[];
  counts: SeverityCounts;
  /** Affected CVEs that applied live patches fix. */
  mitigated: string[];
  /** Applied CVE ids that do not affect this kernel (already fixed, or unknown to the dataset). */
  notApplicable: string[];
}

export interface ExposureSummary {
  kernelKey: string;
  counts: SeverityCounts;
  mitigated: number;
}

/** Positions (in `db.ordered()`) of the applied CVEs that affect the kernel. */
function mitigatedPositions(db: CveDatabase, member: Uint8Array, applied: Iterable<string>): number[] {
  const out: number[] = [];
  for (const id of new Set(applied)) {
    const pos = db.positionOf(id);
    if (pos !== undefined && member[pos] === 1) out.push(pos);
  }
  return out;
}

/** Effective exposure of a kernel after the live patches that fix `appliedCves`. */
export function exposure(db: CveDatabase, kernel: string, appliedCves: readonly string[]): ExposureResult {
  const { result: inspection, member } = evaluationOf(db, kernel);
  const entries = db.ordered();
  const mitigated = mitigatedPositions(db, member, appliedCves)
    .map((p) => (entries[p] as CveEntry).record.id)
    .sort();
  const fixed = new Set(mitigated);
  const notApplicable = [...new Set(appliedCves)].filter((id) => !fixed.has(id)).sort();
  const effective = fixed.size === 0 ? inspection.affected : inspection.affected.filter((f) => !fixed.has(f.id));
  return { inspection, effective, counts: countBySeverity(effective), mitigated, notApplicable };
}

/** Counts only, for fleet views: O(applied CVEs) per host once its kernel is evaluated. */
export function exposureSummary(db: CveDatabase, kernel: string, appliedCves: readonly string[]): ExposureSummary {
  const { result, member } = evaluationOf(db, kernel);
  const counts = { ...result.counts };
  const entries = db.ordered();
  const positions = mitigatedPositions(db, member, appliedCves);
  for (const p of positions) {
    const s = severityBucket((entries[p] as CveEntry).record.cvss3?.score);
    counts[s] -= 1;
    counts.total -= 1;
  }
  return { kernelKey: result.kernel.key, counts, mitigated: positions.length };
}
