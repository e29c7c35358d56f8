import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import type { ProcessRunner } from '../runner.ts';
import { MAX_TOOL_OUTPUT_BYTES, tail, type StepContext } from './run.ts';

/** apt-cache answers from local lists; this only bounds a stuck lock. */
const APT_CACHE_TIMEOUT_MS = 120_000;
/** The source package is ~140 MB and the image ~70 MB. */
const DOWNLOAD_TIMEOUT_MS = 60 * 60_000;

export interface AvailableBuild {
  release: string;
  debianVersion: string;
}

/** The image package whose version names a build. */
export function imagePackage(release: string): string {
  return `linux-image-${release}-unsigned`;
}

/** Parses `apt-cache madison` output into package → versions, in the order apt printed them (newest first). */
export function parseMadison(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const cols = line.split('|').map((c) => c.trim());
    if (cols.length < 3 || !/Packages$/.test(cols[2] ?? '')) continue;
    const [pkg = '', version = ''] = cols;
    if (pkg === '' || version === '') continue;
    const list = out.get(pkg) ?? [];
    if (!list.includes(version)) list.push(version);
    out.set(pkg, list);
  }
  return out;
}

/** '6.1.176-1' → '6.1.176'; drops the Debian revision and any epoch or +/~ suffix. */
export function upstreamOf(debianVersion: string): string {
  return debianVersion
    .replace(/^\d+:/, '')
    .replace(/-[^-]*$/, '')
    .replace(/[+~].*$/, '');
}

async function aptCache(run: ProcessRunner, args: string[]): Promise<string> {
  const res = await run('apt-cache', args, {
    env: { ...process.env, LC_ALL: 'C' },
    timeoutMs: APT_CACHE_TIMEOUT_MS,
    maxOutputBytes: MAX_TOOL_OUTPUT_BYTES,
  });
  if (res.code !== 0)
    throw new LivegraftError('KERNEL_ARCHIVE_UNREADABLE', `apt-cache ${args.join(' ')} failed: ${tail(res.stderr)}`, {
      details: { args, code: res.code, stderr: tail(res.stderr, 40) },
    });
  return res.stdout;
}

const UNSIGNED_61 = /^linux-image-(6\.1\.0-(\d+)-amd64)-unsigned$/;

/** The 6.1 amd64 builds the archive offers (linux-image-6.1.0-*-amd64-unsigned), oldest first. */
export async function listAvailableBuilds(run: ProcessRunner): Promise<AvailableBuild[]> {
  const names = (await aptCache(run, ['pkgnames', 'linux-image-6.1.0-']))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => UNSIGNED_61.test(l));
  if (names.length === 0) return [];
  const madison = parseMadison(await aptCache(run, ['madison', ...names]));
  const builds: { abi: number; release: string; debianVersion: string }[] = [];
  for (const name of names) {
    const m = UNSIGNED_61.exec(name);
    const version = madison.get(name)?.[0];
    if (m === null || version === undefined) continue;
    builds.push({ abi: Number(m[2]), release: m[1] ?? '', debianVersion: version });
  }
  builds.sort((a, b) => a.abi - b.abi);
  return builds.map(({ release, debianVersion }) => ({ release, debianVersion }));
}

/** The Debian version of a build, from the archive (never assumed). Throws KERNEL_BUILD_UNKNOWN when it has none. */
export async function resolveDebianVersion(
  release: string,
  run: ProcessRunner,
): Promise<{ debianVersion: string; upstreamVersion: string }> {
  const pkg = imagePackage(release);
  const versions = parseMadison(await aptCache(run, ['madison', pkg])).get(pkg) ?? [];
  const debianVersion = versions[0];
  if (debianVersion === undefined) {
    const have = await listAvailableBuilds(run);
    throw new LivegraftError(
      'KERNEL_BUILD_UNKNOWN',
      `the Debian archive has no ${pkg}; it offers ${
        have.length === 0
          ? 'no 6.1 amd64 builds (run apt-get update?)'
          : have.map((b) => `${b.release} (${b.debianVersion})`).join(', ')
      }`,
      { details: { release, available: have } },
    );
  }
  return { debianVersion, upstreamVersion: upstreamOf(debianVersion) };
}

/** Orders Debian kernel versions such as 6.1.187-1 and 6.1.192-3 (numeric parts, then the revision). */
export function compareKernelDebianVersions(a: string, b: string): number {
  const parts = (v: string): number[] => (v.replace(/^\d+:/, '').match(/\d+/g) ?? []).map(Number);
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The linux-kbuild version to pair with a build's headers. The archive keeps
 * only the newest kbuild of a suite, so an older security build's exact one
 * can be gone (6.1.187-1 while 6.1.192-3 is current). Its host tools (modpost,
 * objtool, genksyms) are the same program across one stable series, so the
 * nearest newer version is taken, else the nearest older one; the caller
 * proves the pairing by building a module whose vermagic must match.
 */
export function pickKbuildVersion(wanted: string, offered: readonly string[]): string | undefined {
  if (offered.includes(wanted)) return wanted;
  const sorted = [...offered].sort(compareKernelDebianVersions);
  return (
    sorted.find((v) => compareKernelDebianVersions(v, wanted) > 0) ??
    sorted.filter((v) => compareKernelDebianVersions(v, wanted) < 0).at(-1)
  );
}

/** The linux-kbuild-<series> version the archive offers for a build (see pickKbuildVersion). */
export async function resolveKbuildVersion(run: ProcessRunner, series: string, debianVersion: string): Promise<string> {
  const pkg = `linux-kbuild-${series}`;
  const offered = parseMadison(await aptCache(run, ['madison', pkg])).get(pkg) ?? [];
  const picked = pickKbuildVersion(debianVersion, offered);
  if (picked === undefined)
    throw new LivegraftError('KERNEL_DOWNLOAD_FAILED', `the Debian archive offers no ${pkg} (run apt-get update?)`, {
      details: { package: pkg, version: debianVersion },
    });
  return picked;
}

/** The file name apt-get download gives a package (the epoch's colon is escaped). */
function debPrefix(pkg: string, version: string): string {
  return `${pkg}_${version.replace(/:/g, '%3a')}_`;
}

const NOT_IN_LISTS =
  /Unable to locate package|Can't find a source to download|Version '[^']*' for '[^']*' was not found|No packages found/;

/** `apt-get download pkg=version` into `debs`, reusing a .deb already there. Returns the .deb's path. */
export async function downloadDeb(ctx: StepContext, debs: string, pkg: string, version: string): Promise<string> {
  await mkdir(debs, { recursive: true });
  const prefix = debPrefix(pkg, version);
  const existing = (await readdir(debs)).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
  if (existing !== undefined) return path.join(debs, existing);
  const tmp = path.join(debs, `.tmp-${process.pid}-${pkg}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    ctx.log(`downloading ${pkg}=${version}`);
    const res = await ctx.run('apt-get', ['download', `${pkg}=${version}`], {
      cwd: tmp,
      env: { ...process.env, LC_ALL: 'C' },
      timeoutMs: DOWNLOAD_TIMEOUT_MS,
      maxOutputBytes: MAX_TOOL_OUTPUT_BYTES,
      signal: ctx.signal,
    });
    const got = (await readdir(tmp)).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
    if (res.code !== 0 || got === undefined) {
      const apt = tail(res.stderr || res.stdout, 10);
      const hint = NOT_IN_LISTS.test(res.stderr)
        ? " (apt's package lists do not have it: run `apt-get update` and try again)"
        : res.timedOut
          ? ` (timed out after ${DOWNLOAD_TIMEOUT_MS / 60_000} min)`
          : '';
      throw new LivegraftError('KERNEL_DOWNLOAD_FAILED', `could not download ${pkg}=${version}${hint}: ${apt}`, {
        details: { package: pkg, version, code: res.code, apt },
      });
    }
    const dest = path.join(debs, got);
    await rename(path.join(tmp, got), dest);
    return dest;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
