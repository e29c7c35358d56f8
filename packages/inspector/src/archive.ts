import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { LivegraftError } from '@livegraft/protocol';
import { changelogFromText, MAX_CHANGELOG_BYTES } from './changelog.ts';
import { compareDebianVersions } from './debian.ts';
import type { DebianChangelog } from './schemas.ts';

/**
 * The kernel changelogs of the apt archive this machine is configured for (its sources.list
 * and package lists, as `apt-get` sees them): every `linux-config-<series>` package names one
 * kernel source package (linux for 6.1 on bookworm, linux-6.12 for the backport). Its newest
 * version is downloaded with `apt-get download`, which checks it against the archive's signed
 * index, and its changelog.Debian is read with `dpkg-deb`. A ~1.5 MB download per series.
 */

/** apt-cache answers from local lists; this only bounds a stuck lock. */
const APT_CACHE_TIMEOUT_MS = 120_000;
const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;
const DPKG_TIMEOUT_MS = 120_000;
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/** A release carries two or three kernel series; more is not a Debian archive. */
const MAX_SERIES = 8;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}
export type Runner = (cmd: string, args: string[], opts: { cwd?: string; timeoutMs: number }) => Promise<RunResult>;

/** Runs a program with LC_ALL=C, bounded in time and output; a missing program is code 127. */
export const runProgram: Runner = (cmd, args, opts) =>
  new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        timeout: opts.timeoutMs,
        maxBuffer: MAX_OUTPUT_BYTES,
        env: { ...process.env, LC_ALL: 'C' },
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err === null) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
        const code = e.code === 'ENOENT' ? 127 : typeof e.code === 'number' ? e.code : 1;
        const why = e.killed === true ? `timed out after ${opts.timeoutMs / 1000} s` : '';
        resolve({ code, stdout, stderr: [stderr, why, e.code === 'ENOENT' ? `${cmd} not found` : ''].join('\n') });
      },
    );
  });

export interface ArchiveChangelog {
  changelog: DebianChangelog;
  /** Where apt found it, e.g. `http://deb.debian.org/debian-security bookworm-security/main`. */
  archive: string;
}

function tail(s: string, lines = 6): string {
  return s.trim().split('\n').filter(Boolean).slice(-lines).join(' | ');
}

async function must(run: Runner, cmd: string, args: string[], timeoutMs: number, cwd?: string): Promise<string> {
  const r = await run(cmd, args, { timeoutMs, ...(cwd === undefined ? {} : { cwd }) });
  if (r.code !== 0) {
    const hint =
      r.code === 127
        ? ` (install ${cmd === 'dpkg-deb' ? 'dpkg' : 'apt'})`
        : /Unable to locate|not found|Can't find/.test(r.stderr)
          ? " (apt's package lists do not have it: run apt-get update)"
          : /Could not resolve|Failed to fetch|Temporary failure|Connection/.test(r.stderr)
            ? ' (the archive is unreachable)'
            : '';
    throw new LivegraftError(
      'DEBIAN_ARCHIVE_UNAVAILABLE',
      `${cmd} ${args.join(' ')} failed${hint}: ${tail(r.stderr || r.stdout)}`,
      { details: { cmd, args, code: r.code } },
    );
  }
  return r.stdout;
}

/** `apt-cache madison` lines: package -> [{version, archive}] (only binary package lists). */
export function parseMadison(text: string): Map<string, { version: string; archive: string }[]> {
  const out = new Map<string, { version: string; archive: string }[]>();
  for (const line of text.split('\n')) {
    const cols = line.split('|').map((c) => c.trim());
    const [pkg = '', version = '', where = ''] = cols;
    if (cols.length < 3 || !/ Packages$/.test(where) || pkg === '' || version === '') continue;
    // "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
    const archive = where.split(/\s+/).slice(0, 2).join(' ');
    const list = out.get(pkg) ?? [];
    if (!list.some((v) => v.version === version)) list.push({ version, archive });
    out.set(pkg, list);
  }
  for (const list of out.values()) list.sort((a, b) => compareDebianVersions(b.version, a.version));
  return out;
}

/** The kernel series the archive offers (`6.1`, `6.12`), with the newest version of each and where it is. */
export async function archiveKernelSeries(
  run: Runner = runProgram,
): Promise<{ series: string; package: string; version: string; archive: string }[]> {
  const names = (await must(run, 'apt-cache', ['pkgnames', 'linux-config-'], APT_CACHE_TIMEOUT_MS))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^linux-config-\d+\.\d+$/.test(l))
    .sort()
    .slice(0, MAX_SERIES);
  if (names.length === 0) {
    throw new LivegraftError(
      'DEBIAN_ARCHIVE_UNAVAILABLE',
      "apt's package lists name no linux-config-<series> package: check that apt's sources include the Debian " +
        'archive (and its security suite), then run apt-get update',
    );
  }
  const madison = parseMadison(await must(run, 'apt-cache', ['madison', ...names], APT_CACHE_TIMEOUT_MS));
  const out = [];
  for (const name of names) {
    const newest = madison.get(name)?.[0];
    if (newest === undefined) continue;
    out.push({ series: name.slice('linux-config-'.length), package: name, ...newest });
  }
  return out;
}

/** The ABI number the archive gives a version of a `linux` source (`linux-support-6.1.0-57` at 6.1.192-3). */
async function abiOf(run: Runner, series: string, version: string): Promise<number | undefined> {
  const prefix = `linux-support-${series}.0-`;
  const names = (await must(run, 'apt-cache', ['pkgnames', prefix], APT_CACHE_TIMEOUT_MS))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => new RegExp(`^linux-support-${series.replace('.', '\\.')}\\.0-\\d+$`).test(l));
  if (names.length === 0) return undefined;
  const madison = parseMadison(await must(run, 'apt-cache', ['madison', ...names], APT_CACHE_TIMEOUT_MS));
  for (const [pkg, versions] of madison) {
    if (versions.some((v) => v.version === version)) return Number(pkg.slice(prefix.length));
  }
  return undefined;
}

/**
 * Downloads the newest `linux-config-<series>` of every kernel series in the configured archive
 * and reads its changelog. Throws DEBIAN_ARCHIVE_UNAVAILABLE (apt cannot list or fetch) or
 * DEBIAN_CHANGELOG_INVALID; nothing is kept on disk.
 */
export async function fetchArchiveChangelogs(
  deps: { run?: Runner; log?: (line: string) => void } = {},
): Promise<ArchiveChangelog[]> {
  const run = deps.run ?? runProgram;
  const log = deps.log ?? (() => {});
  const series = await archiveKernelSeries(run);
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-changelog-'));
  try {
    const out: ArchiveChangelog[] = [];
    for (const s of series) {
      log(`downloading ${s.package}=${s.version} from ${s.archive}`);
      const work = join(dir, s.series);
      await mkdir(work, { recursive: true });
      await must(run, 'apt-get', ['download', `${s.package}=${s.version}`], DOWNLOAD_TIMEOUT_MS, work);
      const deb = (await readdir(work)).find((f) => f.endsWith('.deb'));
      if (deb === undefined) {
        throw new LivegraftError(
          'DEBIAN_ARCHIVE_UNAVAILABLE',
          `apt-get download ${s.package}=${s.version} left no .deb`,
        );
      }
      const root = join(work, 'root');
      await must(run, 'dpkg-deb', ['-x', join(work, deb), root], DPKG_TIMEOUT_MS);
      const file = join(root, 'usr/share/doc', s.package, 'changelog.Debian.gz');
      const where = `changelog.Debian of ${s.package} ${s.version}`;
      let text: string;
      try {
        text = gunzipSync(await readFile(file), { maxOutputLength: MAX_CHANGELOG_BYTES }).toString('utf8');
      } catch (cause) {
        throw new LivegraftError('DEBIAN_CHANGELOG_INVALID', `${where}: ${(cause as Error).message}`, { cause });
      }
      const abi = await abiOf(run, s.series, s.version);
      const changelog = changelogFromText(text, { package: s.package, where, ...(abi === undefined ? {} : { abi }) });
      if (changelog.packageVersion !== s.version) {
        throw new LivegraftError(
          'DEBIAN_CHANGELOG_INVALID',
          `${where}: its newest entry is ${changelog.packageVersion}, not the package's version`,
        );
      }
      out.push({ changelog, archive: s.archive });
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
