import type { CveDatabase } from './dataset.ts';
import { compareDebianVersions, upstreamOfDebianVersion } from './debian.ts';
import { debianPackageVersionIn } from './kernel.ts';
import type { DatasetFile } from './schemas.ts';

/** Data older than this is reported as stale. */
export const STALE_AFTER_DAYS = 14;
const DAY_MS = 86_400_000;

export type SourceKind = 'cve-records' | 'debian-changelog' | 'other';
type Source = DatasetFile['sources'][number];

/** What a source gives; datasets written before `kind` existed are told by name and repository. */
export function sourceKind(s: Source): SourceKind {
  if (s.kind !== undefined) return s.kind;
  if (/security\/vulns/.test(s.repository) || /\bCNA\b/.test(s.name)) return 'cve-records';
  if (/^Debian changelog/.test(s.name)) return 'debian-changelog';
  return 'other';
}

export interface DatasetWarning {
  code: string;
  message: string;
}

/** How current the CVE data is, for the server's answers, the compliance report and the CLI. */
export interface DatasetStatus {
  /** When the dataset file was written. */
  generatedAt: string;
  cves: number;
  /** Date of the newest kernel CVE record source (YYYY-MM-DD). */
  cveRecordsAsOf: string | null;
  /** Day the Debian changelogs were read from the archive (YYYY-MM-DD). */
  debianAsOf: string | null;
  /** Days since the older of the two; null when the dataset does not say. */
  ageDays: number | null;
  /** Older than STALE_AFTER_DAYS (or of unknown age). */
  stale: boolean;
  /** Newest Debian package version of each changelog, e.g. 6.1.192-3. */
  debianVersions: string[];
  warnings: DatasetWarning[];
}

function newestDate(sources: readonly Source[], kind: SourceKind): string | null {
  const dates = sources
    .filter((s) => sourceKind(s) === kind)
    .map((s) => s.commitDate.slice(0, 10))
    .filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d) && !Number.isNaN(Date.parse(d)));
  return dates.length === 0 ? null : dates.sort().at(-1)!;
}

function daysSince(date: string, now: Date): number {
  return Math.max(0, Math.floor((now.getTime() - Date.parse(`${date}T00:00:00Z`)) / DAY_MS));
}

/** The dataset's age and the warnings it earns (CVE_DATA_STALE, CVE_DATA_AGE_UNKNOWN). */
export function datasetStatus(db: CveDatabase, now: Date): DatasetStatus {
  const cveRecordsAsOf = newestDate(db.sources, 'cve-records');
  const debianAsOf = newestDate(db.sources, 'debian-changelog');
  const warnings: DatasetWarning[] = [];
  const parts: { what: string; date: string | null; fix: string }[] = [
    {
      what: 'The kernel CVE records are',
      date: cveRecordsAsOf,
      fix: 'CVEs published or fixed since are missing. Import current kernel CNA records with `livegraft cve update --cna <dir>`',
    },
    {
      what: "Debian's kernel changelogs were read",
      date: debianAsOf,
      fix: "newer Debian kernels are evaluated without Debian's own fixes. Refresh them with `livegraft cve update`",
    },
  ];
  const known = parts.filter((p) => p.date !== null) as { what: string; date: string; fix: string }[];
  const ageDays = known.length === 0 ? null : Math.max(...known.map((p) => daysSince(p.date, now)));
  for (const p of known) {
    const days = daysSince(p.date, now);
    if (days > STALE_AFTER_DAYS) {
      warnings.push({
        code: 'CVE_DATA_STALE',
        message: `${p.what} from ${p.date}, ${days} days ago (more than ${STALE_AFTER_DAYS}): ${p.fix}.`,
      });
    }
  }
  if (ageDays === null) {
    warnings.push({
      code: 'CVE_DATA_AGE_UNKNOWN',
      message: 'The CVE dataset does not say how old its data is. Refresh it with `livegraft cve update`.',
    });
  }
  return {
    generatedAt: db.generatedAt,
    cves: db.entries.size,
    cveRecordsAsOf,
    debianAsOf,
    ageDays,
    stale: ageDays === null || ageDays > STALE_AFTER_DAYS,
    debianVersions: db.debian.changelogs.map((c) => c.packageVersion),
    warnings,
  };
}

/**
 * The Debian package version a kernel string names (`... Debian 6.1.192-3 (...)`) when the
 * dataset's changelogs do not know it, else null (not Debian, no package version, or known).
 */
export function unknownDebianVersion(db: CveDatabase, kernel: string): string | null {
  const pkg = debianPackageVersionIn(kernel);
  if (pkg === null || db.debian.fixesFor(pkg) !== undefined) return null;
  return pkg;
}

/** The warning for hosts on Debian kernels the data does not know, naming the newest it knows of that series. */
export function unknownDebianWarning(db: CveDatabase, versions: ReadonlyMap<string, number>): DatasetWarning | null {
  if (versions.size === 0) return null;
  const list = [...versions].sort((a, b) => compareDebianVersions(a[0], b[0]));
  const series = (v: string): string => upstreamOfDebianVersion(v).split('.').slice(0, 2).join('.');
  const newest = (v: string): string | undefined =>
    db.debian.changelogs
      .map((c) => c.packageVersion)
      .filter((k) => series(k) === series(v))
      .sort(compareDebianVersions)
      .at(-1);
  const parts = list.map(([v, n]) => {
    const k = newest(v);
    return `${v} (${n} host${n === 1 ? '' : 's'}${k === undefined ? '' : `; the data knows up to ${k}`})`;
  });
  return {
    code: 'DEBIAN_VERSION_UNKNOWN',
    message:
      `Debian kernel version(s) the CVE data's changelogs do not know: ${parts.join(', ')}. ` +
      "These hosts are evaluated as their upstream version without Debian's own fixes. " +
      'Refresh the data with `livegraft cve update`.',
  };
}
