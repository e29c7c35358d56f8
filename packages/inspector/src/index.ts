export { parseVersion, tryParseVersion, compareVersions, branchOf, type UpstreamVersion } from './version.ts';
export {
  parseKernel,
  debianPackageVersionIn,
  MAX_KERNEL_INPUT,
  type KernelTarget,
  type Distro,
  type InspectionWarning,
} from './kernel.ts';
export {
  CveDatabase,
  loadDataset,
  loadDefaultDataset,
  parseDataset,
  saveDataset,
  DEFAULT_DATASET_PATH,
  type CveEntry,
  type DatasetInfo,
} from './dataset.ts';
export {
  affected,
  evaluate,
  affectingPair,
  pairAffects,
  fixedInFor,
  countBySeverity,
  type CveFinding,
  type FixedIn,
  type InspectionResult,
  type SeverityCounts,
} from './affected.ts';
export { BranchIndex } from './branch-index.ts';
export {
  severityBucket,
  cvss3BaseScore,
  cvss3FromVector,
  SEVERITY_ORDER,
  type SeverityBucket,
  type Cvss3,
} from './severity.ts';
export { compareDebianVersions, upstreamOfDebianVersion, DebianMapping, type DebianFixes } from './debian.ts';
export { exposure, exposureSummary, type ExposureResult, type ExposureSummary } from './exposure.ts';
export { importRecords, IMPORT_FORMATS, type ImportFormat, type ImportResult, type SkippedRecord } from './import.ts';
export { renderExposure, renderInspection, renderInspectionJson, type AppliedLevelView } from './render.ts';
export { inspectCommand, cveImportCommand, openDataset, type CveImportOptions } from './commands.ts';
export type { CompactCve, Range, DatasetFile } from './schemas.ts';
export { cveUpdateCommand, type CveUpdateOptions, type CveUpdateResult } from './update.ts';
export {
  datasetStatus,
  unknownDebianVersion,
  unknownDebianWarning,
  STALE_AFTER_DAYS,
  type DatasetStatus,
  type DatasetWarning,
} from './freshness.ts';
export { fetchArchiveChangelogs, archiveKernelSeries, type ArchiveChangelog } from './archive.ts';
export { parseChangelogEntries, changelogFromText } from './changelog.ts';
export { readCnaSources, readCnaRecord } from './cna-files.ts';
