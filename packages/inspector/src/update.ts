import { LivegraftError } from '@livegraft/protocol';
import { fetchArchiveChangelogs, type ArchiveChangelog } from './archive.ts';
import { readCnaSources } from './cna-files.ts';
import { CveDatabase, parseDataset, saveDataset, serializeDataset } from './dataset.ts';
import { upstreamOfDebianVersion } from './debian.ts';
import { datasetStatus, sourceKind, type DatasetStatus } from './freshness.ts';
import { mergeConverted } from './import.ts';
import { openDataset } from './commands.ts';
import type { DatasetFile } from './schemas.ts';

/** Listed in the output; all are counted. */
const MAX_LISTED = 20;

export interface CveUpdateOptions {
  /** The dataset to refresh: read if it exists (else the shipped one is the base), rewritten atomically. */
  dataset: string;
  /** Kernel CNA records (CVE JSON 5): files and directories. */
  cna?: readonly string[];
  /** Read the kernel changelogs from the configured apt archive (default true). */
  debian?: boolean;
  now?: Date;
}

export interface CveUpdateResult {
  debian: { package: string; version: string; previous: string | null; uploads: number; archive: string }[];
  cna: {
    files: number;
    imported: number;
    unchanged: number;
    rejected: number;
    unusable: number;
    asOf: string | null;
  } | null;
  status: DatasetStatus;
}

const seriesOf = (v: string): string => upstreamOfDebianVersion(v).split('.').slice(0, 2).join('.');

function dateOf(iso: string): string {
  return iso.slice(0, 10);
}

/**
 * `livegraft cve update [--cna <file|dir>...] [--no-debian] --dataset <path>`: refreshes the
 * Debian mapping from the kernel changelogs in the configured apt archive and merges kernel CNA
 * records. Everything is read and checked before the dataset is touched; the new dataset is
 * validated whole, then written to a temporary file and renamed over the old one, so an error
 * leaves the previous file as it was.
 */
export async function cveUpdateCommand(
  opts: CveUpdateOptions,
  deps: { fetchChangelogs?: () => Promise<ArchiveChangelog[]>; log?: (line: string) => void } = {},
): Promise<{ output: string; result: CveUpdateResult }> {
  const now = opts.now ?? new Date();
  const debian = opts.debian ?? true;
  if (!debian && (opts.cna === undefined || opts.cna.length === 0)) {
    throw new LivegraftError(
      'CVE_UPDATE_NOTHING',
      'nothing to update: give --cna <file|dir>, or leave out --no-debian',
    );
  }
  // 1. Read everything first: a malformed record or an unreachable archive stops here.
  const cnaRead = opts.cna !== undefined && opts.cna.length > 0 ? await readCnaSources(opts.cna) : undefined;
  const fetched = debian
    ? await (deps.fetchChangelogs ?? (() => fetchArchiveChangelogs(deps.log ? { log: deps.log } : {})))()
    : [];

  // 2. Merge into a copy of the current dataset.
  const base = await openDataset(opts.dataset);
  const result: CveUpdateResult = { debian: [], cna: null, status: datasetStatus(base, now) };
  let sources: DatasetFile['sources'] = [...base.sources];
  const lines: string[] = [];

  if (cnaRead !== undefined) {
    let imported = 0;
    let unchanged = 0;
    let rejected = 0;
    let newest: string | null = null;
    for (const r of cnaRead.records) {
      const m = mergeConverted(base, r.converted);
      if (m === 'imported') imported++;
      else if (m === 'unchanged') unchanged++;
      else if (m === 'rejected') rejected++;
      if (r.dateUpdated !== null && (newest === null || r.dateUpdated > newest)) newest = r.dateUpdated;
    }
    base.invalidate();
    const asOf = newest === null ? dateOf(now.toISOString()) : dateOf(newest);
    result.cna = {
      files: cnaRead.files,
      imported,
      unchanged,
      rejected,
      unusable: cnaRead.unusable.length,
      asOf,
    };
    sources = sources.filter((s) => sourceKind(s) !== 'cve-records');
    sources.unshift({
      kind: 'cve-records',
      name: `Linux kernel CNA records (CVE JSON 5), ${cnaRead.records.length} read from ${cnaRead.files} file(s)`,
      repository: 'https://git.kernel.org/pub/scm/linux/security/vulns.git',
      commit: '',
      commitDate: asOf,
      license: 'CVE Terms of Use',
    });
    lines.push(
      `kernel CNA records: ${cnaRead.records.length + cnaRead.unusable.length} in ${cnaRead.files} file(s): ` +
        `${imported} imported, ${unchanged} unchanged, ${rejected} newly rejected, ` +
        `${cnaRead.unusable.length} without usable versions; newest record ${asOf}`,
      ...cnaRead.unusable.slice(0, MAX_LISTED).map((u) => `  not usable: ${u.file} (${u.id}): ${u.reason}`),
    );
    if (cnaRead.unusable.length > MAX_LISTED) lines.push(`  ... ${cnaRead.unusable.length - MAX_LISTED} more`);
  }

  let changelogs = [...base.debian.changelogs];
  for (const { changelog, archive } of fetched) {
    const s = seriesOf(changelog.packageVersion);
    const previous = changelogs.find((c) => seriesOf(c.packageVersion) === s);
    changelogs = changelogs.filter((c) => seriesOf(c.packageVersion) !== s);
    changelogs.push(changelog);
    sources = sources.filter(
      (x) => !(sourceKind(x) === 'debian-changelog' && /^\d/.test(x.commit) && seriesOf(x.commit) === s),
    );
    sources.push({
      kind: 'debian-changelog',
      name: `Debian changelog of ${changelog.package}`,
      repository: archive,
      commit: changelog.packageVersion,
      commitDate: dateOf(now.toISOString()),
      license: 'GPL-2',
    });
    result.debian.push({
      package: changelog.package,
      version: changelog.packageVersion,
      previous: previous?.packageVersion ?? null,
      uploads: changelog.entries.length,
      archive,
    });
    lines.push(
      `Debian ${changelog.package} ${changelog.packageVersion} from ${archive}: ${changelog.entries.length} uploads` +
        (previous === undefined
          ? ''
          : previous.packageVersion === changelog.packageVersion
            ? ' (unchanged)'
            : ` (was ${previous.packageVersion})`),
    );
  }

  // 3. Validate the whole new dataset, then replace the file atomically.
  const file: DatasetFile = { ...base.toFile(), generatedAt: now.toISOString(), sources, debian: changelogs };
  const next = new CveDatabase(file);
  parseDataset(serializeDataset(next, opts.dataset), `the updated dataset for ${opts.dataset}`);
  await saveDataset(next, opts.dataset);
  result.status = datasetStatus(next, now);
  const st = result.status;
  lines.push(
    `dataset ${opts.dataset}: ${st.cves} CVEs; kernel CVE records as of ${st.cveRecordsAsOf ?? 'unknown'}, ` +
      `Debian changelogs as of ${st.debianAsOf ?? 'unknown'} (${st.debianVersions.join(', ') || 'none'})`,
    ...st.warnings.map((w) => `warning ${w.code}: ${w.message}`),
  );
  return { output: `${lines.join('\n')}\n`, result };
}
