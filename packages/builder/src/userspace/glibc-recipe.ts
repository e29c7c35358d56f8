import { mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { runChecked } from '../kernel/run.ts';
import { readDebianRules, type Recipe } from './recipes.ts';

const CONFIGURE_TIMEOUT_MS = 30 * 60_000;
/** The first compile of a unit also generates glibc's headers (about a minute on 2 cores). */
const COMPILE_TIMEOUT_MS = 30 * 60_000;
/** Where Debian's amd64 libc6 puts its libraries (configparms of the libc pass). */
const CONFIGPARMS_DIRS = ['slibdir = /lib/x86_64-linux-gnu', 'libdir = /usr/lib/x86_64-linux-gnu', 'rtlddir = /lib64'];

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/** A make variable of debian/rules (`NAME = value` or `NAME ?= value`), with $(CURDIR) put in and $(call ...) dropped. */
export function rulesVariable(rulesText: string, name: string, curdir: string): string | undefined {
  const m = new RegExp(`^${name}\\s*\\??=\\s*(.*)$`, 'm').exec(rulesText);
  if (m === null) return undefined;
  return (m[1] ?? '')
    .replace(/\$\(CURDIR\)/g, curdir)
    .replace(/\$\(call [^)]*\)/g, '')
    .trim();
}

/** The Debian version at the top of debian/changelog. */
async function changelogVersion(tree: string): Promise<string> {
  const first = (await readFile(path.join(tree, 'debian', 'changelog'), 'utf8')).split('\n', 1)[0] ?? '';
  const m = /^\S+ \(([^)]+)\)/.exec(first);
  if (m === null)
    throw new LivegraftError('USERSPACE_SOURCE_INVALID', 'debian/changelog does not start with a version');
  return m[1] ?? '';
}

/**
 * glibc as Debian 12 builds libc6 on amd64 (debian/rules.d/build.mk, the
 * `libc` pass): its own CFLAGS (debian/rules unsets dpkg-buildflags'),
 * configparms, and configure with the same options. Only the translation
 * units asked for are compiled (`make -C <subdir> <objdir>/<subdir>/<unit>.os`),
 * after the generated headers they need.
 */
export const glibcRecipe: Recipe = {
  sourcePackage: 'glibc',
  env(_ctx, _tree) {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
    for (const v of ['CFLAGS', 'CPPFLAGS', 'CXXFLAGS', 'LDFLAGS', 'MAKEFLAGS']) delete env[v];
    return Promise.resolve(env);
  },
  async configure(ctx, tree, env) {
    const buildDir = path.join(tree, 'build-tree', 'amd64-libc');
    const done = path.join(buildDir, '.livegraft-configured');
    if (await exists(done)) return buildDir;
    const rules = await readDebianRules(tree);
    const cflags = rulesVariable(rules, 'HOST_CFLAGS', tree);
    const gccVersion = rulesVariable(rules, 'DEB_GCC_VERSION', tree) ?? '';
    if (cflags === undefined)
      throw new LivegraftError('USERSPACE_SOURCE_INVALID', 'debian/rules of glibc sets no HOST_CFLAGS');
    if (!(await exists('/usr/include/linux/version.h')))
      throw new LivegraftError('TOOLCHAIN_MISSING', 'glibc needs the kernel headers: apt-get install linux-libc-dev');
    // Debian's debian/include: the kernel headers glibc is configured with.
    const headers = path.join(tree, 'build-tree', 'kernel-headers');
    await rm(headers, { recursive: true, force: true });
    await mkdir(headers, { recursive: true });
    await symlink('/usr/include/linux', path.join(headers, 'linux'));
    await symlink('/usr/include/x86_64-linux-gnu/asm', path.join(headers, 'asm'));
    await symlink('/usr/include/asm-generic', path.join(headers, 'asm-generic'));
    await rm(buildDir, { recursive: true, force: true });
    await mkdir(buildDir, { recursive: true });
    const buildCflags = rulesVariable(rules, 'BUILD_CFLAGS', tree) ?? '-O2 -g';
    await writeFile(
      path.join(buildDir, 'configparms'),
      [
        'BUILD_CC = gcc',
        `CFLAGS = ${cflags}`,
        `ASFLAGS = ${cflags}`,
        `BUILD_CFLAGS = ${buildCflags}`,
        'LDFLAGS = ',
        'BASH := /bin/bash',
        'KSH := /bin/bash',
        'SHELL := /bin/bash',
        'LIBGD = no',
        ...CONFIGPARMS_DIRS,
        '',
      ].join('\n'),
    );
    const version = await changelogVersion(tree);
    const args = [
      '--host=x86_64-linux-gnu',
      '--build=x86_64-linux-gnu',
      '--prefix=/usr',
      '--enable-add-ons=libidn,',
      // The libc pass uses --with-selinux, which only nscd links against: no code of libc.so changes.
      '--without-selinux',
      '--disable-crypt',
      '--enable-stackguard-randomization',
      '--enable-stack-protector=strong',
      `--with-pkgversion=Debian GLIBC ${version}`,
      '--with-bugurl=http://www.debian.org/Bugs/',
      `--with-headers=${headers}`,
      '--enable-kernel=3.2',
      '--enable-multi-arch',
    ];
    ctx.log(`configuring glibc ${version}: configure ${args.join(' ')}`);
    await runChecked(
      ctx,
      'USERSPACE_CONFIGURE_FAILED',
      'configuring glibc (it needs gawk and bison)',
      path.join(tree, 'configure'),
      args,
      {
        cwd: buildDir,
        env: {
          ...env,
          CC: `x86_64-linux-gnu-gcc${gccVersion} -Wl,--hash-style=both`,
          CXX: ':',
          AUTOCONF: 'false',
          MAKEINFO: ':',
        },
        timeoutMs: CONFIGURE_TIMEOUT_MS,
      },
    );
    await writeFile(done, `${new Date().toISOString()}\n`);
    return buildDir;
  },
  async compile(ctx, tree, buildDir, file, soname, env) {
    if (soname !== 'libc.so.6')
      throw new LivegraftError('USERSPACE_UNIT_NOT_BUILT', `the glibc recipe rebuilds libc.so.6, not ${soname}`);
    const parts = file.split('/');
    const subdir = parts[0] ?? '';
    if (parts.length < 2 || !(await exists(path.join(tree, subdir, 'Makefile'))))
      throw new LivegraftError('USERSPACE_UNIT_NOT_BUILT', `${file} is not in a glibc subdirectory with a Makefile`);
    const object = path.join(buildDir, subdir, `${path.basename(file, '.c')}.os`);
    await rm(object, { force: true });
    await runChecked(
      ctx,
      'USERSPACE_COMPILE_FAILED',
      `compiling ${file}`,
      'make',
      ['-r', '-C', path.join(tree, subdir), `objdir=${buildDir}`, `subdir=${subdir}`, object],
      { env, timeoutMs: COMPILE_TIMEOUT_MS },
    );
    if (!(await exists(object)))
      throw new LivegraftError(
        'USERSPACE_UNIT_NOT_BUILT',
        `make built no ${path.relative(buildDir, object)} for ${file}`,
      );
    return object;
  },
};
