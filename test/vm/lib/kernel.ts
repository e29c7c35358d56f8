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

/**
 * Downloads linux-image-<release>-unsigned with apt and unpacks it into the
 * cache (once), then builds its modules.dep so the initramfs can pick modules.
 */
export async function fetchGuestKernel(cacheDir: string): Promise<GuestKernel> {
  const release = await resolveKernelRelease();
  const headersDir = `/usr/src/linux-headers-${release}`;
  if (!existsSync(join(headersDir, 'Makefile'))) {
    throw new Error(`kernel headers ${headersDir} missing: install linux-headers-amd64 (scripts/setup.sh does)`);
  }
  const dir = join(cacheDir, `kernel-${release}`);
  const root = join(dir, 'root');
  const modulesDir = join(root, 'lib', 'modules', release);
  const vmlinuz = join(root, 'boot', `vmlinuz-${release}`);
  if (!existsSync(join(modulesDir, 'modules.dep'))) {
    const tmp = `${dir}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await execOk('apt-get', ['download', `linux-image-${release}-unsigned`], { cwd: tmp, timeoutMs: 600_000 });
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download linux-image-${release}-unsigned produced no .deb`);
    await execOk('dpkg-deb', ['-x', join(tmp, deb), join(tmp, 'root')], { timeoutMs: 300_000 });
    rmSync(join(tmp, deb));
    await execOk('depmod', ['-b', join(tmp, 'root'), release]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  if (!existsSync(vmlinuz)) throw new Error(`no kernel image at ${vmlinuz}`);
  return { release, vmlinuz, modulesDir, headersDir };
}
