import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { downloadDeb } from '../kernel/archive.ts';
import { withFileLock } from '../kernel/lock.ts';
import { debsDir } from '../kernel/paths.ts';
import { runChecked, type StepContext } from '../kernel/run.ts';

/**
 * Debian source packages for user-space fixes. apt keeps a private state in
 * the user cache (its own deb-src list and index files), so nothing of the
 * system's apt configuration changes: `apt-get update` there fetches the
 * signed Sources indexes, `apt-get source --download-only` the .dsc and
 * tarballs (checked against them), and dpkg-source -x unpacks the tree with
 * Debian's patches applied.
 */

const UPDATE_TIMEOUT_MS = 10 * 60_000;
const DOWNLOAD_TIMEOUT_MS = 30 * 60_000;
const EXTRACT_TIMEOUT_MS = 10 * 60_000;
const LOCK_TIMEOUT_MS = 60 * 60_000;
const APT_CACHE_TIMEOUT_MS = 120_000;
/** The system's apt configuration files are small; anything larger is not one. */
const MAX_SOURCES_FILE_BYTES = 1024 * 1024;

export function debianSourceDir(cacheDir: string): string {
  return path.join(cacheDir, 'debian-src');
}

function aptDir(cacheDir: string): string {
  return path.join(debianSourceDir(cacheDir), 'apt');
}

/** apt options that point every state and cache path at the private directory. */
export function aptOptions(cacheDir: string): string[] {
  const dir = aptDir(cacheDir);
  return [
    '-o',
    `Dir::Etc::SourceList=${path.join(dir, 'sources.list')}`,
    '-o',
    'Dir::Etc::SourceParts=/nonexistent',
    '-o',
    `Dir::State::Lists=${path.join(dir, 'lists')}`,
    '-o',
    `Dir::Cache=${path.join(dir, 'cache')}`,
    '-o',
    'Dir::Cache::pkgcache=',
    '-o',
    'Dir::Cache::srcpkgcache=',
    '-o',
    'APT::Sandbox::User=root',
  ];
}

interface AptEntry {
  uri: string;
  suites: string[];
  components: string[];
  signedBy?: string;
}

/** Debian archive entries (`deb`) of one-line and deb822 apt sources files. */
export function parseAptSources(text: string, deb822: boolean): AptEntry[] {
  const out: AptEntry[] = [];
  if (!deb822) {
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      const m = /^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(line);
      if (m === null) continue;
      const signed = /signed-by=(\S+?)[\s\]]/.exec(m[1] ?? '')?.[1];
      out.push({
        uri: m[2] ?? '',
        suites: [m[3] ?? ''],
        components: (m[4] ?? '').split(/\s+/),
        ...(signed !== undefined ? { signedBy: signed } : {}),
      });
    }
    return out;
  }
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const raw of stanza.split('\n')) {
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw.replace(/^#.*/, ''));
      if (m !== null) fields.set((m[1] ?? '').toLowerCase(), (m[2] ?? '').trim());
    }
    if (!(fields.get('types') ?? '').split(/\s+/).includes('deb')) continue;
    if (fields.get('enabled') === 'no') continue;
    const signed = fields.get('signed-by');
    for (const uri of (fields.get('uris') ?? '').split(/\s+/).filter((u) => u !== '')) {
      out.push({
        uri,
        suites: (fields.get('suites') ?? '').split(/\s+/).filter((s) => s !== ''),
        components: (fields.get('components') ?? '').split(/\s+/).filter((s) => s !== ''),
        ...(signed !== undefined && !signed.includes('\n') ? { signedBy: signed } : {}),
      });
    }
  }
  return out;
}

/** True for Debian's own archive (main, updates, security), the one that publishes source packages. */
function isDebianArchive(uri: string): boolean {
  return /^https?:\/\/[^/]*debian\.org\/debian(-security)?\/?$/.test(uri) || /\/debian(-security)?\/?$/.test(uri);
}

/** deb-src lines for the Debian archive entries apt already uses for binaries. */
export async function debSrcLines(etcApt = '/etc/apt'): Promise<string[]> {
  const entries: AptEntry[] = [];
  const read = async (file: string, deb822: boolean): Promise<void> => {
    const st = await stat(file).catch(() => undefined);
    if (st === undefined || !st.isFile() || st.size > MAX_SOURCES_FILE_BYTES) return;
    entries.push(...parseAptSources(await readFile(file, 'utf8'), deb822));
  };
  await read(path.join(etcApt, 'sources.list'), false);
  const parts = await readdir(path.join(etcApt, 'sources.list.d')).catch(() => [] as string[]);
  for (const f of parts.sort()) {
    if (f.endsWith('.list')) await read(path.join(etcApt, 'sources.list.d', f), false);
    if (f.endsWith('.sources')) await read(path.join(etcApt, 'sources.list.d', f), true);
  }
  const lines = new Set<string>();
  for (const e of entries.filter((x) => isDebianArchive(x.uri))) {
    for (const suite of e.suites) {
      const opts = e.signedBy !== undefined ? `[signed-by=${e.signedBy}] ` : '';
      lines.add(`deb-src ${opts}${e.uri} ${suite} ${e.components.join(' ')}`);
    }
  }
  return [...lines];
}

export interface SourceContext extends StepContext {
  cacheDir: string;
  /** deb-src lines to use instead of those derived from the system's apt sources. */
  debSrc?: string[];
}

async function aptUpdate(ctx: SourceContext): Promise<void> {
  const dir = aptDir(ctx.cacheDir);
  const lines = ctx.debSrc ?? (await debSrcLines());
  if (lines.length === 0)
    throw new LivegraftError(
      'USERSPACE_NO_DEB_SRC',
      "apt's sources name no Debian archive (deb.debian.org/debian or a mirror of it) to derive deb-src entries from",
    );
  await mkdir(path.join(dir, 'lists', 'partial'), { recursive: true });
  await mkdir(path.join(dir, 'cache', 'archives', 'partial'), { recursive: true });
  await writeFile(path.join(dir, 'sources.list'), `${lines.join('\n')}\n`);
  ctx.log('apt-get update (deb-src indexes, private state)');
  await runChecked(
    ctx,
    'USERSPACE_APT_FAILED',
    'updating the Debian source indexes',
    'apt-get',
    [...aptOptions(ctx.cacheDir), 'update'],
    { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: UPDATE_TIMEOUT_MS },
  );
}

/** The versions of a source package the archive offers (as `apt-cache showsrc` lists them). */
export async function sourceVersions(ctx: SourceContext, pkg: string): Promise<string[]> {
  const res = await ctx.run('apt-cache', [...aptOptions(ctx.cacheDir), 'showsrc', pkg], {
    env: { ...process.env, LC_ALL: 'C' },
    timeoutMs: APT_CACHE_TIMEOUT_MS,
    maxOutputBytes: 64 * 1024 * 1024,
    signal: ctx.signal,
  });
  if (res.code !== 0) return [];
  const out: string[] = [];
  let current = '';
  for (const line of res.stdout.split('\n')) {
    const p = /^Package: (\S+)/.exec(line);
    if (p !== null) current = p[1] ?? '';
    const v = /^Version: (\S+)/.exec(line);
    if (v !== null && current === pkg && !out.includes(v[1] ?? '')) out.push(v[1] ?? '');
  }
  return out;
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/**
 * Makes sure the archive offers `pkg` at `version`: reads the private
 * indexes, and fetches them (once) when they are missing or lack it.
 */
export async function resolveSource(ctx: SourceContext, pkg: string, version: string): Promise<void> {
  let versions = (await exists(path.join(aptDir(ctx.cacheDir), 'lists'))) ? await sourceVersions(ctx, pkg) : [];
  if (!versions.includes(version)) {
    await withFileLock(path.join(debianSourceDir(ctx.cacheDir), 'apt.lock'), () => aptUpdate(ctx), {
      timeoutMs: LOCK_TIMEOUT_MS,
      signal: ctx.signal,
      what: 'the Debian source indexes',
    });
    versions = await sourceVersions(ctx, pkg);
  }
  if (!versions.includes(version))
    throw new LivegraftError(
      'USERSPACE_SOURCE_UNKNOWN',
      `the Debian archive has no source package ${pkg} ${version}; it offers ${versions.length === 0 ? 'none' : versions.join(', ')}`,
      { details: { package: pkg, version, available: versions } },
    );
}

/** `pkg_version` as a directory name (an epoch's colon is not wanted in paths). */
function slug(pkg: string, version: string): string {
  return `${pkg}_${version.replace(/:/g, '%3a')}`;
}

export interface SourceTree {
  /** The unpacked tree, Debian's patches applied. */
  dir: string;
  /** Seconds spent downloading and unpacking (0 when cached). */
  downloadSec: number;
  extractSec: number;
}

/**
 * The unpacked source tree of `pkg` at `version`, from the cache or the
 * archive. Concurrent builders share one copy (locked per package version).
 */
export async function sourceTree(ctx: SourceContext, pkg: string, version: string): Promise<SourceTree> {
  const root = path.join(debianSourceDir(ctx.cacheDir), 'trees', slug(pkg, version));
  const dir = path.join(root, 'src');
  const done = path.join(root, '.unpacked');
  await mkdir(root, { recursive: true });
  return withFileLock(
    path.join(root, '.lock'),
    async () => {
      if (await exists(done)) return { dir, downloadSec: 0, extractSec: 0 };
      await resolveSource(ctx, pkg, version);
      const dl = path.join(debianSourceDir(ctx.cacheDir), 'dl');
      await mkdir(dl, { recursive: true });
      const t0 = performance.now();
      ctx.log(`downloading source package ${pkg} ${version}`);
      await runChecked(
        ctx,
        'USERSPACE_SOURCE_DOWNLOAD_FAILED',
        `downloading ${pkg} ${version}`,
        'apt-get',
        [...aptOptions(ctx.cacheDir), 'source', '--download-only', `${pkg}=${version}`],
        { cwd: dl, env: { ...process.env, LC_ALL: 'C' }, timeoutMs: DOWNLOAD_TIMEOUT_MS },
      );
      const t1 = performance.now();
      const dsc = path.join(dl, `${pkg}_${version.replace(/^[0-9]+:/, '')}.dsc`);
      if (!(await exists(dsc)))
        throw new LivegraftError('USERSPACE_SOURCE_DOWNLOAD_FAILED', `apt-get source left no ${path.basename(dsc)}`);
      const tmp = path.join(root, `.tmp-${process.pid}`);
      await rm(tmp, { recursive: true, force: true });
      ctx.log(`unpacking ${path.basename(dsc)}`);
      await runChecked(
        ctx,
        'USERSPACE_SOURCE_UNPACK_FAILED',
        `unpacking ${pkg} ${version}`,
        'dpkg-source',
        ['--no-check', '-x', dsc, tmp],
        { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: EXTRACT_TIMEOUT_MS },
      );
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
      await writeFile(done, `${new Date().toISOString()}\n`);
      return { dir, downloadSec: (t1 - t0) / 1000, extractSec: (performance.now() - t1) / 1000 };
    },
    { timeoutMs: LOCK_TIMEOUT_MS, signal: ctx.signal, what: `source tree ${pkg} ${version}` },
  );
}

/**
 * A binary package's files (e.g. libssl3 3.0.20-1~deb12u2), unpacked under
 * the cache with dpkg-deb -x; the .deb comes from the system's apt lists.
 */
export async function binaryTree(ctx: SourceContext, pkg: string, version: string): Promise<string> {
  const root = path.join(debianSourceDir(ctx.cacheDir), 'bin', slug(pkg, version));
  const dir = path.join(root, 'root');
  const done = path.join(root, '.unpacked');
  await mkdir(root, { recursive: true });
  return withFileLock(
    path.join(root, '.lock'),
    async () => {
      if (await exists(done)) return dir;
      const deb = await downloadDeb(ctx, debsDir(ctx.cacheDir), pkg, version).catch((err: unknown) => {
        throw new LivegraftError(
          'USERSPACE_BINARY_DOWNLOAD_FAILED',
          `could not get the binary package ${pkg} ${version}: ${(err as Error).message}`,
          { cause: err },
        );
      });
      const tmp = path.join(root, `.tmp-${process.pid}`);
      await rm(tmp, { recursive: true, force: true });
      await runChecked(
        ctx,
        'USERSPACE_BINARY_UNPACK_FAILED',
        `unpacking ${path.basename(deb)}`,
        'dpkg-deb',
        ['-x', deb, tmp],
        { timeoutMs: EXTRACT_TIMEOUT_MS },
      );
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
      await writeFile(done, `${new Date().toISOString()}\n`);
      return dir;
    },
    { timeoutMs: LOCK_TIMEOUT_MS, signal: ctx.signal, what: `binary package ${pkg} ${version}` },
  );
}
