// Agent faults a security review and fault runs found on a real kernel: stale
// locks, a broken or full state disk, power cuts at every journal step with
// state.json lost, a patch that changes the kernel's identity text, clock
// skew, and an unreadable config at boot.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { LivegraftError, clockSkewSec, moduleNameFor, skewWarning } from '@livegraft/protocol';
import type { JournalStep } from '../src/state/journal.ts';
import { staleReason } from '../src/state/lock.ts';
import { tufError } from '../src/delivery/tuf-client.ts';
import type { StatusReport } from '../src/operations/agent.ts';
import { TestHost } from './helpers/cli.ts';
import { FakeServer, REGISTRATION_KEY } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';

class Setup {
  server!: FakeServer;
  host!: TestHost;
  mounted = false;

  /** Enrolled, level 1 applied, level 2 published. `tmpfsKb`: the state directory is a tiny real tmpfs. */
  async start(opts: { tmpfsKb?: number } = {}): Promise<void> {
    this.server = await new FakeServer().start();
    this.host = new TestHost();
    if (opts.tmpfsKb !== undefined) {
      mkdirSync(this.host.stateDir, { recursive: true });
      const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${opts.tmpfsKb}k`, 'tmpfs', this.host.stateDir]);
      this.mounted = r.status === 0;
      if (!this.mounted) return;
    }
    assert.equal(
      (await this.host.cli(['enroll', '--insecure', '--server', this.server.url, '--key', REGISTRATION_KEY])).code,
      0,
    );
    this.server.publish(this.host.kernel.id, makePatch(this.host.kernel, 1));
    const u = await this.host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    this.server.publish(this.host.kernel.id, makePatch(this.host.kernel, 2));
  }

  async stop(): Promise<void> {
    await this.server.stop();
    if (this.mounted) spawnSync('umount', [this.host.stateDir]);
    this.host.cleanup();
  }

  l(level: number): string {
    return moduleNameFor(this.host.kernel.id, level);
  }

  path(name: string): string {
    return join(this.host.stateDir, name);
  }

  async status(): Promise<StatusReport> {
    const r = await this.host.cli(['status', '--json']);
    return JSON.parse(r.stdout) as StatusReport;
  }

  /** Runs `args`, the agent stopping dead right after `step` is on disk (a power cut there). */
  async crashAt(step: JournalStep, args = ['update']): Promise<void> {
    const r = await this.host.cli(args, {
      agent: {
        journalHook: (s) => {
          if (s === step) throw new Error(`simulated power cut after "${step}"`);
        },
      },
    });
    assert.equal(r.code, 4, r.stderr);
  }

  /** The level the kernel runs, and that nothing else of ours is loaded. */
  only(level: number): void {
    const k = this.host.kernel;
    for (const l of [1, 2]) {
      assert.equal(k.patchEnabled(this.l(l)) === true, l === level, `level ${l} enabled: ${k.patchEnabled(this.l(l))}`);
    }
  }
}

const noStack = (text: string): void => assert.doesNotMatch(text, /\n\s+at /, `a stack trace was printed:\n${text}`);

describe('12: a lock whose owner is not a live agent is stale', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  for (const [what, content] of [
    ['empty', ''],
    ['garbage', '\u0000\u0000\u0000\u0000'],
    ['a live process that is not the agent (pid 1, no start time)', '1\n'],
    ['a live pid whose start time differs (recycled)', `${process.pid} 1\n`],
    ['taken before the last reboot', `${process.pid} 1 00000000-0000-0000-0000-000000000000\n`],
  ] as const) {
    it(`a lock file that is ${what} is taken over at once, and said so`, async () => {
      writeFileSync(t.path('agent.lock'), content);
      const r = await t.host.cli(['update']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /removed the stale lock .*agent\.lock: /);
      t.only(2);
      assert.equal(existsSync(t.path('agent.lock')), false);
    });
  }

  it('names why a lock is stale, and leaves a live agent holder alone', () => {
    assert.match(staleReason('', 'b') ?? '', /empty/);
    assert.match(staleReason('garbage', 'b') ?? '', /no valid owner/);
    assert.match(staleReason('999999999 1 b\n', 'b') ?? '', /not running/);
    assert.match(staleReason(`${process.pid} 1 a\n`, 'b') ?? '', /before the last reboot/);
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
    assert.equal(staleReason(`${process.pid} ${start} b\n`, 'b'), undefined);
  });
});

describe('13: an I/O error on the state directory is a clear error, and the kernel is untouched', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('a state directory that cannot hold the lock: path, errno and hint, no stack trace', async () => {
    const loads = t.host.kernel.loads().length;
    // The lock's directory is a file: every open under it fails with ENOTDIR.
    const r = await t.host.cli(['update'], {});
    assert.equal(r.code, 0, r.stderr);
    const moved = `${t.host.stateDir}.real`;
    spawnSync('mv', [t.host.stateDir, moved]);
    writeFileSync(t.host.stateDir, 'not a directory');
    try {
      const b = await t.host.cli(['rollback', '--to', '1']);
      assert.equal(b.code, 4);
      assert.match(
        b.stderr,
        /^error \[STATE_IO_ERROR\]: cannot .*state.*: E[A-Z]+ .*the kernel was not changed\. Hint: /,
      );
      noStack(b.stderr);
      assert.equal(t.host.kernel.loads().length, loads + 1, 'only the earlier update loaded');
      t.only(2);
    } finally {
      rmSync(t.host.stateDir, { force: true });
      spawnSync('mv', [moved, t.host.stateDir]);
    }
  });

  it('a read-only state filesystem (EROFS): the fsck hint, the kernel untouched', async (ctx) => {
    if (process.getuid?.() !== 0) return ctx.skip('needs root to remount the state directory read-only');
    const dir = t.host.stateDir;
    if (spawnSync('mount', ['--bind', dir, dir]).status !== 0) return ctx.skip('bind mount refused');
    try {
      assert.equal(spawnSync('mount', ['-o', 'remount,bind,ro', dir]).status, 0);
      const loads = t.host.kernel.loads().length;
      const r = await t.host.cli(['update']);
      assert.equal(r.code, 4);
      assert.match(r.stderr, /^error \[STATE_IO_ERROR\]: cannot create the lock .*agent\.lock: EROFS .*fsck/);
      noStack(r.stderr);
      assert.equal(t.host.kernel.loads().length, loads);
      t.only(1);
    } finally {
      spawnSync('umount', [dir]);
    }
  });
});

describe('14/17: boot re-applies the right level after a power cut at any journal step, even with state.json lost', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  const expected: Record<JournalStep, number> = { intent: 1, loaded: 1, transitioned: 2, 'old-removed': 2 };
  for (const lose of ['kept', 'deleted', 'corrupt', 'reset'] as const) {
    for (const step of ['intent', 'loaded', 'transitioned', 'old-removed'] as const) {
      it(`power cut after "${step}", state.json ${lose}: boot re-applies level ${expected[step]}`, async () => {
        await t.crashAt(step);
        if (lose === 'deleted') rmSync(t.path('state.json'));
        if (lose === 'corrupt') writeFileSync(t.path('state.json'), '{"schema":1,"lev');
        if (lose === 'reset') writeFileSync(t.path('state.json'), '{"schema":1,"level":0}\n');
        t.host.reboot();
        const b = await t.host.cli(['boot']);
        assert.equal(b.code, 0, b.stderr);
        noStack(b.stderr);
        t.only(expected[step]);
        const s = await t.status();
        assert.equal(s.appliedLevel, expected[step]);
        assert.equal(s.journal, null);
        assert.deepEqual(s.quarantined, expected[step] === 2 ? [] : [2], 'only an unconfirmed level is quarantined');
        // And the next boot agrees.
        t.host.reboot();
        assert.equal((await t.host.cli(['boot'])).code, 0);
        t.only(expected[step]);
      });
    }
  }

  it('a power cut after a plain check, state.json lost: boot re-applies level 1 from the running record', async () => {
    assert.equal((await t.host.cli(['check'])).code, 2);
    rmSync(t.path('state.json'));
    t.host.reboot();
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /re-applying level 1 from the running level recorded/);
    t.only(1);
  });

  it('state.json and the running record both lost: the highest cached level that verifies', async () => {
    assert.equal((await t.host.cli(['update'])).code, 0);
    rmSync(t.path('state.json'));
    rmSync(join(t.path('cache'), t.host.kernel.id, 'running.json'));
    // Level 2's cached module is damaged: it does not verify, so level 1 is the one.
    const dir = join(t.path('cache'), t.host.kernel.id, '2');
    const ko = join(dir, `${t.l(2)}.ko`);
    writeFileSync(ko, Buffer.concat([readFileSync(ko), Buffer.from('x')]));
    t.host.reboot();
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /highest verified level/);
    t.only(1);
  });

  it('a journal that cannot be removed does not hide the error being reported', async () => {
    const r = await t.host.cli(['update'], {
      agent: {
        journalHook: (s) => {
          if (s !== 'intent') return;
          // The journal becomes something rm cannot remove, then the apply fails as handled.
          rmSync(t.path('journal.json'));
          mkdirSync(join(t.path('journal.json'), 'x'), { recursive: true });
          throw new LivegraftError('SIMULATED_FAILURE', 'the apply failed');
        },
      },
    });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /cannot remove the journal/);
    assert.match(r.stderr, /error \[SIMULATED_FAILURE\]: the apply failed/);
    rmSync(t.path('journal.json'), { recursive: true });
  });

  it('a quarantine that cannot be written does not stop the boot re-apply', async () => {
    await t.crashAt('loaded');
    // state.json becomes a directory: it reads as unreadable, and every write to it fails.
    rmSync(t.path('state.json'));
    mkdirSync(join(t.path('state.json'), 'x'), { recursive: true });
    t.host.reboot();
    const b = await t.host.cli(['boot']);
    assert.match(b.stderr, /cannot record state/);
    assert.match(b.stderr, /level 2 .* quarantined/);
    t.only(1);
    // The re-apply happened; that its result could not be recorded is reported, with the kernel's side said.
    assert.match(
      b.stderr,
      /error \[STATE_IO_ERROR\]: cannot record the applied level in .*state\.json: EISDIR .*the kernel already changed/,
    );
    noStack(b.stderr);
    rmSync(t.path('state.json'), { recursive: true });
  });

  it('update writes the running level back into a reset state.json, so the next boot re-applies it', async () => {
    assert.equal((await t.host.cli(['update'])).code, 0);
    writeFileSync(t.path('state.json'), '{"schema":1,"level":0}\n');
    rmSync(join(t.path('cache'), t.host.kernel.id, 'running.json'));
    const u = await t.host.cli(['update']);
    assert.equal(u.stdout, 'up to date at level 2\n');
    const st = JSON.parse(readFileSync(t.path('state.json'), 'utf8')) as { level: number; kernelId: string };
    assert.equal(st.level, 2);
    assert.equal(st.kernelId, t.host.kernel.id);
    rmSync(join(t.path('cache'), t.host.kernel.id, '1'), { recursive: true });
    t.host.reboot();
    assert.equal((await t.host.cli(['boot'])).code, 0);
    t.only(2);
  });
});

describe('15: a full disk never leaves the state behind the kernel (a real tmpfs)', () => {
  const t = new Setup();
  beforeEach(() => t.start({ tmpfsKb: 2048 }));
  afterEach(() => t.stop());

  /** Fills the state filesystem, leaving `free` bytes. */
  const fill = (free: number): string => {
    const filler = t.path('filler');
    const chunk = Buffer.alloc(4096, 0x5a);
    for (;;) {
      try {
        writeFileSync(filler, chunk, { flag: 'a' });
      } catch {
        break;
      }
    }
    for (let n = 2048; n >= 1; n = Math.floor(n / 2)) {
      try {
        writeFileSync(filler, Buffer.alloc(n), { flag: 'a' });
      } catch {
        // smaller next
      }
    }
    truncateSync(filler, statSync(filler).size - free);
    return filler;
  };

  it('rollback on a full disk completes: the reserve takes the journal and the state; then no change without room', async (ctx) => {
    if (!t.mounted) return ctx.skip('needs root to mount a tmpfs');
    assert.equal((await t.host.cli(['update'])).code, 0);
    t.only(2);
    assert.ok(existsSync(t.path('reserve')), 'the reserve was kept before the kernel changed');
    // Two free pages: the lock and the first journal step fit, nothing after them would.
    fill(8192);
    const rb = await t.host.cli(['rollback', '--to', '1']);
    assert.equal(rb.code, 0, rb.stderr);
    assert.match(rb.stderr, /freed the space reserve/);
    t.only(1);
    assert.equal(t.host.kernel.moduleLoaded(t.l(2)), false, 'the level-2 module was removed');
    const st = JSON.parse(readFileSync(t.path('state.json'), 'utf8')) as { level: number; hold: { maxLevel: number } };
    assert.equal(st.level, 1, 'state.json follows the kernel');
    assert.equal(existsSync(t.path('journal.json')), false);
    const s = await t.status();
    assert.equal(s.appliedLevel, 1);
    assert.equal(s.stateWarning, null);

    // One free page and the reserve used up: a manual update with a hold set is a clear DISK_FULL, not INTERNAL.
    const filler = fill(4096);
    const loads = t.host.kernel.loads().length;
    const u = await t.host.cli(['update']);
    assert.equal(u.code, 4);
    assert.match(u.stderr, /^error \[DISK_FULL\]: cannot write .*state\.json: ENOSPC/m);
    assert.doesNotMatch(u.stderr, /INTERNAL/);
    noStack(u.stderr);
    // A change that needs the reserve is refused before the kernel is touched.
    const un = await t.host.cli(['unload']);
    assert.equal(un.code, 4);
    assert.match(un.stderr, /^error \[DISK_FULL\]: cannot keep 256 KiB free .*the kernel was not changed/m);
    assert.equal(t.host.kernel.loads().length, loads);
    t.only(1);

    // A reboot re-applies what the operator chose, not level 2.
    truncateSync(filler, Math.max(0, statSync(filler).size - 512 * 1024));
    t.host.reboot();
    assert.equal((await t.host.cli(['boot'])).code, 0);
    t.only(1);
  });
  it('a daemon started without room for the reserve warns and goes on; the change that needs it is refused', async (ctx) => {
    if (!t.mounted) return ctx.skip('needs root to mount a tmpfs');
    rmSync(t.path('reserve'));
    fill(64 * 1024);
    const loads = t.host.kernel.loads().length;
    const r = await t.host.cli(['run', '--once']);
    assert.match(r.stderr, /the space reserve is not in place; the next kernel change tries again: .*ENOSPC/);
    assert.match(r.stderr, /DISK_FULL/, 'level 2 needs the reserve: refused');
    assert.equal(t.host.kernel.loads().length, loads, 'the kernel was not changed');
    t.only(1);
    noStack(r.stderr);
  });
});

describe('15: DISK_FULL names what did not fit (a real tmpfs)', () => {
  const t = new Setup();
  beforeEach(() => t.start({ tmpfsKb: 4096 }));
  afterEach(() => t.stop());

  it('a module too big for the free space is named, with its size, not "TUF metadata"', async (ctx) => {
    if (!t.mounted) return ctx.skip('needs root to mount a tmpfs');
    // Level 3 is a 1.5 MiB module: staged once it fits, its copy into the cache does not.
    const big = makePatch(t.host.kernel, 3, { describeBytes: (b) => Buffer.concat([b, Buffer.alloc(1536 * 1024)]) });
    t.server.publish(t.host.kernel.id, big);
    const filler = t.path('filler');
    writeFileSync(filler, '');
    for (;;) {
      try {
        writeFileSync(filler, Buffer.alloc(64 * 1024), { flag: 'a' });
      } catch {
        break;
      }
    }
    truncateSync(filler, statSync(filler).size - 2304 * 1024);
    const loads = t.host.kernel.loads().length;
    const r = await t.host.cli(['update']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^error \[DISK_FULL\]: cannot store the module .*\.ko \(\d+ bytes\)/m);
    assert.doesNotMatch(r.stderr, /TUF metadata/);
    assert.equal(t.host.kernel.loads().length, loads);
    t.only(1);
  });
});

describe('16: a patch that changes /proc/version does not change the kernel id', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('the id is taken once per boot, and by build-id across boots', async () => {
    const id = t.host.kernel.id;
    const patched = `${t.host.kernel.procVersion} [patched]`;
    writeFileSync(join(t.host.kernel.proc, 'version'), `${patched}\n`);
    let s = await t.status();
    assert.equal(s.kernel.id, id);
    assert.equal(s.appliedLevel, 1);
    assert.deepEqual(s.cachedLevels, [1]);
    const u = await t.host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    t.only(2);
    assert.equal(t.server.checkins.at(-1)?.kernel.id, id);
    // The next boot of the same build (same build-id) still reads as the same kernel.
    const k = t.host.reboot();
    writeFileSync(join(k.proc, 'version'), `${patched}\n`);
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /keeping the recorded kernel identity/);
    s = await t.status();
    assert.equal(s.kernel.id, id);
    assert.equal(s.appliedLevel, 2);
  });

  it('another kernel build (another build-id) is another kernel', async () => {
    const k = t.host.reboot({ procVersion: 'Linux version 6.1.0-99-amd64 (other build) #2 SMP' });
    const s = await t.status();
    assert.equal(s.kernel.id, k.id);
    assert.notEqual(k.id, moduleNameFor(k.id, 1));
  });
});

describe('18: clock skew', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());
  const YEAR_MS = 365 * 86_400_000;

  it('a clock 2 years behind the server: the check-in warns and status reports the skew', async () => {
    t.server.date = new Date(t.host.kernel.now + 2 * YEAR_MS).toUTCString();
    const u = await t.host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stderr, /clock is 730 d 0 h behind the server's .*check the clock/);
    const s = await t.status();
    assert.ok(s.clockSkewSec !== null && s.clockSkewSec < -2 * 364 * 86_400, String(s.clockSkewSec));
    assert.match(s.clockWarning ?? '', /behind the server's/);
    const text = await t.host.cli(['status']);
    assert.match(text.stdout, /clock .*check the clock/);
    // The next check-in tells the server, so the fleet view shows the wrong clock too.
    await t.host.cli(['check']);
    const sent = t.server.checkins.at(-1)?.clockSkewSec;
    assert.ok(sent !== undefined && sent < -2 * 364 * 86_400, String(sent));
  });

  it('a clock set back after a check: STALE, no age, never a negative one', async () => {
    t.server.date = new Date(t.host.kernel.now).toUTCString();
    assert.equal((await t.host.cli(['check'])).code, 2);
    assert.equal((await t.status()).checkStale, false);
    t.host.kernel.now -= 2 * YEAR_MS;
    const s = await t.status();
    assert.equal(s.checkStale, true);
    assert.equal(s.lastCheckAgeSec, null);
    assert.match(s.clockWarning ?? '', /in the future: the clock went back; check the clock/);
    const text = await t.host.cli(['status']);
    assert.match(text.stdout, /STALE/);
    assert.doesNotMatch(text.stdout, /-\d+ ?s ago|\(0s ago\)/);
  });

  it('an expiry error says to check the clock; skew comes from the Date header', () => {
    const e = tufError(new Error('ExpiredMetadataError: root.json is expired'));
    assert.equal(e.code, 'TUF_METADATA_EXPIRED');
    assert.match(e.message, /check the clock/);
    const now = Date.parse('2028-01-01T00:00:00Z');
    assert.equal(clockSkewSec(now, 'Sat, 01 Jan 2026 00:00:00 GMT'), 730 * 86_400);
    assert.equal(clockSkewSec(now, 'Sat, 01 Jan 2028 00:00:20 GMT'), 0, 'transit noise');
    assert.equal(clockSkewSec(now, 'not a date'), undefined);
    assert.equal(skewWarning(60), undefined);
  });
});

describe('19: an unreadable agent config does not stop boot', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  for (const [what, write] of [
    ['invalid', (p: string) => writeFileSync(p, '{"server": 42')],
    ['unreadable (a directory)', (p: string) => (rmSync(p), mkdirSync(p))],
  ] as const) {
    it(`boot re-applies from the cache with an ${what} config, and warns`, async () => {
      write(t.host.configPath);
      t.host.reboot();
      const b = await t.host.cli(['boot']);
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.stderr, /agent config .*re-applying from the local cache without it/);
      t.only(1);
    });
  }

  it('the default kill-switch file still stops it', async () => {
    writeFileSync(t.host.configPath, 'garbage');
    writeFileSync(join(t.host.configPath, '..', 'disable'), '');
    t.host.reboot();
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /disabled/);
    assert.equal(t.host.kernel.patchEnabled(t.l(1)), undefined);
  });
});
