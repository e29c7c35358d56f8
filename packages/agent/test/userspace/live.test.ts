// User-space live patching of a running multi-threaded process against
// Debian's real libc6 2.36-9+deb12u7 (extracted, run through its own loader):
// apply live, rollback, re-scan, refusals, the crash-loop guard. Root only
// (the agent patches other users' processes).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyPlan, loadBundle } from '../../src/userspace/bundle.ts';
import { UserspaceManager } from '../../src/userspace/manager.ts';
import { runHelper } from '../../src/userspace/native.ts';
import { scanProcesses } from '../../src/userspace/scan.ts';
import { compile, ensureLibc, fileBuildId, Target, type ExtractedLibc } from './debian-libc.ts';
import { writeMarkerBundle } from './marker-bundle.ts';
import { TestHost } from '../helpers/cli.ts';
import { enrolledHost, releaseHost } from '../helpers/enrolled.ts';

const AGENT = fileURLToPath(new URL('../..', import.meta.url));
const HELPER = join(AGENT, 'dist', 'livegraft-uspatch');
const root = process.getuid?.() === 0;

describe(
  'user-space live patch of a running process (Debian libc 2.36)',
  { skip: !root && 'needs root', timeout: 15 * 60_000 },
  () => {
    let dir: string;
    let libc: ExtractedLibc;
    let program: string;
    let bundle: string;
    const targets: Target[] = [];
    const start = async (args: string[] = [], libDir?: string): Promise<Target> => {
      const t = new Target(libc, program, args, libDir);
      targets.push(t);
      await t.ready();
      return t;
    };
    // Scoped to this test's processes: other tests may run programs on the same libc build meanwhile.
    const manager = (stateDir: string, extra: Partial<ConstructorParameters<typeof UserspaceManager>[0]> = {}) =>
      new UserspaceManager({ stateDir, helper: HELPER, pids: targets.map((t) => t.pid), ...extra });

    before(() => {
      execFileSync('bash', [join(AGENT, 'native', 'build.sh')], { stdio: 'inherit' });
      libc = ensureLibc();
      dir = mkdtempSync(join(tmpdir(), 'lg-userspace-'));
      program = compile(fileURLToPath(new URL('./fixtures/target.c', import.meta.url)), join(dir, 'target'));
      bundle = writeMarkerBundle(libc.libc, join(dir, 'bundle'));
    });
    afterEach(async () => {
      for (const t of targets.splice(0)) {
        t.stop();
        await t.exit;
      }
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('applies live to busy threads, re-scans for later processes, rolls back: no restart, no failed call', async () => {
      const t = await start(['threads=4']);
      await t.progress('orig');
      let m = manager(join(dir, 'state-live'));
      const applied = await m.apply(bundle);
      assert.deepEqual(
        applied.map((o) => [o.pid, o.action]),
        [[t.pid, 'patched']],
      );
      const after1 = await t.progress('marker');
      assert.equal(after1.other, 0, 'no call returned anything but the old or the new value');

      const s = m.status();
      assert.equal(s.length, 1);
      assert.equal(s[0]!.buildId, fileBuildId(libc.libc));
      assert.deepEqual(
        s[0]!.patched.map((p) => p.pid),
        [t.pid],
      );

      // A process started later from the same old build is patched by the next pass.
      const late = await start(['threads=2']);
      m = manager(join(dir, 'state-live')); // the same state; now also looking at the new process
      assert.deepEqual(
        m.status()[0]!.unpatched.map((p) => p.pid),
        [late.pid],
      );
      const again = await m.reconcile();
      assert.deepEqual(
        again.map((o) => [o.pid, o.action]),
        [[late.pid, 'patched']],
      );
      await late.progress('marker');

      const code = m.status()[0]!.patched.map((p) => p.code);
      assert.equal(code.length, 2);
      const back = await m.rollback();
      assert.deepEqual(back.map((o) => o.action).sort(), ['restored', 'restored']);
      assert.equal((await t.progress('orig')).other, 0);
      assert.equal((await late.progress('orig')).other, 0);
      assert.equal(t.child.exitCode, null, 'the process never restarted');
      assert.deepEqual(m.status()[0]!.patched, []);
      const maps = readFileSync(`/proc/${t.pid}/maps`, 'utf8');
      assert.ok(!maps.includes(`${code[0]!.replace(/^0x/, '')}-`), 'the code was unmapped');
    });

    test('applies and rolls back again and again while threads spin through the code', async () => {
      const t = await start(['threads=4']);
      const m = manager(join(dir, 'state-cycles'));
      for (let i = 0; i < 5; i++) {
        assert.deepEqual(
          (await m.apply(bundle)).map((o) => o.action),
          ['patched'],
        );
        await t.progress('marker', 10_000);
        assert.deepEqual(
          (await m.rollback()).map((o) => o.action),
          ['restored'],
        );
        await t.progress('orig', 10_000);
      }
      assert.equal((await t.stats()).other, 0);
      assert.equal(t.child.exitCode, null);
    });

    test('finds a process whose library file was deleted on disk (package upgrade) by the build-id in memory', async () => {
      const libDir = join(dir, 'upgraded');
      mkdirSync(libDir);
      for (const f of readdirSync(libc.libDir)) {
        if (f === 'libc.so.6') copyFileSync(join(libc.libDir, f), join(libDir, f));
        else symlinkSync(join(libc.libDir, f), join(libDir, f));
      }
      const t = await start(['threads=1'], libDir);
      unlinkSync(join(libDir, 'libc.so.6'));
      const found = scanProcesses({ buildIds: new Set([fileBuildId(libc.libc)]), pids: [t.pid] });
      assert.equal(found.length, 1);
      assert.equal(found[0]!.deleted, true);
      assert.equal(found[0]!.path, join(libDir, 'libc.so.6'));
      const m = manager(join(dir, 'state-deleted'));
      const out = await m.apply(bundle);
      assert.deepEqual(
        out.filter((o) => o.pid === t.pid).map((o) => o.action),
        ['patched'],
      );
      await t.progress('marker');
      await m.rollback();
      await t.progress('orig');
    });

    test('finds a process in another mount namespace (a container) whose library path does not exist on the host', async () => {
      const view = join(dir, 'container-view');
      mkdirSync(view);
      const child = spawn(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          `mount --bind "$1" "$2" && exec "$3" --library-path "$2" "$4" threads=1`,
          'sh',
          libc.libDir,
          view,
          libc.loader,
          program,
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      try {
        await new Promise((resolve) => child.stdout.once('data', resolve));
        assert.deepEqual(readdirSync(view), [], 'the host sees an empty directory');
        const m = manager(join(dir, 'state-container'), { pids: [child.pid!] });
        const out = await m.apply(bundle);
        assert.deepEqual(
          out.map((o) => [o.pid, o.action]),
          [[child.pid, 'patched']],
        );
        assert.equal(m.status()[0]!.patched[0]!.path, join(view, 'libc.so.6'));
        assert.deepEqual(
          (await m.rollback()).map((o) => o.action),
          ['restored'],
        );
      } finally {
        child.kill('SIGKILL');
      }
    });

    const refusal = async (args: string[], functions: ('abs' | 'pause')[], buildId?: string) => {
      const t = await start(args);
      const b = loadBundle(writeMarkerBundle(libc.libc, join(dir, `b-${args.join('-')}`), { functions, buildId }));
      const base = scanProcesses({ buildIds: new Set([fileBuildId(libc.libc)]), pids: [t.pid] })[0]!.base;
      const r = await runHelper(HELPER, 'apply', applyPlan(b, t.pid, base, 5));
      const s = await t.progress('orig');
      assert.equal(s.other, 0);
      assert.equal(s.marker, 0, 'nothing was patched');
      assert.equal(t.child.exitCode, null, 'the process keeps running');
      return r;
    };

    test('refuses a process whose seccomp filter forbids executable mappings', async () => {
      const r = await refusal(['threads=2', 'seccomp'], ['abs']);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.reason, 'seccomp');
    });

    test('refuses a non-dumpable process', async () => {
      const r = await refusal(['threads=2', 'nodump'], ['abs']);
      assert.equal(!r.ok && r.reason, 'not-dumpable');
    });

    test('refuses while a thread is parked inside a function being replaced', async () => {
      const r = await refusal(['threads=2', 'park'], ['abs', 'pause']);
      assert.equal(!r.ok && r.reason, 'busy');
      assert.match(!r.ok ? r.message : '', /thread \d+/);
    });

    test('refuses a library with another build-id', async () => {
      const r = await refusal(['threads=1'], ['abs'], 'ab'.repeat(20));
      assert.equal(!r.ok && r.reason, 'build-id-mismatch');
    });

    test('refuses a function too short for a jump, before touching the process', async () => {
      const t = await start(['threads=1']);
      const b = loadBundle(bundle);
      const base = scanProcesses({ buildIds: new Set([b.manifest.library.buildId]), pids: [t.pid] })[0]!.base;
      const plan = applyPlan(b, t.pid, base, 5).replace(/^func (\d+) 8 /m, 'func $1 4 ');
      const r = await runHelper(HELPER, 'apply', plan);
      assert.equal(!r.ok && r.reason, 'function-too-short');
      assert.equal(r.threads, 0, 'no thread was stopped');
      assert.equal((await t.progress('orig')).marker, 0);
    });

    test('refuses a process already traced by someone else', async () => {
      const t = await start(['threads=1']);
      const b = loadBundle(bundle);
      const base = scanProcesses({ buildIds: new Set([b.manifest.library.buildId]), pids: [t.pid] })[0]!.base;
      const tracerBin = compile(fileURLToPath(new URL('./fixtures/tracer.c', import.meta.url)), join(dir, 'tracer'));
      const tracer = spawn(tracerBin, [String(t.pid)], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new Promise((resolve) => tracer.stdout.once('data', resolve));
        const r = await runHelper(HELPER, 'apply', applyPlan(b, t.pid, base, 5));
        assert.equal(!r.ok && r.reason, 'traced');
        assert.equal((await t.progress('orig')).marker, 0);
      } finally {
        tracer.kill('SIGKILL');
      }
    });

    test('the crash-loop guard halts the level when a patched process dies soon after', async () => {
      const t = await start(['threads=2']);
      let m = manager(join(dir, 'state-guard'), { crashWindowMs: 60_000 });
      await m.apply(bundle);
      await t.progress('marker');
      t.child.kill('SIGSEGV');
      await t.exit;
      const later = await start(['threads=1']);
      m = manager(join(dir, 'state-guard'), { crashWindowMs: 60_000 });
      const out = await m.reconcile();
      assert.deepEqual(out, [], 'nothing more is patched once halted');
      const s = m.status()[0]!;
      assert.equal(s.halted?.pid, t.pid);
      assert.ok(s.unpatched.some((p) => p.pid === later.pid));
      assert.equal(m.report()[0]!.halted, true);
      await m.rollback();
    });

    test('livegraft-agent userspace apply, status [--json] and rollback', async () => {
      const t = await start(['threads=2']);
      const host = new TestHost();
      try {
        const pid = ['--pid', String(t.pid)];
        const a = await host.cli(['userspace', 'apply', bundle, ...pid, '--json']);
        assert.equal(a.code, 0, a.stderr);
        const applied = JSON.parse(a.stdout) as { processes: { pid: number; action: string }[] };
        assert.deepEqual(
          applied.processes.map((p) => [p.pid, p.action]),
          [[t.pid, 'patched']],
        );
        await t.progress('marker');
        const st = await host.cli(['status', '--json']);
        const j = JSON.parse(st.stdout) as {
          userspace: { soname: string; level: number; patched: { pid: number }[] }[];
        };
        assert.equal(j.userspace[0]!.soname, 'libc.so.6');
        assert.equal(j.userspace[0]!.level, 1);
        assert.ok(j.userspace[0]!.patched.some((p) => p.pid === t.pid));
        const human = await host.cli(['userspace', 'status', ...pid]);
        assert.match(human.stdout, new RegExp(`patched   ${t.pid} `));
        const r = await host.cli(['userspace', 'rollback', ...pid, '--json']);
        assert.equal(r.code, 0, r.stderr);
        await t.progress('orig');
      } finally {
        host.cleanup();
      }
    });

    test('a check-in reports each library build: level, CVEs, patched, unpatched and refused processes', async () => {
      const t = await start(['threads=1']);
      const refused = await start(['threads=1', 'nodump']);
      const { server, host } = await enrolledHost();
      try {
        const m = manager(host.stateDir, { pids: [t.pid, refused.pid] });
        await m.apply(bundle);
        const r = await host.cli(['check', '--json']);
        assert.ok(r.code <= 3, r.stderr);
        const sent = server.checkins.at(-1)!.userspace;
        assert.ok(sent !== undefined, 'the check-in carries the user-space libraries');
        const lib = sent.find((l) => l.buildId === fileBuildId(libc.libc))!;
        assert.equal(lib.soname, 'libc.so.6');
        assert.equal(lib.level, 1);
        assert.ok(lib.patched >= 1);
        assert.ok(lib.refused >= 1);
        assert.ok((lib.refusals?.['not-dumpable'] ?? 0) >= 1);
        await m.rollback();
      } finally {
        await releaseHost(server, host);
      }
    });
  },
);
