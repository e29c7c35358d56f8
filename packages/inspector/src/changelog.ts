import { LivegraftError } from '@livegraft/protocol';
import { compareDebianVersions, upstreamOfDebianVersion } from './debian.ts';
import type { DebianChangelog } from './schemas.ts';

/** A changelog.Debian of the kernel is ~10 MB unpacked; anything far beyond is not one. */
export const MAX_CHANGELOG_BYTES = 64 * 1024 * 1024;

const HEADER = /^(\S+) \(([^)\s]+)\) ([^;]*);/;
const TRAILER = /^ -- /;
const CVE = /\bCVE-\d{4}-\d{4,}\b/g;
const ABI_BUMP = /^\s+\*\s+(?:Bump|Set) ABI to (\d+)/;

export interface ChangelogEntry {
  source: string;
  version: string;
  /** CVE ids the entry names, sorted (items of `Revert "…"` included: upstream often fixes a CVE by a revert). */
  cves: string[];
  /** N of a "Bump ABI to N" item. */
  abiBump?: number;
}

/**
 * Splits a Debian changelog (debian/changelog, or changelog.Debian of a binary package) into
 * its entries, newest first, as the file lists them. Throws DEBIAN_CHANGELOG_INVALID when the
 * text has no entry, or when an entry has no header or no trailer line.
 */
export function parseChangelogEntries(text: string, where: string): ChangelogEntry[] {
  if (text.length > MAX_CHANGELOG_BYTES) {
    throw new LivegraftError('DEBIAN_CHANGELOG_INVALID', `${where} is larger than ${MAX_CHANGELOG_BYTES} bytes`);
  }
  const entries: ChangelogEntry[] = [];
  let cur: { entry: ChangelogEntry; cves: Set<string>; line: number } | undefined;
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const head = HEADER.exec(line);
    if (head !== null) {
      if (cur !== undefined) {
        throw new LivegraftError(
          'DEBIAN_CHANGELOG_INVALID',
          `${where} line ${i + 1}: entry ${head[2]} starts before entry ${cur.entry.version} (line ${cur.line}) has its " -- " trailer`,
        );
      }
      cur = {
        entry: { source: head[1] as string, version: head[2] as string, cves: [] },
        cves: new Set(),
        line: i + 1,
      };
      return;
    }
    if (cur === undefined) {
      if (line.trim() !== '' && !line.startsWith('#') && !/^(?:Local variables|\s)/i.test(line)) {
        throw new LivegraftError(
          'DEBIAN_CHANGELOG_INVALID',
          `${where} line ${i + 1}: expected an entry header like "linux (6.1.192-3) bookworm-security; urgency=high"`,
        );
      }
      return;
    }
    if (TRAILER.test(line)) {
      cur.entry.cves = [...cur.cves].sort();
      entries.push(cur.entry);
      cur = undefined;
      return;
    }
    for (const m of line.matchAll(CVE)) cur.cves.add(m[0]);
    const bump = ABI_BUMP.exec(line);
    if (bump !== null && cur.entry.abiBump === undefined) cur.entry.abiBump = Number(bump[1]);
  });
  if (cur !== undefined) {
    throw new LivegraftError(
      'DEBIAN_CHANGELOG_INVALID',
      `${where} line ${cur.line}: entry ${cur.entry.version} has no " -- maintainer  date" trailer (truncated file?)`,
    );
  }
  if (entries.length === 0) throw new LivegraftError('DEBIAN_CHANGELOG_INVALID', `${where} has no changelog entry`);
  return entries;
}

/**
 * ABI names (`6.1.0-56`) per package version, from the "Bump ABI to N" items. After the last
 * explicit bump, uploads of a stable series bumped the ABI without saying so; that reading is
 * accepted only if counting the uploads lands exactly on the ABI the archive names for the
 * newest version (`anchor`), otherwise versions after the last explicit bump get no ABI name.
 */
export function abiNames(
  entries: readonly ChangelogEntry[],
  anchor: { abi: number; version: string } | undefined,
): Record<string, string[]> {
  const perVersion = [...entries].reverse().map((e) => ({ version: e.version, abi: e.abiBump })); // oldest first
  const map: Record<string, string[]> = {};
  const seriesOf = (v: string): string => upstreamOfDebianVersion(v).split('.').slice(0, 2).join('.');
  const assigned: { version: string; abi: number; idx: number }[] = [];
  let abi: number | undefined;
  let series = '';
  perVersion.forEach(({ version, abi: bumped }, idx) => {
    const s = seriesOf(version);
    if (s !== series) {
      series = s;
      abi = undefined;
    }
    if (bumped !== undefined) abi = bumped;
    if (abi !== undefined) assigned.push({ version, abi, idx });
  });
  const anchorIdx = anchor === undefined ? -1 : perVersion.findIndex((p) => p.version === anchor.version);
  let lastExplicit = -1;
  for (let i = 0; i <= anchorIdx; i++) if (perVersion[i]?.abi !== undefined) lastExplicit = i;
  const lastAbi = perVersion[lastExplicit]?.abi;
  const inferred = anchor !== undefined && lastAbi !== undefined && lastAbi + (anchorIdx - lastExplicit) === anchor.abi;
  const anchorSeries = anchor === undefined ? '' : seriesOf(anchor.version);
  for (const { version, abi: n, idx } of assigned) {
    const s = seriesOf(version);
    let name = n;
    if (anchor !== undefined && idx > lastExplicit && s === anchorSeries) {
      if (!inferred && version !== anchor.version) continue;
      name = inferred ? n + (idx - lastExplicit) : anchor.abi;
    }
    (map[`${s}.0-${name}`] ??= []).push(version);
  }
  // The archive names the newest version's ABI itself, whatever the changelog says.
  if (anchor !== undefined) {
    const list = (map[`${anchorSeries}.0-${anchor.abi}`] ??= []);
    if (!list.includes(anchor.version)) list.push(anchor.version);
  }
  for (const v of Object.values(map)) v.sort(compareDebianVersions);
  return map;
}

/**
 * The dataset's view of one kernel package's changelog: the CVEs each upload names, newest
 * first, and the ABI names of its uploads (`abi` of the newest version, when the archive says).
 */
export function changelogFromText(
  text: string,
  opts: { package: string; where: string; abi?: number },
): DebianChangelog {
  const entries = parseChangelogEntries(text, opts.where);
  const newest = entries[0] as ChangelogEntry;
  return {
    package: opts.package,
    packageVersion: newest.version,
    entries: entries.map((e) => ({ version: e.version, cves: e.cves })),
    abi: abiNames(entries, opts.abi === undefined ? undefined : { abi: opts.abi, version: newest.version }),
  };
}
