// The crash-loop guard between re-scans: the daemon's loop looks at recently
// patched processes about every second, so a death is judged on when it
// happened. Real short-lived processes; no helper is needed (the state says
// they were patched).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { watchLoop } from '../../src/userspace/cli.ts';
import { DeathWatch } from '../../src/userspace/death-watch.ts';
import { UserspaceManager } from '../../src/userspace/manager.ts';
import { processEnded, processStartTime } from '../../src/userspace/scan.ts';
import type { PatchedProcess } from '../../src/userspace/state.ts';

const BUILD = 'ab'.repeat(20);
const OTHER = 'cd'.repeat(20);

describe('user-space crash-loop guard between re-scans', { timeout: 120_000 }, () => {
  let dir: string;
  let n = 0;
  const children: ChildProcess[] = [];

  const sleeper = async (): Promise<ChildProcess> => {
    const c = spawn('sleep', ['300'], { stdio: 'ignore' });
    children.push(c);
    await once(c, 'spawn');
    return c;
  };
  const patched = (c: ChildProcess, patchedAt: number, level = 1): PatchedProcess => ({
    pid: c.pid!,
    startTime: processStartTime('/proc', c.pid!)!,
    comm: 'sleep',
    base: 0x7f0000000000,
    path: '/usr/lib/x86_64-linux-gnu/libfake.so.1',
    deleted: false,
    level,
    code: '0x7f1000000000',
    functions: [],
    patchedAt: new Date(patchedAt).toISOString(),
    stopUs: 100,
  });
  /** A state directory whose build BUILD is at level 1 with these processes patched. */
  const setup = (procs: PatchedProcess[], now: () => number = Date.now) => {
    const m = new UserspaceManager({
      stateDir: join(dir, `state-${++n}`),
      helper: '',
      now,
      crashWindowMs: 10_000,
      pids: procs.map((p) => p.pid),
    });
    m.store.save({
      schema: 1,
      libraries: { [BUILD]: { soname: 'libfake.so.1', level: 1, patched: procs, refused: [] } },
    });
    return m;
  };
  const kill = async (c: ChildProcess) => {
    c.kill('SIGSEGV');
    if (c.exitCode === null && c.signalCode === null) await once(c, 'exit');
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lg-death-watch-'));
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) await kill(c);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the daemon loop halts the level when a patched process dies, without waiting for the next re-scan', async () => {
    const a = await sleeper();
    const b = await sleeper();
    const m = setup([patched(a, Date.now()), patched(b, Date.now())]);
    const stop = new AbortController();
    const logs: string[] = [];
    let halted!: () => void;
    const onHalt = new Promise<void>((r) => (halted = r));
    // One re-scan at the start, the next an hour later: only the death watch can see the death in this test.
    const loop = watchLoop(
      m,
      3_600_000,
      stop.signal,
      (s) => logs.push(s),
      undefined,
      () => halted(),
      50,
    );
    try {
      // Let the first pass and a few looks go by with both processes alive: nothing is halted.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(m.store.load().libraries[BUILD]!.halted, undefined);
      await kill(a);
      await onHalt;
      const lib = m.store.load().libraries[BUILD]!;
      assert.equal(lib.halted?.pid, a.pid);
      assert.equal(lib.halted?.level, 1);
      assert.deepEqual(
        lib.patched.map((p) => p.pid),
        [b.pid],
        'the process still running stays patched',
      );
      assert.deepEqual(logs, []);
    } finally {
      stop.abort();
      await loop;
    }
  });

  test('the guard judges a death by when it was seen, not by when the next re-scan runs', async () => {
    const a = await sleeper();
    const t0 = Date.now();
    let clock = t0 + 2_000;
    const rec = patched(a, t0);
    const m = setup([rec], () => clock);
    const watch = new DeathWatch(m);
    assert.equal(await watch.tick(), false, 'alive: nothing to do');
    await kill(a);
    // Seen ending 2 s after it was patched; the guard itself runs only a minute later (a long pass held it up).
    m.noteEnded({ buildId: BUILD, pid: rec.pid, startTime: rec.startTime, patchedAtMs: t0 }, clock);
    clock = t0 + 60_000;
    assert.deepEqual(await m.reconcile(), []);
    const lib = m.store.load().libraries[BUILD]!;
    assert.equal(lib.halted?.pid, a.pid);
    assert.equal(lib.halted?.at, new Date(t0 + 2_000).toISOString());
    assert.deepEqual(lib.patched, []);
  });

  test('a death the watch never saw is still judged at the re-scan (outside the window: no halt)', async () => {
    const a = await sleeper();
    const t0 = Date.now();
    let clock = t0;
    const m = setup([patched(a, t0)], () => clock);
    await kill(a);
    clock = t0 + 60_000;
    await m.reconcile();
    const lib = m.store.load().libraries[BUILD]!;
    assert.equal(lib.halted, undefined);
    assert.deepEqual(lib.patched, []);
  });

  test('the watch list: processes at the wanted level within the window, newest first, bounded', async () => {
    const procs = await Promise.all([sleeper(), sleeper(), sleeper(), sleeper()]);
    const now = Date.now();
    const m = setup([
      patched(procs[0]!, now - 3_000),
      patched(procs[1]!, now - 1_000),
      patched(procs[2]!, now - 20_000), // outside the window
      patched(procs[3]!, now - 2_000, 2), // at another level than the wanted one
    ]);
    assert.deepEqual(
      m.watchList(10).map((w) => w.pid),
      [procs[1]!.pid, procs[0]!.pid],
    );
    assert.deepEqual(
      m.watchList(1).map((w) => w.pid),
      [procs[1]!.pid],
    );
    const s = m.store.load();
    s.libraries[BUILD]!.halted = { level: 1, pid: 1, comm: 'x', at: new Date(now).toISOString() };
    s.libraries[OTHER] = { soname: 'libother.so', level: 1, patched: [patched(procs[2]!, now)], refused: [] };
    m.store.save(s);
    assert.deepEqual(
      m.watchList(10).map((w) => [w.buildId, w.pid]),
      [[OTHER, procs[2]!.pid]],
      'a halted build is not watched',
    );
  });

  test('a zombie, a vanished pid and a reused pid have ended; a running process has not', async () => {
    // The shell starts a short child, prints its pid, and becomes `sleep`, which never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 300'], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(parent);
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const zombie = Number(line.toString().trim());
    const started = processStartTime('/proc', zombie);
    assert.ok(started !== undefined);
    for (let i = 0; i < 200 && !processEnded('/proc', zombie, started); i++)
      await new Promise((r) => setTimeout(r, 25));
    assert.equal(processEnded('/proc', zombie, started), true, 'a zombie has ended');
    const live = processStartTime('/proc', parent.pid!)!;
    assert.equal(processEnded('/proc', parent.pid!, live), false);
    assert.equal(processEnded('/proc', parent.pid!, live + 1), true, 'same pid, another start time: another process');
    assert.equal(processEnded('/proc', 0x3fffffff, 1), true);
  });
});
