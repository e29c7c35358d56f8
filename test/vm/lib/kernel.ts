import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execOk } from './exec.ts';

export interface GuestKernel {
  /** uname -r of the guest kernel, e.g. 6.1.0-56-amd64. */
  release: string;
  vmlinuz: string;
  /** /lib/modules/<release> of the extracted image. */
  modulesDir: string;
  /** kbuild tree the fixes are compiled against. */
  headersDir: string;
}

/**
 * The kernel to test on is whatever Debian's `linux-headers-amd64` metapackage
 * currently points at: never a hard-coded version.
 */
export async function resolveKernelRelease(): Promise<string> {
  const { stdout } = await execOk('apt-cache', ['depends', 'linux-headers-amd64']);
  const m = /Depends:\s*linux-headers-(\S+)/.exec(stdout);
  if (!m?.[1]) throw new Error(`cannot find the kernel release behind linux-headers-amd64:\n${stdout}`);
  return m[1];
}

/** A kernel image and its modules, without the kbuild tree. */
export type KernelImage = Omit<GuestKernel, 'headersDir'>;

/**
 * Downloads linux-image-<release>-unsigned with apt (or takes the .deb from
 * `debDir` when it is already there) and unpacks it into the cache (once),
 * then builds its modules.dep so the initramfs can pick modules.
 */
export async function fetchKernelImage(cacheDir: string, release: string, debDir?: string): Promise<KernelImage> {
  if (!/^[0-9][0-9a-z.+~-]{2,60}$/.test(release)) throw new Error(`not a kernel release: ${release}`);
  const dir = join(cacheDir, `kernel-${release}`);
  const root = join(dir, 'root');
  const modulesDir = join(root, 'lib', 'modules', release);
  const vmlinuz = join(root, 'boot', `vmlinuz-${release}`);
  if (!existsSync(join(modulesDir, 'modules.dep'))) {
    const tmp = `${dir}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const pkg = `linux-image-${release}-unsigned`;
    const cached =
      debDir && existsSync(debDir)
        ? readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'))
        : undefined;
    let deb: string;
    if (debDir && cached) {
      deb = join(debDir, cached);
    } else {
      await execOk('apt-get', ['download', pkg], { cwd: tmp, timeoutMs: 600_000 });
      const got = readdirSync(tmp).find((f) => f.endsWith('.deb'));
      if (!got) throw new Error(`apt-get download ${pkg} produced no .deb`);
      deb = join(tmp, got);
    }
    await execOk('dpkg-deb', ['-x', deb, join(tmp, 'root')], { timeoutMs: 300_000 });
    if (!cached) rmSync(deb);
    await execOk('depmod', ['-b', join(tmp, 'root'), release]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  if (!existsSync(vmlinuz)) throw new Error(`no kernel image at ${vmlinuz}`);
  return { release, vmlinuz, modulesDir };
}

/**
 * The kernel behind Debian's `linux-headers-amd64` metapackage, with its
 * installed kbuild tree (see fetchKernelImage for the download).
 */
export async function fetchGuestKernel(cacheDir: string): Promise<GuestKernel> {
  const release = await resolveKernelRelease();
  const headersDir = `/usr/src/linux-headers-${release}`;
  if (!existsSync(join(headersDir, 'Makefile'))) {
    throw new Error(`kernel headers ${headersDir} missing: install linux-headers-amd64 (scripts/setup.sh does)`);
  }
  return { ...(await fetchKernelImage(cacheDir, release)), headersDir };
}
