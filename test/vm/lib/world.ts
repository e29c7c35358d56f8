import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { PatchManifest } from '@livegraft/protocol';
import { execOk } from './exec.ts';
import { fetchGuestKernel, type GuestKernel } from './kernel.ts';
import { buildInitramfs } from './initramfs.ts';
import { Guest } from './guest.ts';
import { startServer, type RunningServer } from './server.ts';
import { Started } from './started.ts';
import { Front } from './front.ts';
import { packagedAgentFiles } from './agent-runtime.ts';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const CACHE = join(REPO, '.cache', 'vm');
const NODE = process.execPath;
const AGENT_BUNDLE = join(REPO, 'packages/agent/dist/livegraft-agent.mjs');
const FIXES = join(REPO, 'examples/fixes');
/** Boot argument the level-1 demo fix redacts from /proc/cmdline. */
export const DEMO_SECRET = 'livegraft.demo_secret=hunter2';
/** Kernel modules the guest's /init loads: NIC, virtio disk, ext2 through ext4. */
const GUEST_MODULES = ['e1000', 'virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];

export interface BuiltPatch {
  manifest: PatchManifest;
  manifestPath: string;
  modulePath: string;
}

async function tsx(entry: string, args: string[], timeoutMs = 600_000): Promise<string> {
  const r = await execOk(NODE, ['--import', 'tsx', join(REPO, entry), ...args], { cwd: REPO, timeoutMs });
  return r.stdout;
}

/** Runs `livegraft build` (the real builder, the real kbuild). */
export async function buildLevel(
  kernel: GuestKernel,
  level: number,
  fixes: string[],
  out: string,
  extra: string[] = [],
): Promise<BuiltPatch> {
  mkdirSync(out, { recursive: true });
  const stdout = await tsx('packages/cli/src/bin.ts', [
    'build',
    '--kernel',
    kernel.headersDir,
    '--level',
    String(level),
    '--out',
    out,
    '--json',
    ...extra,
    ...fixes.map((f) => (f.includes('/') ? join(REPO, f) : join(FIXES, f))),
  ]);
  const manifest = JSON.parse(stdout) as PatchManifest;
  return {
    manifest,
    manifestPath: join(out, `${manifest.name}.json`),
    modulePath: join(out, manifest.module.file),
  };
}

/** Builds the test-only module whose kernel thread blocks transitions (test/vm/fixtures/blocker). */
async function buildBlocker(kernel: GuestKernel, out: string): Promise<string> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const f of ['Kbuild', 'livegraft_test_blocker.c'])
    copyFileSync(join(REPO, 'test/vm/fixtures/blocker', f), join(out, f));
  await execOk('make', ['-C', kernel.headersDir, `M=${out}`, 'modules'], { timeoutMs: 300_000 });
  return join(out, 'livegraft_test_blocker.ko');
}

export async function publish(server: RunningServer, patch: BuiltPatch): Promise<void> {
  await tsx('packages/cli/src/bin.ts', [
    'publish',
    '--server',
    server.url,
    '--token',
    server.adminToken,
    patch.manifestPath,
  ]);
}

export interface WorldOptions {
  /** Extra kernel command-line words. */
  append?: string;
  /** More levels to build (not published): level -> fixes (example names or repo-relative dirs). */
  extraLevels?: Record<number, string[]>;
  /** Extra patch-server flags. */
  serverArgs?: string[];
  /** Build the test-only kernel-thread blocker module into the guest at /fixtures/livegraft_test_blocker.ko. */
  blocker?: boolean;
}

export interface World {
  kernel: GuestKernel;
  server: RunningServer;
  /** What the guest talks to: a pass-through in front of the server that tests can make lie. */
  front: Front;
  level1: BuiltPatch;
  level2: BuiltPatch;
  extra: Map<number, BuiltPatch>;
  /** Guest paths of manifests that must be refused. */
  bad: { otherKernel: string; corrupt: string; notLivepatch: string };
  guest: Guest;
  dir: string;
  close(): Promise<void>;
}

/**
 * Everything the VM scenarios need: the current Debian kernel, the example
 * fixes built against its headers at levels 1 and 2, a module built for
 * another kernel build, a corrupted one, the real server on loopback, and a
 * booted guest holding Node 24 and the bundled agent.
 */
export async function createWorld(name: string, opts: WorldOptions = {}): Promise<World> {
  if (!existsSync(AGENT_BUNDLE)) throw new Error(`${AGENT_BUNDLE} missing: run npm run build first`);
  const kernel = await fetchGuestKernel(CACHE);
  const dir = join(CACHE, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  const level1 = await buildLevel(kernel, 1, ['cmdline-redact'], join(dir, 'patches'));
  const level2 = await buildLevel(kernel, 2, ['cmdline-redact', 'loadavg-lastpid'], join(dir, 'patches'));

  const extra = new Map<number, BuiltPatch>();
  for (const [level, fixes] of Object.entries(opts.extraLevels ?? {})) {
    extra.set(Number(level), await buildLevel(kernel, Number(level), fixes, join(dir, 'patches')));
  }

  // The same fix built for another build of the same release: a different /proc/version.
  const otherVersion = join(dir, 'other-proc-version');
  writeFileSync(
    otherVersion,
    `Linux version ${kernel.release} (builder@elsewhere) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 0.0.0-1 (2020-01-01)\n`,
  );
  const other = await buildLevel(kernel, 1, ['cmdline-redact'], join(dir, 'other'), ['--proc-version', otherVersion]);

  // A level-1 module with a flipped byte in the middle, beside its original manifest.
  const corruptDir = join(dir, 'corrupt');
  mkdirSync(corruptDir, { recursive: true });
  copyFileSync(level1.manifestPath, join(corruptDir, `${level1.manifest.name}.json`));
  const bytes = readFileSync(level1.modulePath);
  const mid = Math.floor(bytes.length / 2);
  bytes[mid] = (bytes[mid] ?? 0) ^ 0xff;
  writeFileSync(join(corruptDir, level1.manifest.module.file), bytes);

  // An ordinary (non-livepatch) module under a manifest whose hash matches it.
  const plainDir = join(dir, 'not-livepatch');
  mkdirSync(plainDir, { recursive: true });
  const plain = readFileSync(join(kernel.modulesDir, 'kernel/lib/crc16.ko'));
  writeFileSync(join(plainDir, level1.manifest.module.file), plain);
  const plainManifest: PatchManifest = {
    ...level1.manifest,
    module: { ...level1.manifest.module, sha256: createHash('sha256').update(plain).digest('hex'), size: plain.length },
  };
  writeFileSync(join(plainDir, `${level1.manifest.name}.json`), JSON.stringify(plainManifest, null, 2));

  const started = new Started();
  return started.orStop(async () => {
    const server = await startServer(join(dir, 'server'), opts.serverArgs ?? []);
    started.add(() => server.stop());
    await publish(server, level1);
    const front = new Front(server.port);
    await front.start();
    started.add(() => front.stop());

    const init = readFileSync(fileURLToPath(new URL('./init.sh', import.meta.url)), 'utf8');
    const wrapper = join(dir, 'livegraft-agent');
    writeFileSync(wrapper, '#!/bin/sh\nexec /usr/bin/livegraft-agent "$@"\n', { mode: 0o755 });
    const files: Record<string, string> = {
      // The agent as the Debian package installs it, on Debian 12's nodejs.
      ...(await packagedAgentFiles(join(dir, 'package'))),
      'bin/livegraft-agent': wrapper,
      [`fixtures/other-kernel/${other.manifest.name}.json`]: other.manifestPath,
      [`fixtures/other-kernel/${other.manifest.module.file}`]: other.modulePath,
      [`fixtures/corrupt/${level1.manifest.name}.json`]: join(corruptDir, `${level1.manifest.name}.json`),
      [`fixtures/corrupt/${level1.manifest.module.file}`]: join(corruptDir, level1.manifest.module.file),
      [`fixtures/not-livepatch/${level1.manifest.name}.json`]: join(plainDir, `${level1.manifest.name}.json`),
      [`fixtures/not-livepatch/${level1.manifest.module.file}`]: join(plainDir, level1.manifest.module.file),
    };
    if (opts.blocker) files['fixtures/livegraft_test_blocker.ko'] = await buildBlocker(kernel, join(dir, 'blocker'));
    for (const p of extra.values()) {
      files[`fixtures/levels/${p.manifest.name}.json`] = p.manifestPath;
      files[`fixtures/levels/${p.manifest.module.file}`] = p.modulePath;
    }
    const etc = join(dir, 'etc');
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\ndemo:x:1000:1000:demo:/tmp:/bin/sh\n');
    writeFileSync(join(etc, 'group'), 'root:x:0:\ndemo:x:1000:\n');
    files['etc/passwd'] = join(etc, 'passwd');
    files['etc/group'] = join(etc, 'group');
    const initrd = await buildInitramfs({
      modulesDir: kernel.modulesDir,
      modules: GUEST_MODULES,
      init,
      files,
      executables: {},
      out: join(dir, 'initrd.cpio'),
    });
    const disk = join(dir, 'state.img');
    await execOk('mkfs.ext4', ['-q', '-F', disk, '64M']);
    const guest = new Guest({
      vmlinuz: kernel.vmlinuz,
      initrd: initrd.path,
      disk,
      serverPort: front.port,
      logFile: join(dir, 'console.log'),
      append: [DEMO_SECRET, opts.append ?? ''].join(' ').trim(),
    });
    started.add(() => guest.shutdown());
    await guest.boot();
    const world: World = {
      kernel,
      server,
      front,
      level1,
      level2,
      extra,
      bad: {
        otherKernel: `/fixtures/other-kernel/${other.manifest.name}.json`,
        corrupt: `/fixtures/corrupt/${level1.manifest.name}.json`,
        notLivepatch: `/fixtures/not-livepatch/${level1.manifest.name}.json`,
      },
      guest,
      dir,
      async close() {
        await world.guest.shutdown();
        await front.stop();
        await server.stop();
      },
    };
    return world;
  });
}
