import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationGuest } from '../src/validate/guest.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const examplesDir = path.join(repoRoot, 'examples', 'fixes');

/** Installed kernel headers (Debian layout), or undefined with the reason tests are skipped. */
export function installedHeaders(): { dir?: string; skip?: string } {
  const root = '/usr/src';
  const dirs = existsSync(root)
    ? readdirSync(root)
        .filter((d) => /^linux-headers-.*-amd64$/.test(d))
        .map((d) => path.join(root, d))
        .filter((d) => existsSync(path.join(d, 'Makefile')) && existsSync(path.join(d, 'include', 'generated')))
    : [];
  const dir = dirs[0];
  if (dir === undefined)
    return { skip: 'no kernel headers in /usr/src/linux-headers-*-amd64; install linux-headers-$(uname -r)' };
  return { dir };
}

/** A scratch directory removed by the returned cleanup. */
export async function scratch(prefix = 'lg-builder-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function copyExample(name: string, dest: string): Promise<string> {
  const to = path.join(dest, name);
  await cp(path.join(examplesDir, name), to, { recursive: true });
  return to;
}

/** Writes a fix directory from a spec object and a map of file contents. */
export async function writeFix(dir: string, spec: unknown, files: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'fix.json'), JSON.stringify(spec, null, 2));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

/** A fake, configured headers tree: enough for identity and validation, not for compiling. */
export async function fakeHeaders(
  dir: string,
  files: Record<string, string> = {
    'utsrelease.h': '#define UTS_RELEASE "9.9.9-test"\n',
    'compile.h': [
      '#define UTS_MACHINE\t\t"x86_64"',
      '#define LINUX_COMPILE_BY\t"builder"',
      '#define LINUX_COMPILE_HOST\t"example.org"',
      '#define LINUX_COMPILER\t\t"gcc (Test) 1.2.3, GNU ld 2.40"',
      '',
    ].join('\n'),
    'utsversion.h': '#define UTS_VERSION "#1 SMP PREEMPT_DYNAMIC Test 9.9.9-1 (2030-01-01)"\n',
  },
): Promise<string> {
  await mkdir(path.join(dir, 'include', 'generated'), { recursive: true });
  await writeFile(path.join(dir, 'Makefile'), '# fake\n');
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, 'include', 'generated', name), text);
  return dir;
}

export async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/**
 * Puts a shell script named qemu-system-x86_64 first on PATH (in `dir`/bin), so
 * the code under test starts it instead of QEMU. Returns what puts PATH back.
 */
export async function fakeQemuOnPath(dir: string, script: string): Promise<() => void> {
  const bin = path.join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  await writeFile(path.join(bin, 'qemu-system-x86_64'), `#!/bin/sh\n${script}`, { mode: 0o755 });
  const oldPath = process.env.PATH;
  process.env.PATH = `${bin}:${oldPath ?? ''}`;
  return () => {
    process.env.PATH = oldPath;
  };
}

/** A validation guest for a fake QEMU on PATH (fakeQemuOnPath): no kernel, no image, one minute to live. */
export function fakeQemuGuest(): ValidationGuest {
  return new ValidationGuest({ vmlinuz: 'x', initrd: 'x', memoryMb: 64, qemuArgs: [], deadline: Date.now() + 60_000 });
}
