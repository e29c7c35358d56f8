import { mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PatchManifest } from '@livegraft/protocol';
import { defaultCacheDir, pickTestRelease } from '../../../packages/builder/src/kernel/index.ts';
import { spawnRunner } from '../../../packages/builder/src/runner.ts';
import { execOk } from './exec.ts';
import { Front } from './front.ts';
import { Guest } from './guest.ts';
import { fetchKernelImage, type KernelImage } from './kernel.ts';
import { startServer, type RunningServer } from './server.ts';
import { Started } from './started.ts';
import { buildTriggerInitramfs, catalogueDirs } from './triggers.ts';
import { packagedAgentFiles } from './agent-runtime.ts';
import { CACHE, REPO, publish, type BuiltPatch } from './world.ts';

const NODE = process.execPath;
export const AGENT_BUNDLE = join(REPO, 'packages/agent/dist/livegraft-agent.mjs');
export const CATALOGUE = join(REPO, 'catalogue');
/** Drivers the guest needs besides what the triggers autoload: NIC, state disk, ext4. */
export const GUEST_MODULES = ['e1000', 'virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];
/** Building the whole catalogue compiles ~20 units twice on two cores. */
const BUILD_TIMEOUT_MS = 60 * 60_000;

export const FACTORY_INIT = `#!/bin/sh
# /init of the patch-factory guest: drivers through modprobe (so later
# autoloads work the same way), the agent's state disk, boot re-apply, network.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LIVEGRAFT_STATE_DIR=/var/lib/livegraft
export LIVEGRAFT_CONFIG=/var/lib/livegraft/agent.json
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in ${GUEST_MODULES.join(' ')}; do modprobe $m; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /var/lib/livegraft
mount -t ext4 /dev/vda /var/lib/livegraft || echo "LIVEGRAFT_GUEST_DISK_FAILED" > /dev/kmsg
if [ -f "$LIVEGRAFT_CONFIG" ]; then
  livegraft-agent boot > /tmp/boot.log 2>&1
  echo $? > /tmp/boot.rc
fi
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
fi
export PS1=''
stty -echo
echo LIVEGRAFT_GUEST_READY
# The console shell reads its own open of the console, which no command
# shares (see test/vm/lib/init.sh for why), and is restarted if it ever ends:
# PID 1 must not exit, or the kernel panics and the run loses the guest. Each
# restart is logged to the kernel log and announced to the test driver.
while :; do
  sh < /dev/console > /dev/console 2>&1
  echo "livegraft-test: console shell exited ($?), restarting it" > /dev/kmsg
  stty -echo < /dev/console 2>/dev/null
  echo LIVEGRAFT_GUEST_SHELL_RESTARTED > /dev/console
  sleep 0.2
done
`;

export interface FactoryWorld {
  release: string;
  kernel: KernelImage;
  server: RunningServer;
  front: Front;
  guest: Guest;
  levels: Map<number, BuiltPatch>;
  fixDirs: string[];
  dir: string;
  /** Wall time of each `livegraft build`, by level. */
  buildMs: Map<number, number>;
  close(): Promise<void>;
}

/** Runs the real `livegraft build` from patches for a Debian release. */
export async function buildFromPatches(
  release: string,
  level: number,
  fixDirs: string[],
  out: string,
): Promise<BuiltPatch> {
  mkdirSync(out, { recursive: true });
  const r = await execOk(
    NODE,
    [
      '--import',
      'tsx',
      join(REPO, 'packages/cli/src/bin.ts'),
      'build',
      '--kernel',
      release,
      '--level',
      String(level),
      '--out',
      out,
      '--json',
      ...fixDirs,
    ],
    { cwd: REPO, timeoutMs: BUILD_TIMEOUT_MS },
  );
  const manifest = JSON.parse(r.stdout) as PatchManifest;
  return { manifest, manifestPath: join(out, `${manifest.name}.json`), modulePath: join(out, manifest.module.file) };
}

/**
 * Boots a host of one exact kernel build: the packaged agent on Debian 12's
 * nodejs (as the Debian package installs it), the given fixes' triggers with
 * the modules they need, a state disk, and the network to the server's port.
 */
export async function bootCatalogueGuest(
  dir: string,
  kernel: KernelImage,
  serverPort: number,
  fixDirs: string[],
): Promise<Guest> {
  const wrapper = join(dir, 'livegraft-agent');
  writeFileSync(wrapper, '#!/bin/sh\nexec /usr/bin/livegraft-agent "$@"\n', { mode: 0o755 });
  const agentFiles = Object.fromEntries(
    Object.entries(await packagedAgentFiles(join(dir, 'package'))).map(([g, h]) => [`/${g}`, h]),
  );
  const { initrd, qemuArgs } = await buildTriggerInitramfs({
    kernel,
    fixDirs,
    workDir: join(dir, 'initramfs'),
    extraModules: GUEST_MODULES,
    init: FACTORY_INIT,
    files: { ...agentFiles, '/bin/livegraft-agent': wrapper },
  });
  const disk = join(dir, 'state.img');
  await execOk('mkfs.ext4', ['-q', '-F', disk, '64M']);
  const guest = new Guest({
    vmlinuz: kernel.vmlinuz,
    initrd,
    disk,
    serverPort,
    qemuArgs,
    logFile: join(dir, 'console.log'),
  });
  await guest.boot();
  return guest;
}

/**
 * The oldest reachable Debian 6.1 build (6.1.0-50 while the archive has it),
 * the catalogue built for it from upstream patches as the given levels, the
 * real server with every level uploaded (only `publish` published), and a
 * booted guest with Node, the agent, the triggers and a modprobe tree.
 */
export async function createFactoryWorld(
  name: string,
  levels: Record<number, string[]>,
  publishLevel: number,
): Promise<FactoryWorld> {
  if (!existsSync(AGENT_BUNDLE)) throw new Error(`${AGENT_BUNDLE} missing: run npm run build first`);
  const release = await pickTestRelease(spawnRunner);
  // The builder's own cache, so a kernel build it prepared is reused.
  const cache = defaultCacheDir();
  const kernel = await fetchKernelImage(cache, release, join(cache, 'debs'));
  const dir = join(CACHE, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  const built = new Map<number, BuiltPatch>();
  const buildMs = new Map<number, number>();
  for (const [level, ids] of Object.entries(levels)) {
    const t = Date.now();
    built.set(
      Number(level),
      await buildFromPatches(
        release,
        Number(level),
        ids.map((id) => join(CATALOGUE, id)),
        join(dir, 'patches'),
      ),
    );
    buildMs.set(Number(level), Date.now() - t);
  }

  const started = new Started();
  return started.orStop(async () => {
    const server = await startServer(join(dir, 'server'), ['--push-spread', '0']);
    started.add(() => server.stop());
    const top = built.get(publishLevel);
    if (!top) throw new Error(`level ${publishLevel} was not built`);
    for (const [level, p] of [...built].sort((a, b) => a[0] - b[0]))
      if (level <= publishLevel) await publish(server, p);
    const front = new Front(server.port);
    await front.start();
    started.add(() => front.stop());

    const fixDirs = catalogueDirs(CATALOGUE);
    const guest = await bootCatalogueGuest(dir, kernel, front.port, fixDirs);
    const world: FactoryWorld = {
      release,
      kernel,
      server,
      front,
      guest,
      levels: built,
      fixDirs,
      dir,
      buildMs,
      async close() {
        await guest.shutdown();
        await front.stop();
        await server.stop();
      },
    };
    return world;
  });
}
