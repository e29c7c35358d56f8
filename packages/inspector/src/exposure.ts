import { affected, countBySeverity, type CveFinding, type InspectionResult, type SeverityCounts } from './affected.ts';
import type { CveDatabase } from './dataset.ts';

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

/** Effective exposure of a kernel after the live patches that fix `appliedCves`. */
export function exposure(db: CveDatabase, kernel: string, appliedCves: readonly string[]): ExposureResult {
  const inspection = affected(db, kernel);
  const applied = new Set(appliedCves);
  const effective = inspection.affected.filter((f) => !applied.has(f.id));
  const affectedIds = new Set(inspection.affected.map((f) => f.id));
  const mitigated = [...applied].filter((id) => affectedIds.has(id)).sort();
  const notApplicable = [...applied].filter((id) => !affectedIds.has(id)).sort();
  return { inspection, effective, counts: countBySeverity(effective), mitigated, notApplicable };
}
