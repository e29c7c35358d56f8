import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

/** A program (or a header file) the kernel preparation needs, with the Debian package that ships it. */
export interface Requirement {
  /** A program name looked up on PATH, or an absolute file path. */
  name: string;
  debianPackage: string;
}

export const TOOLS = {
  apt: { name: 'apt-get', debianPackage: 'apt' },
  aptCache: { name: 'apt-cache', debianPackage: 'apt' },
  dpkgDeb: { name: 'dpkg-deb', debianPackage: 'dpkg' },
  tar: { name: 'tar', debianPackage: 'tar' },
  gcc: { name: 'gcc-12', debianPackage: 'gcc-12' },
  make: { name: 'make', debianPackage: 'make' },
  flex: { name: 'flex', debianPackage: 'flex' },
  bison: { name: 'bison', debianPackage: 'bison' },
  bc: { name: 'bc', debianPackage: 'bc' },
  pahole: { name: 'pahole', debianPackage: 'dwarves' },
  xz: { name: 'xz', debianPackage: 'xz-utils' },
  gzip: { name: 'gzip', debianPackage: 'gzip' },
  zstd: { name: 'zstd', debianPackage: 'zstd' },
  lz4: { name: 'lz4', debianPackage: 'lz4' },
  qemu: { name: 'qemu-system-x86_64', debianPackage: 'qemu-system-x86' },
  busybox: { name: 'busybox', debianPackage: 'busybox-static' },
  libelf: { name: '/usr/include/gelf.h', debianPackage: 'libelf-dev' },
  libssl: { name: '/usr/include/openssl/ssl.h', debianPackage: 'libssl-dev' },
} as const satisfies Record<string, Requirement>;

/** Full path of `name` on PATH (or `name` itself when absolute and present), else undefined. */
export async function findProgram(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const candidates = path.isAbsolute(name)
    ? [name]
    : (env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin')
        .split(':')
        .filter((d) => d !== '')
        .map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      await access(c, path.isAbsolute(name) ? constants.R_OK : constants.X_OK);
      return c;
    } catch {
      // try the next directory
    }
  }
  return undefined;
}

/** Throws TOOLCHAIN_MISSING naming every missing program and the Debian packages to install. */
export async function requireTools(
  needed: readonly Requirement[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const missing: Requirement[] = [];
  for (const r of needed) if ((await findProgram(r.name, env)) === undefined) missing.push(r);
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((m) => m.debianPackage))];
  throw new LivegraftError(
    'TOOLCHAIN_MISSING',
    `missing ${missing.map((m) => m.name).join(', ')}; install them with: apt-get install ${pkgs.join(' ')}`,
    { details: { missing: missing.map((m) => ({ name: m.name, debianPackage: m.debianPackage })), packages: pkgs } },
  );
}
