/**
 * Builds the shipped dataset data/kernel-cves.json.gz from the offline kernel CVE bundle
 * (kernel-cna-cves.jsonl, kernel-cna-rejected.json, debian/*-changelog-cves.json and the raw
 * Debian changelog for ABI names). Usage:
 *
 *   node --import tsx packages/inspector/scripts/build-dataset.ts --source <bundle dir> [--out <file>]
 *
 * It checks what it derives against the source: per-branch fixes equal the source's `fixed`, and
 * every CVSS score equals the one computed from its vector.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { CveDatabase, DEFAULT_DATASET_PATH, saveDataset, toEntry } from '../src/dataset.ts';
import { cvss3BaseScore } from '../src/severity.ts';
import { compareDebianVersions, upstreamOfDebianVersion } from '../src/debian.ts';
import {
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  truncateTitle,
  type CompactCve,
  type DebianChangelog,
} from '../src/schemas.ts';

interface SourceCve {
  id: string;
  title: string;
  published: string;
  modified: string;
  cvss3: { vector: string; score: number; severity: string } | null;
  ranges: [string | null, string | null][];
  fixed: Record<string, string>;
}

interface DebianCveFile {
  origin: { package: string; package_version: string };
  entries: { version: string; source: string; cves: string[]; cves_from_revert_items?: string[] }[];
}

const { values } = parseArgs({ options: { source: { type: 'string' }, out: { type: 'string' } } });
if (values.source === undefined) {
  console.error('usage: build-dataset.ts --source <kernel CVE bundle dir> [--out <file.json.gz>]');
  process.exit(64);
}
const src = values.source;
const out = values.out ?? DEFAULT_DATASET_PATH;

const readme = await readFile(join(src, 'README.md'), 'utf8');
const cnaOrigin = /commit\s+`([0-9a-f]{40})`\s+of\s+(\d{4}-\d{2}-\d{2})/.exec(readme);
const extracted = /Extracted on (\d{4}-\d{2}-\d{2})/.exec(readme);
if (cnaOrigin === null) throw new Error('README.md does not name the CNA source commit');

const cves: CompactCve[] = [];
let problems = 0;
for (const line of (await readFile(join(src, 'kernel-cna-cves.jsonl'), 'utf8')).split('\n')) {
  if (line.trim() === '') continue;
  const r = JSON.parse(line) as SourceCve;
  const rec: CompactCve = {
    id: r.id,
    title: truncateTitle(r.title),
    published: r.published,
    modified: r.modified,
    ranges: r.ranges,
  };
  if (r.cvss3 !== null) {
    rec.cvss3 = r.cvss3;
    const computed = cvss3BaseScore(r.cvss3.vector);
    if (computed !== r.cvss3.score) {
      problems++;
      console.error(`${r.id}: CVSS ${r.cvss3.vector} computes to ${computed}, source says ${r.cvss3.score}`);
    }
  }
  const e = toEntry(rec);
  const derived: Record<string, string> = Object.fromEntries([...e.stableFixes].map(([b, v]) => [b, v.text]));
  if (e.mainlineFix !== null) derived.mainline = e.mainlineFix.text;
  const a = JSON.stringify(Object.entries(derived).sort());
  const b = JSON.stringify(Object.entries(r.fixed).sort());
  if (a !== b) {
    problems++;
    console.error(`${r.id}: derived fixes ${a} differ from the source's ${b}`);
  }
  cves.push(rec);
}
const rejected = JSON.parse(await readFile(join(src, 'kernel-cna-rejected.json'), 'utf8')) as string[];

/** ABI names per package version from "Bump ABI to N" items; silent bumps are inferred only if they add up. */
function abiMap(raw: string, anchor: { abi: number; version: string }): Record<string, string[]> {
  const perVersion: { version: string; abi: number | undefined }[] = [];
  for (const line of raw.split('\n')) {
    const head = /^linux\S* \(([^)]+)\)/.exec(line);
    if (head !== null) perVersion.push({ version: head[1] as string, abi: undefined });
    const bump = /^\s+\*\s+(?:Bump|Set) ABI to (\d+)/.exec(line);
    const cur = perVersion[perVersion.length - 1];
    if (bump !== null && cur !== undefined && cur.abi === undefined) cur.abi = Number(bump[1]);
  }
  perVersion.reverse(); // oldest first
  const map: Record<string, string[]> = {};
  let abi: number | undefined;
  let series = '';
  const assigned: { version: string; abi: number }[] = [];
  for (const { version, abi: bumped } of perVersion) {
    const up = upstreamOfDebianVersion(version).split('.');
    const s = `${up[0]}.${up[1]}`;
    if (s !== series) {
      series = s;
      abi = undefined;
    }
    if (bumped !== undefined) abi = bumped;
    if (abi !== undefined) assigned.push({ version, abi });
  }
  // After the last explicit bump every security upload bumped the ABI silently; accept that
  // reading only if counting uploads lands exactly on the package's own ABI.
  const anchorIdx = perVersion.findIndex((p) => p.version === anchor.version);
  let lastExplicit = -1;
  for (let i = 0; i <= anchorIdx; i++) if (perVersion[i]?.abi !== undefined) lastExplicit = i;
  const lastAbi = perVersion[lastExplicit]?.abi;
  const inferred = lastAbi !== undefined && lastAbi + (anchorIdx - lastExplicit) === anchor.abi;
  console.error(
    `ABI: last explicit bump ${lastAbi} at ${perVersion[lastExplicit]?.version}; silent bumps ${inferred ? 'add up' : 'do not add up'}`,
  );
  const anchorSeries = upstreamOfDebianVersion(anchor.version).split('.').slice(0, 2).join('.');
  for (const { version, abi: n } of assigned) {
    const idx = perVersion.findIndex((p) => p.version === version);
    const series2 = upstreamOfDebianVersion(version).split('.').slice(0, 2).join('.');
    let name = n;
    if (idx > lastExplicit && series2 === anchorSeries) {
      if (!inferred && version !== anchor.version) continue;
      name = inferred ? n + (idx - lastExplicit) : anchor.abi;
    }
    (map[`${series2}.0-${name}`] ??= []).push(version);
  }
  for (const v of Object.values(map)) v.sort(compareDebianVersions);
  return map;
}

const debian: DebianChangelog[] = [];
const debDir = join(src, 'debian');
for (const f of (await readdir(debDir)).filter((n) => n.endsWith('-changelog-cves.json')).sort()) {
  const d = JSON.parse(await readFile(join(debDir, f), 'utf8')) as DebianCveFile;
  const rawName = f.replace('-changelog-cves.json', '-changelog.Debian.gz');
  let abi: Record<string, string[]> = {};
  const pkgAbi = /^linux-image-(\d+\.\d+\.0)-(\d+)-/.exec(d.origin.package);
  if (pkgAbi !== null) {
    try {
      const raw = gunzipSync(await readFile(join(debDir, rawName))).toString('utf8');
      abi = abiMap(raw, { abi: Number(pkgAbi[2]), version: d.origin.package_version });
    } catch (err) {
      console.error(`no ABI names from ${rawName}: ${(err as Error).message}`);
    }
  }
  debian.push({
    package: d.origin.package,
    packageVersion: d.origin.package_version,
    entries: d.entries.map((e) => ({
      version: e.version,
      cves: [...new Set([...e.cves, ...(e.cves_from_revert_items ?? [])])].sort(),
    })),
    abi,
  });
}

const db = new CveDatabase({
  format: DATASET_FORMAT,
  formatVersion: DATASET_FORMAT_VERSION,
  generatedAt: new Date().toISOString(),
  sources: [
    {
      kind: 'cve-records',
      name: 'Linux kernel CNA vulns repository (GitHub mirror thefossguy-ciq/kernel-security-vulns)',
      repository: 'https://git.kernel.org/pub/scm/linux/security/vulns.git',
      commit: cnaOrigin[1] as string,
      commitDate: cnaOrigin[2] as string,
      license: 'CVE Terms of Use',
    },
    ...debian.map((d) => ({
      kind: 'debian-changelog' as const,
      name: `Debian changelog of ${d.package}`,
      repository: 'https://deb.debian.org/debian-security',
      commit: d.packageVersion,
      commitDate: extracted?.[1] ?? '',
      license: 'GPL-2',
    })),
  ],
  rejected,
  cves,
  debian,
});
await saveDataset(db, out);
console.log(
  JSON.stringify({
    out,
    cves: db.entries.size,
    rejected: rejected.length,
    debian: debian.map((d) => d.packageVersion),
    abi: debian.map((d) => Object.keys(d.abi).length),
    problems,
  }),
);
if (problems > 0) process.exitCode = 1;
