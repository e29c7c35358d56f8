// Real CVE fixes live in running processes, end to end: the builder makes
// user-space levels from Debian's source packages and the catalogue's
// upstream patches; the agent's user-space manager applies them through the
// native helper to a long-lived multi-threaded process running the
// extracted vulnerable library (through its own loader or LD_LIBRARY_PATH,
// nothing installed), whose threads call the patched function all the time.
// The trigger shows the flaw, the fix after the live apply, and the flaw
// again after the rollback; the process never restarts and no call fails.
// No VM: this lives here because it drives both the builder and the agent.
// Root only (the agent traces other processes). Cold, the builds download
// and configure the source packages (minutes; cached after).
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultCacheDir } from '../../packages/builder/src/kernel/paths.ts';
import { spawnRunner } from '../../packages/builder/src/runner.ts';
import { buildUserspaceLevel, readUserspaceFix } from '../../packages/builder/src/userspace/build.ts';
import { binaryTree } from '../../packages/builder/src/userspace/debian-source.ts';
import { UserspaceManager } from '../../packages/agent/src/userspace/manager.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CATALOGUE = path.join(ROOT, 'catalogue', 'userspace');
const HELPER = path.join(ROOT, 'packages', 'agent', 'dist', 'livegraft-uspatch');
const FIXTURES = path.join(ROOT, 'test', 'vm', 'fixtures', 'userspace');
const BUILD_TIMEOUT_MS = 60 * 60_000;
const log = (line: string): void => console.log(`  # ${line}`);
const ctx = { cacheDir: defaultCacheDir(), run: spawnRunner, log };

/** A host process: a line-based conversation on stdin/stdout. */
class Host {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly queue: string[] = [];
  private readonly waiters: ((l: string) => void)[] = [];
  readonly exited: Promise<string>;
  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(cmd, args, { stdio: 'pipe', env });
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.queue.push(l);
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (c, s) => resolve(`exit ${c} ${s}`)));
  }
  async ask(cmd?: string): Promise<string> {
    if (cmd !== undefined) this.child.stdin.write(`${cmd}\n`);
    const l = this.queue.shift();
    if (l !== undefined) return l;
    return Promise.race([
      new Promise<string>((resolve) => this.waiters.push(resolve)),
      this.exited.then((why) => {
        throw new Error(`host ${this.child.pid} ended: ${why}`);
      }),
    ]);
  }
  get pid(): number {
    return this.child.pid!;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('real CVE fixes applied live to running processes', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
  let tmp: string;
  const hosts: Host[] = [];
  before(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'lg-userspace-live-'));
    execFileSync('bash', [path.join(ROOT, 'packages', 'agent', 'native', 'build.sh')], { stdio: 'inherit' });
  });
  after(() => {
    for (const h of hosts) h.child.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  const compileHost = (name: string, fix: string, libs: string[]): string => {
    const out = path.join(tmp, name);
    const trigger = path.join(CATALOGUE, fix, 'trigger.c');
    execFileSync('gcc', [
      '-O2',
      '-pthread',
      `-DTRIGGER="${trigger}"`,
      '-o',
      out,
      path.join(FIXTURES, `${name}.c`),
      ...libs,
    ]);
    return out;
  };

  test(
    'glibc CVE-2026-0915 (_nss_dns_getnetbyaddr_r, reached through an NSS pointer) in libc6 2.36-9+deb12u7',
    { timeout: BUILD_TIMEOUT_MS },
    async () => {
      const out = path.join(tmp, 'glibc');
      mkdirSync(out);
      const built = await buildUserspaceLevel({
        ...ctx,
        fixes: await Promise.all(
          ['CVE-2025-0395', 'CVE-2026-0915'].map((f) => readUserspaceFix(path.join(CATALOGUE, f))),
        ),
        level: 1,
        outDir: out,
      });
      const root = await binaryTree(ctx, 'libc6', '2.36-9+deb12u7');
      const exe = compileHost('host-0915', 'CVE-2026-0915', ['-lresolv']);
      const h = new Host(path.join(root, 'lib64', 'ld-linux-x86-64.so.2'), [
        '--library-path',
        path.join(root, 'lib', 'x86_64-linux-gnu'),
        exe,
      ]);
      hosts.push(h);
      assert.match(await h.ask(), /^ready /);
      const stats = async (gen: number) => {
        const m = /^vulnerable=(\d+) fixed=(\d+) error=(\d+)$/.exec(await h.ask(`stats ${gen}`));
        assert.ok(m);
        return { vulnerable: Number(m[1]), fixed: Number(m[2]), error: Number(m[3]) };
      };
      const until = async (gen: number, want: (s: Awaited<ReturnType<typeof stats>>) => boolean) => {
        for (;;) {
          const s = await stats(gen);
          if (want(s)) return s;
          await sleep(200);
        }
      };

      const before = await until(0, (s) => s.vulnerable >= 3);
      assert.equal(before.fixed, 0, 'the unpatched library shows the flaw');

      // A DNS lookup waits for its answer inside the function: a process whose threads are
      // all lookups is often busy, and the next pass (the agent re-scans) tries again.
      const m = new UserspaceManager({ stateDir: path.join(tmp, 'state-glibc'), helper: HELPER, pids: [h.pid] });
      let applied = await m.apply(built.manifestPath);
      for (let pass = 0; pass < 50 && applied.every((o) => o.action === 'refused' && o.reason === 'busy'); pass++) {
        await sleep(100);
        applied = await m.reconcile();
      }
      assert.deepEqual(
        applied.map((o) => [o.pid, o.action, o.reason ?? '']),
        [[h.pid, 'patched', '']],
      );
      log(`glibc level applied: process stopped ${applied[0]!.stopUs} µs`);
      const g1 = Number(await h.ask('gen'));
      const fixed = await until(g1, (s) => s.fixed >= 5);
      assert.equal(fixed.vulnerable, 0, 'every check started after the apply shows the fix');
      assert.equal(fixed.error, 0);
      const st = m.status()[0]!;
      assert.deepEqual(st.cves, ['CVE-2025-0395', 'CVE-2026-0915']);
      assert.deepEqual(
        st.patched.map((p) => p.pid),
        [h.pid],
      );

      const back = await m.rollback();
      assert.deepEqual(
        back.map((o) => [o.pid, o.action]),
        [[h.pid, 'restored']],
        JSON.stringify(back),
      );
      const g2 = Number(await h.ask('gen'));
      const again = await until(g2, (s) => s.vulnerable >= 3);
      assert.equal(again.fixed, 0, 'the rollback brings the flaw back');
      assert.equal((await stats(0)).error, 0, 'no check failed to run, before, during or after');
      assert.equal(h.child.exitCode, null, 'the same process ran throughout');
    },
  );

  test(
    'OpenSSL CVE-2026-42767 (OSSL_CRMF_ENCRYPTEDVALUE_get1_encCert) in libssl3 3.0.20-1~deb12u2',
    { timeout: BUILD_TIMEOUT_MS },
    async () => {
      const out = path.join(tmp, 'openssl');
      mkdirSync(out);
      const built = await buildUserspaceLevel({
        ...ctx,
        fixes: [await readUserspaceFix(path.join(CATALOGUE, 'CVE-2026-42767'))],
        level: 1,
        outDir: out,
      });
      const m0 = built.manifest;
      const libDir = path.dirname(path.join(await binaryTree(ctx, 'libssl3', m0.library.version), m0.library.path));
      const exe = compileHost('host-42767', 'CVE-2026-42767', ['-lcrypto']);
      const h = new Host(exe, [], { ...process.env, LD_LIBRARY_PATH: libDir });
      hosts.push(h);
      assert.match(await h.ask(), /^ready /);
      const calls = async () => {
        const m = /^calls=(\d+) failed=(\d+)$/.exec(await h.ask('stats'));
        assert.ok(m);
        return { calls: Number(m[1]), failed: Number(m[2]) };
      };
      const busy = async () => {
        const a = (await calls()).calls;
        for (;;) {
          await sleep(100);
          const b = await calls();
          if (b.calls > a + 10_000) return b;
        }
      };

      assert.equal(await h.ask('check'), 'VULNERABLE');
      await busy();
      const m = new UserspaceManager({ stateDir: path.join(tmp, 'state-openssl'), helper: HELPER, pids: [h.pid] });
      const applied = await m.apply(built.manifestPath);
      assert.deepEqual(
        applied.map((o) => [o.pid, o.action, o.reason ?? '']),
        [[h.pid, 'patched', '']],
      );
      log(`openssl level applied: process stopped ${applied[0]!.stopUs} µs`);
      assert.equal(await h.ask('check'), 'FIXED');
      assert.equal((await busy()).failed, 0);
      assert.deepEqual(m.status()[0]!.cves, ['CVE-2026-42767']);

      const back = await m.rollback();
      assert.deepEqual(
        back.map((o) => [o.pid, o.action]),
        [[h.pid, 'restored']],
        JSON.stringify(back),
      );
      assert.equal(await h.ask('check'), 'VULNERABLE');
      const end = await busy();
      assert.equal(end.failed, 0, 'no call failed');
      assert.equal(h.child.exitCode, null, 'the same process ran throughout');
    },
  );
});
