import { copyFile, mkdir, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { assertConfigMatches, compareKconfig, type ConfigComparison } from './config.ts';
import { EXTRACT_TIMEOUT_MS, extractDebs } from './headers.ts';
import { runChecked, type StepContext } from './run.ts';

const OLDDEFCONFIG_TIMEOUT_MS = 10 * 60_000;
/** ~30 s on 2 cores; objtool and resolve_btfids are built here too. */
const MODULES_PREPARE_TIMEOUT_MS = 60 * 60_000;
const SINGLE_OBJECT_TIMEOUT_MS = 15 * 60_000;

/** The translation unit compiled to prove a prepared tree works. */
export const TRIAL_OBJECT = 'security/keys/keyctl_pkey.o';

/** The compiler every Debian 6.1 config names. */
export const KERNEL_CC = 'gcc-12';

/**
 * Make arguments for any build in a prepared source tree. Everything else that
 * Debian's build sets (KERNELRELEASE, the package id in package.h, the compile.h
 * user and host) is in the tree's .kernelvariables, which the top Makefile includes.
 */
export const SOURCE_MAKE_ARGS: readonly string[] = [`CC=${KERNEL_CC}`];

/** Environment for make: C locale, and no make flags leaking in from a parent make. */
export function makeEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'ARCH', 'CROSS_COMPILE', 'KBUILD_OUTPUT', 'O', 'M'])
    delete env[k];
  return env;
}

export interface KernelVariables {
  release: string;
  debianVersion: string;
}

/**
 * What Debian's build writes next to its objects (the headers package ships the
 * same file): the release string, the compiler, and what its packaging adds
 * (LINUX_PACKAGE_ID " Debian <version>"; compile.h's debian-kernel@lists.debian.org).
 */
export function kernelVariables(v: KernelVariables): string {
  return [
    'override ARCH = x86',
    `override KERNELRELEASE = ${v.release}`,
    `CC = ${KERNEL_CC}`,
    'DISTRIBUTION_OFFICIAL_BUILD = 1',
    'DISTRIBUTOR = Debian',
    `DISTRIBUTION_VERSION = ${v.debianVersion}`,
    'export KBUILD_BUILD_USER = debian-kernel',
    'export KBUILD_BUILD_HOST = lists.debian.org',
    '',
  ].join('\n');
}

export interface PrepareSourceInput extends KernelVariables {
  /** The build's cache directory; the tree becomes <dir>/source (a link to the real tree). */
  dir: string;
  sourceDeb: string;
  series: string;
  /** The headers package's .config: Debian's build config (the shipped one plus build salt and signing options). */
  buildConfig: string;
  /** /boot/config-<release> from the image package. */
  shippedConfig: string;
  /** The headers package's Module.symvers and include/generated (for utsversion.h). */
  headersDir: string;
}

export interface PreparedSource {
  sourceDir: string;
  config: ConfigComparison;
  unpackMs: number;
  prepareMs: number;
  trialCompileMs: number;
}

/** The stable name under which callers find the tree. */
export function sourceLink(dir: string): string {
  return path.join(dir, 'source');
}

/**
 * Removes trees left by interrupted preparations: every source-* that the
 * source link does not point at and whose preparing process is gone.
 */
async function removeOrphans(dir: string): Promise<void> {
  const current = await readlink(sourceLink(dir)).catch(() => undefined);
  for (const name of await readdir(dir)) {
    const m = /^source-(\d+)-(\d+)$/.exec(name);
    if (m === null || name === current) continue;
    const pid = Number(m[2]);
    let alive = pid === process.pid;
    if (!alive) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    if (!alive) await rm(path.join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Unpacks linux-source at the build's Debian version, configures it exactly as
 * Debian did and runs modules_prepare. The tree is prepared under its final
 * name (kbuild records absolute paths of its host tools, so a renamed tree
 * would rebuild them) and published by atomically pointing <dir>/source at it.
 */
export async function prepareSource(ctx: StepContext, input: PrepareSourceInput): Promise<PreparedSource> {
  const { dir } = input;
  await removeOrphans(dir);
  const name = `source-${Date.now()}-${process.pid}`;
  const tree = path.join(dir, name);
  const debRoot = path.join(dir, `source-deb.tmp-${process.pid}`);
  const mk = (what: string, args: string[], timeoutMs: number): ReturnType<typeof runChecked> =>
    runChecked(ctx, 'KERNEL_SOURCE_PREPARE_FAILED', what, 'make', ['-C', tree, ...SOURCE_MAKE_ARGS, ...args], {
      env: makeEnv(),
      timeoutMs,
    });
  let published = false;
  try {
    let t = Date.now();
    ctx.log(`unpacking ${path.basename(input.sourceDeb)}`);
    await rm(debRoot, { recursive: true, force: true });
    await extractDebs(ctx, [input.sourceDeb], debRoot);
    const tarball = path.join(debRoot, 'usr', 'src', `linux-source-${input.series}.tar.xz`);
    await stat(tarball).catch((cause: unknown) => {
      throw new LivegraftError(
        'KERNEL_UNPACK_FAILED',
        `${path.basename(input.sourceDeb)} has no ${path.basename(tarball)}`,
        { cause },
      );
    });
    await mkdir(tree);
    await runChecked(
      ctx,
      'KERNEL_UNPACK_FAILED',
      'unpacking the kernel source tarball',
      'tar',
      ['-xJf', tarball, '-C', tree, '--strip-components=1'],
      {
        timeoutMs: EXTRACT_TIMEOUT_MS,
      },
    );
    await rm(debRoot, { recursive: true, force: true });
    const unpackMs = Date.now() - t;

    t = Date.now();
    await copyFile(input.buildConfig, path.join(tree, '.config'));
    await writeFile(path.join(tree, '.kernelvariables'), kernelVariables(input));
    ctx.log('make olddefconfig');
    await mk('configuring the kernel source', ['olddefconfig'], OLDDEFCONFIG_TIMEOUT_MS);
    const config = compareKconfig(
      await readFile(input.shippedConfig, 'utf8'),
      await readFile(path.join(tree, '.config'), 'utf8'),
    );
    assertConfigMatches(input.release, config);
    ctx.log('make -j2 modules_prepare');
    await mk('preparing the kernel source (modules_prepare)', ['-j2', 'modules_prepare'], MODULES_PREPARE_TIMEOUT_MS);
    await copyFile(path.join(input.headersDir, 'Module.symvers'), path.join(tree, 'Module.symvers'));
    const utsversion = path.join(tree, 'include', 'generated', 'utsversion.h');
    if ((await stat(utsversion).catch(() => undefined)) === undefined)
      await copyFile(path.join(input.headersDir, 'include', 'generated', 'utsversion.h'), utsversion).catch(
        () => undefined,
      );
    const utsrelease = await readFile(path.join(tree, 'include', 'generated', 'utsrelease.h'), 'utf8');
    if (!utsrelease.includes(`"${input.release}"`))
      throw new LivegraftError(
        'KERNEL_SOURCE_PREPARE_FAILED',
        `the prepared tree's utsrelease.h does not name ${input.release}: ${utsrelease.trim()}`,
      );
    const prepareMs = Date.now() - t;

    t = Date.now();
    ctx.log(`trial compile of ${TRIAL_OBJECT}`);
    await mk(`compiling ${TRIAL_OBJECT} in the prepared tree`, [TRIAL_OBJECT], SINGLE_OBJECT_TIMEOUT_MS);
    const trialCompileMs = Date.now() - t;
    const obj = path.join(tree, TRIAL_OBJECT);
    await rm(obj, { force: true });
    await rm(path.join(path.dirname(obj), `.${path.basename(obj)}.cmd`), { force: true });

    const tmpLink = path.join(dir, `source.tmp-${process.pid}`);
    await rm(tmpLink, { force: true });
    await symlink(name, tmpLink);
    const old = await stat(sourceLink(dir)).catch(() => undefined);
    const oldTarget = await readlink(sourceLink(dir)).catch(() => undefined);
    if (old !== undefined && oldTarget === undefined) await rm(sourceLink(dir), { recursive: true, force: true });
    await rename(tmpLink, sourceLink(dir));
    published = true;
    if (oldTarget !== undefined && oldTarget !== name)
      await rm(path.join(dir, oldTarget), { recursive: true, force: true });
    return { sourceDir: tree, config, unpackMs, prepareMs, trialCompileMs };
  } finally {
    await rm(debRoot, { recursive: true, force: true });
    if (!published) await rm(tree, { recursive: true, force: true });
  }
}
