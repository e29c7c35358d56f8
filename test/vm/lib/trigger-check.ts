/**
 * Boots one Debian kernel release in QEMU and runs every catalogue trigger in it.
 *
 *   npx tsx test/vm/lib/trigger-check.ts <release> [CVE...]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultCacheDir } from '../../../packages/builder/src/kernel/index.ts';
import { Guest } from './guest.ts';
import { fetchKernelImage } from './kernel.ts';
import { buildTriggerInitramfs, catalogueDirs, runTriggers } from './triggers.ts';

const CATALOGUE = fileURLToPath(new URL('../../../catalogue', import.meta.url));

async function main(): Promise<void> {
  const [release, ...only] = process.argv.slice(2);
  if (!release) {
    console.error('usage: trigger-check.ts <kernel release, e.g. 6.1.0-50-amd64> [CVE...]');
    process.exit(2);
  }
  const cache = defaultCacheDir();
  const kernel = await fetchKernelImage(cache, release, join(cache, 'debs'));
  const fixDirs = catalogueDirs(CATALOGUE, only);
  const workDir = join(cache, 'trigger-check', release);
  mkdirSync(workDir, { recursive: true });
  const { initrd, qemuArgs } = await buildTriggerInitramfs({ kernel, fixDirs, workDir });
  const disk = join(workDir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  const guest = new Guest({
    vmlinuz: kernel.vmlinuz,
    initrd,
    disk,
    qemuArgs,
    logFile: join(workDir, 'console.log'),
  });
  await guest.boot();
  try {
    console.log(`${release}: ${await guest.sh('uname -v')}`);
    const results = await runTriggers(guest, fixDirs);
    const w = Math.max(...[...results.keys()].map((k) => k.length));
    for (const [id, verdict] of results) console.log(`${id.padEnd(w)}  ${verdict}`);
    const splats = await guest.run('dmesg | grep -E "WARNING:|BUG:|Oops|refcount_t|underflow"');
    console.log(splats.code === 0 ? `kernel complaints:\n${splats.out}` : 'kernel log: no WARNING/BUG/Oops');
  } finally {
    await guest.shutdown();
  }
}

await main();
