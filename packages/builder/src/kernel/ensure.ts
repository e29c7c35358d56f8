import { mkdir, readFile, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { writeFilesAtomically } from '../atomic-write.ts';
import { spawnRunner, type ProcessRunner } from '../runner.ts';
import { downloadDeb, imagePackage, resolveDebianVersion, resolveKbuildVersion } from './archive.ts';
import type { ConfigComparison } from './config.ts';
import { buildHelloModule, extractDebs, headersSubdir, readVermagic, relocateHeaders } from './headers.ts';
import { dumpKallsyms, readKallsymsFile, type KallsymsEntry } from './kallsyms.ts';
import { withFileLock } from './lock.ts';
import { abiOf, buildDir, debsDir, defaultCacheDir, seriesOf } from './paths.ts';
import type { StepContext } from './run.ts';
import { prepareSource, sourceLink } from './source.ts';
import { TOOLS, requireTools, type Requirement } from './tools.ts';
import { extractVmlinux } from './vmlinux.ts';

export type KernelPart = 'headers' | 'source' | 'image' | 'kallsyms';
export const ALL_PARTS: readonly KernelPart[] = ['image', 'headers', 'source', 'kallsyms'];

/** One Debian kernel build's artefacts in the cache. Paths of parts not prepared are where they would be. */
export interface KernelBuild {
  release: string;
  debianVersion: string;
  upstreamVersion: string;
  dir: string;
  /** kbuild tree from the headers packages: `make -C headersDir M=<dir> modules`. */
  headersDir: string;
  /** linux-source at the same Debian version, configured and modules_prepare'd: `make -C sourceDir CC=gcc-12 <dir>/<file>.o`. */
  sourceDir: string;
  /** /boot/config-<release> from the image package. */
  configFile: string;
  /** lib/modules/<release> from the image package. */
  modulesDir: string;
  vmlinuz: string;
  /** The ELF decompressed from vmlinuz (stripped: no symbols; pair it with kallsyms). */
  vmlinux: string;
  /** /proc/kallsyms of this kernel booted with nokaslr, no modules loaded. */
  kallsyms: string;
  /** The parts prepared so far (a superset of those asked for). */
  parts: KernelPart[];
  stamp: PreparedStamp;
}

export interface PartStamp {
  preparedAt: string;
  ms: number;
  [k: string]: unknown;
}

/** prepared.json: written last, after every output of a part is in place. */
export interface PreparedStamp {
  release: string;
  debianVersion: string;
  upstreamVersion: string;
  parts: Partial<Record<KernelPart, PartStamp>>;
}

export interface EnsureOptions {
  cacheDir?: string;
  run?: ProcessRunner;
  log?: (line: string) => void;
  signal?: AbortSignal;
  parts?: KernelPart[];
}

/** How long a second caller waits for another process preparing the same build. */
const PREPARE_LOCK_TIMEOUT_MS = 3 * 60 * 60_000;
const SOURCE_LOCK_TIMEOUT_MS = 2 * 60 * 60_000;

const NEEDS: Record<KernelPart, KernelPart[]> = {
  image: [],
  headers: [],
  source: ['image', 'headers'],
  kallsyms: ['image'],
};

const PART_TOOLS: Record<KernelPart, Requirement[]> = {
  image: [TOOLS.apt, TOOLS.dpkgDeb],
  headers: [TOOLS.apt, TOOLS.dpkgDeb, TOOLS.make, TOOLS.gcc],
  source: [
    TOOLS.apt,
    TOOLS.dpkgDeb,
    TOOLS.tar,
    TOOLS.xz,
    TOOLS.make,
    TOOLS.gcc,
    TOOLS.flex,
    TOOLS.bison,
    TOOLS.bc,
    TOOLS.pahole,
    TOOLS.libelf,
    TOOLS.libssl,
  ],
  kallsyms: [TOOLS.qemu, TOOLS.busybox],
};

/** The requested parts plus what they depend on, in preparation order. */
export function expandParts(parts: readonly KernelPart[]): KernelPart[] {
  const want = new Set<KernelPart>();
  const add = (p: KernelPart): void => {
    if (want.has(p)) return;
    want.add(p);
    NEEDS[p].forEach(add);
  };
  parts.forEach(add);
  return ALL_PARTS.filter((p) => want.has(p));
}

function layout(dir: string, release: string) {
  return {
    headersRoot: path.join(dir, 'headers'),
    headersDir: path.join(dir, 'headers', headersSubdir(release)),
    imageRoot: path.join(dir, 'image'),
    configFile: path.join(dir, 'image', 'boot', `config-${release}`),
    vmlinuz: path.join(dir, 'image', 'boot', `vmlinuz-${release}`),
    modulesDir: path.join(dir, 'image', 'lib', 'modules', release),
    vmlinux: path.join(dir, 'vmlinux'),
    kallsyms: path.join(dir, 'kallsyms'),
    stamp: path.join(dir, 'prepared.json'),
  };
}

async function readStamp(file: string): Promise<PreparedStamp | undefined> {
  try {
    const s = JSON.parse(await readFile(file, 'utf8')) as PreparedStamp;
    return typeof s.debianVersion === 'string' && typeof s.parts === 'object' ? s : undefined;
  } catch {
    return undefined;
  }
}

const exists = async (p: string): Promise<boolean> => (await stat(p).catch(() => undefined)) !== undefined;

/** Files each part leaves; a stamp whose files are gone is not trusted. */
async function partIntact(part: KernelPart, l: ReturnType<typeof layout>, dir: string): Promise<boolean> {
  switch (part) {
    case 'image':
      return (await exists(l.vmlinuz)) && (await exists(l.configFile)) && (await exists(l.vmlinux));
    case 'headers':
      return exists(path.join(l.headersDir, 'Makefile'));
    case 'source':
      return exists(path.join(sourceLink(dir), 'include', 'generated', 'utsrelease.h'));
    case 'kallsyms':
      return exists(l.kallsyms);
  }
}

async function toBuild(release: string, dir: string, stamp: PreparedStamp): Promise<KernelBuild> {
  const l = layout(dir, release);
  const sourceDir = await realpath(sourceLink(dir)).catch(() => sourceLink(dir));
  return {
    release,
    debianVersion: stamp.debianVersion,
    upstreamVersion: stamp.upstreamVersion,
    dir,
    headersDir: l.headersDir,
    sourceDir,
    configFile: l.configFile,
    modulesDir: l.modulesDir,
    vmlinuz: l.vmlinuz,
    vmlinux: l.vmlinux,
    kallsyms: l.kallsyms,
    parts: ALL_PARTS.filter((p) => stamp.parts[p] !== undefined),
    stamp,
  };
}

/** Some shipped .ko under modulesDir (breadth-first, bounded), for its vermagic. */
async function anyShippedModule(modulesDir: string): Promise<string | undefined> {
  const queue = [path.join(modulesDir, 'kernel')];
  for (let seen = 0; queue.length > 0 && seen < 2000; seen++) {
    const d = queue.shift() ?? '';
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    const ko = entries.find((e) => e.isFile() && e.name.endsWith('.ko'));
    if (ko !== undefined) return path.join(d, ko.name);
    for (const e of entries) if (e.isDirectory()) queue.push(path.join(d, e.name));
  }
  return undefined;
}

interface PartInput {
  ctx: StepContext;
  release: string;
  dir: string;
  debs: string;
  stamp: PreparedStamp;
}

async function prepareImage({
  ctx,
  release,
  dir,
  debs,
  stamp,
}: PartInput): Promise<Omit<PartStamp, 'preparedAt' | 'ms'>> {
  const l = layout(dir, release);
  const deb = await downloadDeb(ctx, debs, imagePackage(release), stamp.debianVersion);
  const tmp = `${l.imageRoot}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await rm(l.vmlinux, { force: true });
  try {
    ctx.log(`unpacking ${path.basename(deb)}`);
    await extractDebs(ctx, [deb], tmp);
    for (const f of [`boot/vmlinuz-${release}`, `boot/config-${release}`, `lib/modules/${release}`])
      if (!(await exists(path.join(tmp, f))))
        throw new LivegraftError('KERNEL_UNPACK_FAILED', `${path.basename(deb)} has no ${f}`);
    ctx.log('extracting vmlinux from vmlinuz');
    const compression = await extractVmlinux(ctx, path.join(tmp, 'boot', `vmlinuz-${release}`), `${l.vmlinux}.new`);
    await rm(l.imageRoot, { recursive: true, force: true });
    await rename(tmp, l.imageRoot);
    await rename(`${l.vmlinux}.new`, l.vmlinux);
    return { compression };
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await rm(`${l.vmlinux}.new`, { force: true });
  }
}

async function prepareHeaders({
  ctx,
  release,
  dir,
  debs,
  stamp,
}: PartInput): Promise<Omit<PartStamp, 'preparedAt' | 'ms'>> {
  const l = layout(dir, release);
  const abi = abiOf(release);
  const files: string[] = [];
  for (const p of [`linux-headers-${release}`, `linux-headers-${abi}-common`])
    files.push(await downloadDeb(ctx, debs, p, stamp.debianVersion));
  const series = seriesOf(release);
  const kbuild = await resolveKbuildVersion(ctx.run, series, stamp.debianVersion);
  if (kbuild !== stamp.debianVersion)
    ctx.log(`linux-kbuild-${series} ${stamp.debianVersion} is no longer in the archive; using ${kbuild} (same series)`);
  files.push(await downloadDeb(ctx, debs, `linux-kbuild-${series}`, kbuild));
  const tmp = `${l.headersRoot}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  try {
    ctx.log('unpacking the headers packages');
    await extractDebs(ctx, files, tmp);
    await relocateHeaders(tmp, release, abi);
    ctx.log('building a trivial module against the headers');
    const vermagic = await buildHelloModule(
      ctx,
      path.join(tmp, headersSubdir(release)),
      path.join(dir, `hello.tmp-${process.pid}`),
    );
    let shippedVermagic: string | undefined;
    const shipped = stamp.parts.image !== undefined ? await anyShippedModule(l.modulesDir) : undefined;
    if (shipped !== undefined) {
      shippedVermagic = await readVermagic(shipped);
      if (shippedVermagic !== vermagic)
        throw new LivegraftError(
          'KERNEL_HEADERS_BROKEN',
          `a module built against the ${release} headers has vermagic "${vermagic}", the shipped modules "${shippedVermagic}"`,
        );
    }
    await rm(l.headersRoot, { recursive: true, force: true });
    await rename(tmp, l.headersRoot);
    return { vermagic, shippedVermagic };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function prepareSourcePart({
  ctx,
  release,
  dir,
  debs,
  stamp,
}: PartInput): Promise<Omit<PartStamp, 'preparedAt' | 'ms'>> {
  const l = layout(dir, release);
  const series = seriesOf(release);
  const deb = await downloadDeb(ctx, debs, `linux-source-${series}`, stamp.debianVersion);
  const r = await prepareSource(ctx, {
    dir,
    release,
    debianVersion: stamp.debianVersion,
    series,
    sourceDeb: deb,
    buildConfig: path.join(l.headersDir, '.config'),
    shippedConfig: l.configFile,
    headersDir: l.headersDir,
  });
  const config: ConfigComparison = r.config;
  return {
    tree: path.basename(r.sourceDir),
    unpackMs: r.unpackMs,
    prepareMs: r.prepareMs,
    trialCompileMs: r.trialCompileMs,
    configAllowedDifferences: config.allowed,
  };
}

async function prepareKallsyms({ ctx, release, dir }: PartInput): Promise<Omit<PartStamp, 'preparedAt' | 'ms'>> {
  const l = layout(dir, release);
  const r = await dumpKallsyms(ctx, l.vmlinuz, l.kallsyms);
  return { lines: r.lines, bootMs: r.ms };
}

const PREPARE: Record<KernelPart, (i: PartInput) => Promise<Omit<PartStamp, 'preparedAt' | 'ms'>>> = {
  image: prepareImage,
  headers: prepareHeaders,
  source: prepareSourcePart,
  kallsyms: prepareKallsyms,
};

async function missingParts(
  parts: readonly KernelPart[],
  stamp: PreparedStamp | undefined,
  dir: string,
  release: string,
): Promise<KernelPart[]> {
  const l = layout(dir, release);
  const out: KernelPart[] = [];
  for (const p of parts) if (stamp?.parts[p] === undefined || !(await partIntact(p, l, dir))) out.push(p);
  return out;
}

/**
 * Gets and prepares everything needed to build live patches for `release`
 * (a Debian kernel such as 6.1.0-50-amd64) into the cache, once. Installs
 * nothing system-wide. Later calls find prepared.json and return at once.
 */
export async function ensureKernelBuild(release: string, opts: EnsureOptions = {}): Promise<KernelBuild> {
  abiOf(release);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const run = opts.run ?? spawnRunner;
  const ctx: StepContext = { run, log: opts.log ?? (() => undefined), signal: opts.signal };
  const parts = expandParts(opts.parts ?? ALL_PARTS);
  const dir = buildDir(cacheDir, release);
  const l = layout(dir, release);

  const cached = await readStamp(l.stamp);
  if (cached !== undefined && (await missingParts(parts, cached, dir, release)).length === 0)
    return toBuild(release, dir, cached);

  await requireTools([...new Set(parts.flatMap((p) => PART_TOOLS[p]))]);
  await mkdir(dir, { recursive: true });
  return withFileLock(
    `${dir}.lock`,
    async () => {
      let stamp = (await readStamp(l.stamp)) ?? { release, ...(await resolveDebianVersion(release, run)), parts: {} };
      for (const part of await missingParts(parts, stamp, dir, release)) {
        if (opts.signal?.aborted === true) throw new LivegraftError('CANCELLED', `preparing ${release} was cancelled`);
        const started = Date.now();
        ctx.log(`${release}: preparing ${part}`);
        const { [part]: _dropped, ...kept } = stamp.parts;
        stamp = { ...stamp, parts: kept };
        await writeFilesAtomically([{ file: l.stamp, data: `${JSON.stringify(stamp, null, 2)}\n` }]);
        const extra = await PREPARE[part]({ ctx, release, dir, debs: debsDir(cacheDir), stamp });
        const ms = Date.now() - started;
        stamp = { ...stamp, parts: { ...stamp.parts, [part]: { preparedAt: new Date().toISOString(), ms, ...extra } } };
        await writeFilesAtomically([{ file: l.stamp, data: `${JSON.stringify(stamp, null, 2)}\n` }]);
        ctx.log(`${release}: ${part} ready in ${(ms / 1000).toFixed(1)} s`);
      }
      return toBuild(release, dir, stamp);
    },
    { timeoutMs: PREPARE_LOCK_TIMEOUT_MS, signal: opts.signal, what: `the preparation of ${release}` },
  );
}

/** Runs `fn` with exclusive use of the build's source tree (compiles write into it). */
export async function withSourceTreeLock<T>(
  build: KernelBuild,
  fn: () => Promise<T>,
  opts: { signal?: AbortSignal } = {},
): Promise<T> {
  return withFileLock(path.join(build.dir, 'source.lock'), fn, {
    timeoutMs: SOURCE_LOCK_TIMEOUT_MS,
    signal: opts.signal,
    what: `the source tree of ${build.release}`,
  });
}

/** /proc/kallsyms of the build, in file order. */
export async function readKallsyms(build: KernelBuild): Promise<KallsymsEntry[]> {
  return readKallsymsFile(build.kallsyms);
}
