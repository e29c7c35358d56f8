import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { runChecked, type StepContext } from '../kernel/run.ts';
import { glibcRecipe } from './glibc-recipe.ts';

const BUILDFLAGS_TIMEOUT_MS = 60_000;
const CONFIGURE_TIMEOUT_MS = 30 * 60_000;
const COMPILE_TIMEOUT_MS = 10 * 60_000;
/** debian/rules of a package is small; anything larger is not one. */
const MAX_RULES_BYTES = 1024 * 1024;

/**
 * How one Debian source package is configured and how one of its
 * translation units is compiled, the way debian/rules does it, so that the
 * rebuilt objects match the shipped library.
 */
export interface Recipe {
  sourcePackage: string;
  /** The environment Debian's build runs the compiler in (flags included). */
  env(ctx: StepContext, tree: string): Promise<NodeJS.ProcessEnv>;
  /** Configures the tree once (cached); returns the build directory. */
  configure(ctx: StepContext, tree: string, env: NodeJS.ProcessEnv): Promise<string>;
  /** Compiles `file` (a path in the tree) for the library `soname`; returns the object's path. */
  compile(
    ctx: StepContext,
    tree: string,
    buildDir: string,
    file: string,
    soname: string,
    env: NodeJS.ProcessEnv,
  ): Promise<string>;
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

export async function readDebianRules(tree: string): Promise<string> {
  const file = path.join(tree, 'debian', 'rules');
  const st = await stat(file).catch(() => undefined);
  if (st === undefined || st.size > MAX_RULES_BYTES)
    throw new LivegraftError('USERSPACE_SOURCE_INVALID', `${file} is missing or too large`);
  return readFile(file, 'utf8');
}

/** The value of `export DEB_BUILD_MAINT_OPTIONS = ...` in debian/rules ('' when it sets none). */
export function maintOptions(rulesText: string): string {
  const m = /^\s*(?:export\s+)?DEB_BUILD_MAINT_OPTIONS\s*:?=\s*(.*)$/m.exec(rulesText);
  return (m?.[1] ?? '').trim();
}

/**
 * The compiler flags Debian's build of this package uses: dpkg-buildflags
 * with the package's DEB_BUILD_MAINT_OPTIONS, run in the tree (as
 * dpkg-buildpackage does, which decides the -ffile-prefix-map).
 */
export async function debianBuildEnv(ctx: StepContext, tree: string): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LC_ALL: 'C',
    DEB_BUILD_MAINT_OPTIONS: maintOptions(await readDebianRules(tree)),
  };
  for (const flag of ['CFLAGS', 'CPPFLAGS', 'CXXFLAGS', 'LDFLAGS']) {
    const res = await runChecked(
      ctx,
      'USERSPACE_BUILDFLAGS_FAILED',
      'reading Debian build flags',
      'dpkg-buildflags',
      ['--get', flag],
      {
        cwd: tree,
        env,
        timeoutMs: BUILDFLAGS_TIMEOUT_MS,
      },
    );
    env[flag] = res.stdout.trim();
  }
  return env;
}

/** `CONFARGS = ...` and `CONFARGS += ...` of debian/rules, in order (conditional additions for amd64 included). */
export function opensslConfigureArgs(rulesText: string): string[] {
  const args: string[] = [];
  for (const m of rulesText.matchAll(/^\s*CONFARGS\s*(\+?=)\s*(.*)$/gm)) {
    if (m[1] === '=') args.length = 0;
    args.push(
      ...(m[2] ?? '')
        .trim()
        .split(/\s+/)
        .filter((a) => a !== ''),
    );
  }
  return args.map((a) => a.replace('$(DEB_HOST_MULTIARCH)', 'x86_64-linux-gnu'));
}

/** The make target that compiles `file` into the shared build of `libName` (libcrypto, libssl). */
export function opensslObjectTarget(makefile: string, file: string, libName: string): string | undefined {
  const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^(\\S*/${libName}-shlib-[^\\s/]+\\.o): \\.\\./${escaped}\\s*$`, 'm');
  return re.exec(makefile)?.[1];
}

/** OpenSSL 3.0 as Debian 12 builds it: the shared build in build_shared. */
export const opensslRecipe: Recipe = {
  sourcePackage: 'openssl',
  env: debianBuildEnv,
  async configure(ctx, tree, env) {
    const buildDir = path.join(tree, 'build_shared');
    const done = path.join(buildDir, '.livegraft-configured');
    if (await exists(done)) return buildDir;
    const args = opensslConfigureArgs(await readDebianRules(tree));
    if (args.length === 0)
      throw new LivegraftError('USERSPACE_SOURCE_INVALID', 'debian/rules of openssl sets no CONFARGS');
    await rm(buildDir, { recursive: true, force: true });
    await mkdir(buildDir, { recursive: true });
    ctx.log(`configuring openssl: Configure shared ${args.join(' ')} debian-amd64`);
    await runChecked(
      ctx,
      'USERSPACE_CONFIGURE_FAILED',
      'configuring openssl',
      'perl',
      ['../Configure', 'shared', ...args, 'debian-amd64'],
      {
        cwd: buildDir,
        env: { ...env, HASHBANGPERL: '/usr/bin/perl' },
        timeoutMs: CONFIGURE_TIMEOUT_MS,
      },
    );
    await writeFile(done, `${new Date().toISOString()}\n`);
    return buildDir;
  },
  async compile(ctx, _tree, buildDir, file, soname, env) {
    const libName = soname.replace(/\.so(\.[0-9]+)*$/, '');
    const makefile = await readFile(path.join(buildDir, 'Makefile'), 'utf8');
    const target = opensslObjectTarget(makefile, file, libName);
    if (target === undefined)
      throw new LivegraftError(
        'USERSPACE_UNIT_NOT_BUILT',
        `${file} is not compiled into ${soname} in this openssl build`,
      );
    await rm(path.join(buildDir, target), { force: true });
    await runChecked(ctx, 'USERSPACE_COMPILE_FAILED', `compiling ${file}`, 'make', [target], {
      cwd: buildDir,
      env,
      timeoutMs: COMPILE_TIMEOUT_MS,
    });
    return path.join(buildDir, target);
  },
};

/** A function, not a constant: glibc-recipe.ts imports this module, so its value is not there at load time. */
const recipes = (): readonly Recipe[] => [opensslRecipe, glibcRecipe];

export function recipeFor(sourcePackage: string): Recipe {
  const r = recipes().find((x) => x.sourcePackage === sourcePackage);
  if (r === undefined)
    throw new LivegraftError(
      'USERSPACE_PACKAGE_UNSUPPORTED',
      `no rebuild recipe for the source package ${sourcePackage}; supported: ${recipes()
        .map((x) => x.sourcePackage)
        .join(', ')}`,
    );
  return r;
}
