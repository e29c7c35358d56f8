import { mkdir, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError, modinfoValue, parseModinfo } from '@livegraft/protocol';
import { runChecked, type StepContext } from './run.ts';

const HELLO_BUILD_TIMEOUT_MS = 5 * 60_000;
export const EXTRACT_TIMEOUT_MS = 20 * 60_000;

/** Where the headers package puts its tree, relative to the extraction root. */
export function headersSubdir(release: string): string {
  return path.join('usr', 'src', `linux-headers-${release}`);
}

/** `dpkg-deb -x` of each .deb into one root. */
export async function extractDebs(ctx: StepContext, debs: readonly string[], root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const deb of debs)
    await runChecked(ctx, 'KERNEL_UNPACK_FAILED', `unpacking ${path.basename(deb)}`, 'dpkg-deb', ['-x', deb, root], {
      timeoutMs: EXTRACT_TIMEOUT_MS,
    });
}

/**
 * Makes the extracted headers usable where they are: the flavour's Makefile
 * includes the common tree by absolute /usr/src path, and lib/modules/<release>/{build,source}
 * point at /usr/src. Both become relative so the tree works from the cache (and survives a rename).
 */
export async function relocateHeaders(root: string, release: string, abi: string): Promise<void> {
  const dir = path.join(root, headersSubdir(release));
  const makefile = path.join(dir, 'Makefile');
  const text = await readFile(makefile, 'utf8');
  const absolute = /^include \/usr\/src\/(linux-headers-[^/\s]+)\/Makefile$/m;
  const m = absolute.exec(text);
  if (m === null && !text.includes('$(lastword $(MAKEFILE_LIST))'))
    throw new LivegraftError(
      'KERNEL_HEADERS_UNEXPECTED',
      `${makefile} does not include the common headers tree as expected:\n${text}`,
    );
  if (m !== null) {
    const common = m[1] ?? `linux-headers-${abi}-common`;
    // MAKEFILE_LIST's last word is this Makefile while it is being read, wherever make was started.
    const relative = `include $(dir $(realpath $(lastword $(MAKEFILE_LIST))))../${common}/Makefile`;
    await writeFile(makefile, text.replace(absolute, relative));
  }
  const modulesDir = path.join(root, 'lib', 'modules', release);
  for (const link of await readdir(modulesDir).catch(() => [] as string[])) {
    const at = path.join(modulesDir, link);
    const target = await readlink(at).catch(() => undefined);
    if (target === undefined || !target.startsWith('/usr/')) continue;
    await rm(at);
    await symlink(path.relative(modulesDir, path.join(root, target)), at);
  }
}

/** vermagic of a .ko file. */
export async function readVermagic(ko: string): Promise<string | undefined> {
  return modinfoValue(parseModinfo(await readFile(ko)), 'vermagic');
}

const HELLO_C = `#include <linux/module.h>
static int __init lg_hello_init(void) { return 0; }
static void __exit lg_hello_exit(void) { }
module_init(lg_hello_init);
module_exit(lg_hello_exit);
MODULE_LICENSE("GPL");
`;

/** Builds a trivial module against `headersDir` in `work` and returns its vermagic. */
export async function buildHelloModule(ctx: StepContext, headersDir: string, work: string): Promise<string> {
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    await writeFile(path.join(work, 'lg_hello.c'), HELLO_C);
    await writeFile(path.join(work, 'Kbuild'), 'obj-m := lg_hello.o\n');
    await runChecked(
      ctx,
      'KERNEL_HEADERS_BROKEN',
      `building a trivial module against ${headersDir}`,
      'make',
      ['-C', headersDir, `M=${work}`, 'modules'],
      { timeoutMs: HELLO_BUILD_TIMEOUT_MS },
    );
    const vermagic = await readVermagic(path.join(work, 'lg_hello.ko'));
    if (vermagic === undefined)
      throw new LivegraftError('KERNEL_HEADERS_BROKEN', 'the trivial module built has no vermagic');
    return vermagic;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
