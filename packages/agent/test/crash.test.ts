import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { moduleNameFor } from '@livegraft/protocol';
import { TestHost } from './helpers/cli.ts';
import { FakeKernel } from './helpers/fake-kernel.ts';
import { FakeServer, REGISTRATION_KEY } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';
import { enrolledHost } from './helpers/enrolled.ts';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, 'helpers/child-agent.ts');
/** A child needs a moment to start (tsx); beyond this something is wrong. */
const CHILD_START_TIMEOUT_MS = 30_000;

function childEnv(host: TestHost, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'] ?? '',
    ...host.kernel.env,
    LIVEGRAFT_CONFIG: host.configPath,
    LIVEGRAFT_STATE_DIR: host.stateDir,
    LG_FAKE_KERNEL: dirname(host.kernel.sys),
    ...extra,
  };
}

/** Starts `livegraft-agent <args>` as its own process and resolves once it hangs at `step`. */
async function startHanging(host: TestHost, args: string[], step: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    cwd: join(here, '..'),
    env: childEnv(host, { LG_HANG_AT: step }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`child never reached ${step}: ${out} ${err}`)),
      CHILD_START_TIMEOUT_MS,
    );
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes(`HANG ${step}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited ${code} before ${step}: ${out} ${err}`));
    });
  });
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await gone;
}

describe('SIGKILL of a real agent process at each journal step, then a restart', () => {
  let server: FakeServer;
  let host: TestHost;
  beforeEach(async () => {
    ({ server, host } = await enrolledHost());
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    assert.equal((await host.cli(['update'])).code, 0);
    server.publish(host.kernel.id, makePatch(host.kernel, 2));
  });
  afterEach(async () => {
    await server.stop();
    host.cleanup();
  });

  const l = (level: number): string => moduleNameFor(host.kernel.id, level);
  const reattach = (): FakeKernel => (host.kernel = new FakeKernel(dirname(host.kernel.sys), { attach: true }));
  const journalStep = (): string | undefined => {
    try {
      return (JSON.parse(readFileSync(join(host.stateDir, 'journal.json'), 'utf8')) as { step: string }).step;
    } catch {
      return undefined;
    }
  };

  for (const step of ['intent', 'loaded', 'transitioned', 'old-removed'] as const) {
    it(`killed at "${step}": the restart reconciles with the kernel, level 2 ends up applied exactly once`, async () => {
      const child = await startHanging(host, ['update'], step);
      await kill9(child);
      assert.equal(journalStep(), step);
      assert.ok(existsSync(join(host.stateDir, 'agent.lock')), 'the dead process left its lock');
      const k = reattach();
      // The restart (boot, as the boot unit would) takes over the stale lock and settles the journal.
      const b = await host.cli(['boot']);
      assert.equal(b.code, 0, b.stderr);
      assert.equal(journalStep(), undefined);
      if (step === 'intent') {
        assert.equal(k.moduleLoaded(l(2)), false, 'the load never happened, and reconcile does not do it');
        assert.equal(k.patchEnabled(l(1)), true);
        const u = await host.cli(['update']);
        assert.equal(u.code, 0, u.stderr);
      }
      assert.equal(k.patchEnabled(l(2)), true);
      assert.equal(k.moduleLoaded(l(1)), false, 'the replaced module was removed');
      const loadsOfL2 = k.calls.filter((c) => c.op === 'load' && c.arg.includes(l(2))).length;
      // The child's load is not in this process's call log; the restart itself never loads level 2 again.
      assert.equal(loadsOfL2, step === 'intent' ? 1 : 0);
      const s = JSON.parse((await host.cli(['status', '--json'])).stdout) as { appliedLevel: number; journal: unknown };
      assert.equal(s.appliedLevel, 2);
      assert.equal(s.journal, null);
      assert.equal((await host.cli(['update'])).stdout, 'up to date at level 2\n');
    });
  }

  it('two processes at once: the second exits BUSY (5) while the first holds the lock', async () => {
    const first = await startHanging(host, ['update'], 'loaded');
    try {
      const second = spawnSync(process.execPath, ['--import', 'tsx', CHILD, 'update'], {
        cwd: join(here, '..'),
        env: childEnv(host),
        encoding: 'utf8',
      });
      assert.equal(second.status, 5, second.stderr);
      assert.match(second.stderr, /^error \[BUSY\]: another livegraft-agent \(pid \d+\) holds/);
      reattach();
      const inProcess = await host.cli(['rollback', '--to', '1']);
      assert.equal(inProcess.code, 5, inProcess.stderr);
    } finally {
      await kill9(first);
    }
    reattach();
    assert.equal((await host.cli(['boot'])).code, 0);
    assert.equal(host.kernel.patchEnabled(l(2)), true);
  });
});

describe('a full disk (a real, tiny tmpfs as the state directory)', () => {
  const canMount = process.getuid?.() === 0;
  let server: FakeServer;
  let host: TestHost;
  let mounted = false;

  beforeEach(async () => {
    server = await new FakeServer().start();
    host = new TestHost();
    mkdirSync(host.stateDir, { recursive: true });
    if (canMount) {
      mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', host.stateDir]).status === 0;
    }
  });
  afterEach(async () => {
    await server.stop();
    if (mounted) spawnSync('umount', [host.stateDir]);
    host.cleanup();
  });

  it('ENOSPC: nothing loaded, the trusted metadata is the previous copy, level 1 stays; freeing space recovers', async (ctx) => {
    if (!mounted) {
      ctx.skip('needs root to mount a tmpfs (the injected ENOSPC case in delivery.test.ts covers the logic)');
      return;
    }
    assert.equal((await host.cli(['enroll', '--insecure', '--server', server.url, '--key', REGISTRATION_KEY])).code, 0);
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    assert.equal((await host.cli(['update'])).code, 0);
    const metaDir = join(host.stateDir, 'tuf/metadata');
    const before = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'].map((f) =>
      readFileSync(join(metaDir, f), 'utf8'),
    );
    // Fill the filesystem to the last byte.
    const filler = join(host.stateDir, 'filler');
    const chunk = Buffer.alloc(4096, 0x5a);
    for (;;) {
      try {
        writeFileSync(filler, chunk, { flag: 'a' });
      } catch {
        break;
      }
    }
    for (let n = 1024; n >= 1; n = Math.floor(n / 2)) {
      try {
        writeFileSync(filler, Buffer.alloc(n), { flag: 'a' });
      } catch {
        // smaller next
      }
    }
    server.publish(host.kernel.id, makePatch(host.kernel, 2));
    const loads = host.kernel.loads().length;
    const expectDiskFull = async (): Promise<void> => {
      const r = await host.cli(['update', '--json']);
      assert.equal(r.code, 4, r.stdout);
      assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'DISK_FULL', r.stdout + r.stderr);
      assert.equal(host.kernel.loads().length, loads, 'no load attempted');
    };
    // Not even the lock fits.
    await expectDiskFull();
    assert.equal(existsSync(join(host.stateDir, 'agent.lock')), false, 'no empty lock left behind');
    // One page free: the lock fits, the staging copy of the trusted metadata does not.
    truncateSync(filler, statSync(filler).size - 4096);
    await expectDiskFull();
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)), true);
    const afterFull = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'].map((f) =>
      readFileSync(join(metaDir, f), 'utf8'),
    );
    assert.deepEqual(afterFull, before, 'trusted metadata untouched');
    rmSync(filler);
    const ok = await host.cli(['update']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 2)), true);
  });
});
