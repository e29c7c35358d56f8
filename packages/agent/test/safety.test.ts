import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { moduleNameFor } from '@livegraft/protocol';
import { acquireLock } from '../src/state/lock.ts';
import type { JournalStep } from '../src/state/journal.ts';
import { TestHost } from './helpers/cli.ts';
import { FakeServer, REGISTRATION_KEY } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';

interface Status {
  appliedLevel: number;
  quarantined: number[];
  attention: { code: string } | null;
  disabled: { by: string; detail: string } | null;
  journal: { step: string; level: number } | null;
  highestLevel: number;
  lastApply: { ok: boolean; code?: string; action: string; toLevel: number } | null;
  lastError: { code: string } | null;
  stateWarning: string | null;
}

/** An enrolled host at level 1 with level 2 published. */
class Setup {
  server!: FakeServer;
  host!: TestHost;

  async start(): Promise<void> {
    this.server = await new FakeServer().start();
    this.host = new TestHost();
    assert.equal(
      (await this.host.cli(['enroll', '--insecure', '--server', this.server.url, '--key', REGISTRATION_KEY])).code,
      0,
    );
    this.server.publish(this.host.kernel.id, makePatch(this.host.kernel, 1));
    assert.equal((await this.host.cli(['update'])).code, 0);
    this.server.publish(this.host.kernel.id, makePatch(this.host.kernel, 2));
  }

  async stop(): Promise<void> {
    await this.server.stop();
    this.host.cleanup();
  }

  l(level: number): string {
    return moduleNameFor(this.host.kernel.id, level);
  }

  async status(): Promise<Status> {
    return JSON.parse((await this.host.cli(['status', '--json'])).stdout) as Status;
  }

  /** Runs `update`, stopping the agent dead right after `step` is on disk. */
  async crashAt(step: JournalStep): Promise<void> {
    const r = await this.host.cli(['update'], {
      agent: {
        journalHook: (s) => {
          if (s === step) throw new Error(`simulated crash after "${step}"`);
        },
      },
    });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /simulated crash/);
  }

  journal(): { step: string; level: number; bootId: string } | undefined {
    try {
      return JSON.parse(readFileSync(join(this.host.stateDir, 'journal.json'), 'utf8')) as {
        step: string;
        level: number;
        bootId: string;
      };
    } catch {
      return undefined;
    }
  }
}

describe('write-ahead journal: a kill at each step, then a restart', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('each step is on disk before the agent moves on', async () => {
    const seen: { step: string; loaded: boolean; enabled: boolean | undefined; l1: boolean }[] = [];
    const r = await t.host.cli(['update'], {
      agent: {
        journalHook: (s) => {
          const j = t.journal();
          assert.equal(j?.step, s, 'persisted before the hook runs');
          assert.equal(j?.bootId, t.host.kernel.bootId);
          seen.push({
            step: s,
            loaded: t.host.kernel.moduleLoaded(t.l(2)),
            enabled: t.host.kernel.patchEnabled(t.l(2)),
            l1: t.host.kernel.moduleLoaded(t.l(1)),
          });
        },
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      seen.map((x) => [x.step, x.loaded, x.l1]),
      [
        ['intent', false, true],
        ['loaded', true, true],
        ['transitioned', true, true],
        ['old-removed', true, false],
      ],
    );
    assert.equal(t.journal(), undefined, 'cleared once confirmed');
  });

  it('killed after "intent" (before insmod): the restart clears it and loads nothing', async () => {
    await t.crashAt('intent');
    assert.equal(t.journal()?.step, 'intent');
    assert.equal((await t.status()).journal?.step, 'intent');
    const loads = t.host.kernel.loads().length;
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(t.journal(), undefined);
    assert.equal(t.host.kernel.loads().length, loads, 'reconcile never loads');
    assert.equal(t.host.kernel.patchEnabled(t.l(1)), true);
    const u = await t.host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(t.host.kernel.loads().filter((p) => p.includes(t.l(2))).length, 1);
  });

  it('killed after "loaded" (mid-transition): the restart finishes the transition and never loads twice', async () => {
    await t.crashAt('loaded');
    assert.equal(t.host.kernel.moduleLoaded(t.l(2)), true);
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /resuming an interrupted apply of level 2/);
    assert.equal(t.host.kernel.patchEnabled(t.l(2)), true);
    assert.equal(t.host.kernel.moduleLoaded(t.l(1)), false, 'replaced module removed');
    assert.equal(t.host.kernel.loads().filter((p) => p.includes(t.l(2))).length, 1);
    assert.equal(t.journal(), undefined);
    const s = await t.status();
    assert.equal(s.appliedLevel, 2);
    assert.equal(s.highestLevel, 2);
    assert.equal(s.lastApply?.ok, true);
    assert.equal((await t.host.cli(['update'])).stdout, 'up to date at level 2\n');
  });

  it('killed after "loaded" with a stuck transition: the restart waits (bounded), reverses, and level 1 stays', async () => {
    t.host.kernel.stallTransitions = true;
    await t.crashAt('loaded');
    const started = t.host.kernel.now;
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(t.host.kernel.now - started >= 75_000, 'waited the transition timeout');
    assert.deepEqual(t.host.kernel.disables, [t.l(2)]);
    assert.equal(t.host.kernel.moduleLoaded(t.l(2)), false);
    assert.equal(t.host.kernel.patchEnabled(t.l(1)), true);
    const s = await t.status();
    assert.equal(s.lastError?.code, 'TRANSITION_STALLED');
    assert.equal(s.journal, null);
  });

  it('killed after "transitioned": the restart removes the retired module', async () => {
    await t.crashAt('transitioned');
    assert.equal(t.host.kernel.moduleLoaded(t.l(1)), true, 'retired module left behind');
    assert.equal(t.host.kernel.patchEnabled(t.l(1)), undefined);
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(t.host.kernel.moduleLoaded(t.l(1)), false);
    assert.equal(t.host.kernel.patchEnabled(t.l(2)), true);
    assert.equal(t.journal(), undefined);
    assert.equal((await t.status()).appliedLevel, 2);
  });

  it('killed after "old-removed": the restart records the level', async () => {
    await t.crashAt('old-removed');
    const before = JSON.parse(readFileSync(join(t.host.stateDir, 'state.json'), 'utf8')) as { level: number };
    assert.equal(before.level, 1, 'state not yet updated');
    assert.equal((await t.host.cli(['boot'])).code, 0);
    const after = JSON.parse(readFileSync(join(t.host.stateDir, 'state.json'), 'utf8')) as { level: number };
    assert.equal(after.level, 2);
    assert.equal(t.journal(), undefined);
  });

  it('a corrupt journal is moved aside and reported; the kernel stays as it is', async () => {
    writeFileSync(join(t.host.stateDir, 'journal.json'), '{"step":');
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /journal: .*moved to .*journal\.json\.corrupt/);
    assert.ok(existsSync(join(t.host.stateDir, 'journal.json.corrupt')));
    assert.equal(t.host.kernel.patchEnabled(t.l(1)), true);
  });
});

describe('crash-loop guard: quarantine after an unconfirmed apply across a reboot', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  for (const step of ['transitioned', 'old-removed'] as const) {
    it(`the host went down after "${step}" (the apply had succeeded): boot confirms level 2 and re-applies it`, async () => {
      await t.crashAt(step);
      const k = t.host.reboot();
      const b = await t.host.cli(['boot']);
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.stderr, /had completed .* confirmed/);
      assert.equal(k.patchEnabled(t.l(2)), true, 'the completed level is back');
      const s = await t.status();
      assert.deepEqual(s.quarantined, []);
      assert.equal(s.lastError, null);
      assert.equal(s.appliedLevel, 2);
    });
  }

  for (const step of ['intent', 'loaded'] as const) {
    it(`the host went down after "${step}": level 2 is quarantined, boot re-applies level 1`, async () => {
      await t.crashAt(step);
      const oldBoot = t.host.kernel.bootId;
      const k = t.host.reboot();
      assert.notEqual(k.bootId, oldBoot);
      const b = await t.host.cli(['boot']);
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.stderr, /level 2 .* quarantined/);
      assert.equal(k.patchEnabled(t.l(1)), true, 'the last confirmed level is back');
      assert.equal(k.moduleLoaded(t.l(2)), false);
      const s = await t.status();
      assert.deepEqual(s.quarantined, [2]);
      // Neither the daemon nor a manual update applies it again.
      const d = await t.host.cli(['run', '--once']);
      assert.equal(d.code, 4);
      assert.match(d.stderr, /level 2 is quarantined/);
      const u = await t.host.cli(['update']);
      assert.equal(u.code, 4);
      assert.equal(k.moduleLoaded(t.l(2)), false);
      assert.equal(t.server.checkins.at(-1)?.state, 'needs-attention');
      assert.match(t.server.checkins.at(-1)?.lastError ?? '', /LEVEL_QUARANTINED/);
      // An operator lifts it.
      const q = await t.host.cli(['unquarantine', '2']);
      assert.equal(q.code, 0, q.stderr);
      assert.match(q.stdout, /level 2 may be applied again/);
      const again = await t.host.cli(['update']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(k.patchEnabled(t.l(2)), true);
    });
  }

  it('a confirmed apply is never quarantined by a later reboot', async () => {
    assert.equal((await t.host.cli(['update'])).code, 0);
    const k = t.host.reboot();
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(k.patchEnabled(t.l(2)), true);
    assert.deepEqual((await t.status()).quarantined, []);
  });

  it('a failed apply (refused by the kernel) is not quarantined either', async () => {
    t.host.kernel.failNextLoad = "insmod: can't insert 'x.ko': Invalid argument";
    assert.equal((await t.host.cli(['update'])).code, 4);
    assert.equal(t.journal(), undefined);
    t.host.reboot();
    await t.host.cli(['boot']);
    assert.deepEqual((await t.status()).quarantined, []);
  });
});

describe('kill switches', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('livegraft=off on the kernel command line stops update, boot and run; unload still works', async () => {
    t.host.kernel.setCmdline('BOOT_IMAGE=/vmlinuz ro quiet livegraft=off');
    const loads = t.host.kernel.loads().length;
    const u = await t.host.cli(['update', '--json']);
    assert.equal(u.code, 0, u.stderr);
    const out = JSON.parse(u.stdout) as { summary: string; disabled: { by: string } };
    assert.match(out.summary, /disabled \(kernel command line has livegraft=off\)/);
    assert.equal(out.disabled.by, 'cmdline');
    const d = await t.host.cli(['run', '--once']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stderr, /disabled/);
    const k = t.host.reboot();
    k.setCmdline('ro livegraft=off');
    const b = await t.host.cli(['boot']);
    assert.equal(b.code, 0);
    assert.match(b.stdout, /disabled/);
    assert.deepEqual(k.loads(), []);
    assert.equal(t.host.kernel.loads().length, 0);
    assert.ok(loads > 0);
    const s = await t.status();
    assert.equal(s.disabled?.by, 'cmdline');
    assert.match((await t.host.cli(['status'])).stdout, /DISABLED: +kernel command line has livegraft=off/);
  });

  it('the disable file beside the config does the same; apply and rollback are refused', async () => {
    writeFileSync(join(dirname(t.host.configPath), 'disable'), '');
    const u = await t.host.cli(['update']);
    assert.equal(u.code, 0);
    assert.match(u.stdout, /disabled \(.*disable exists\)/);
    assert.equal(t.host.kernel.moduleLoaded(t.l(2)), false);
    const r = await t.host.cli(['rollback', '--to', '1']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[AGENT_DISABLED\]/);
    const un = await t.host.cli(['unload']);
    assert.equal(un.code, 0, un.stderr);
    assert.equal(t.host.kernel.moduleLoaded(t.l(1)), false);
    rmSync(join(dirname(t.host.configPath), 'disable'));
    assert.equal((await t.host.cli(['update'])).code, 0);
    assert.equal(t.host.kernel.patchEnabled(t.l(2)), true);
  });
});

describe('needs attention: a reverse that stalls stops further patching', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('until an operator runs clear-attention', async () => {
    t.host.kernel.stallTransitions = true;
    t.host.kernel.stallReverse = true;
    const r = await t.host.cli(['update']);
    assert.match(r.stderr, /TRANSITION_REVERSE_STALLED/);
    assert.equal((await t.status()).attention?.code, 'TRANSITION_REVERSE_STALLED');
    t.host.kernel.stallTransitions = false;
    t.host.kernel.stallReverse = false;
    const blocked = await t.host.cli(['update']);
    assert.equal(blocked.code, 4);
    assert.match(blocked.stderr, /^error \[NEEDS_ATTENTION\]: .*clear-attention/m);
    assert.match((await t.host.cli(['boot'])).stderr, /NEEDS_ATTENTION/);
    assert.match((await t.host.cli(['status'])).stdout, /NEEDS ATTENTION/);
    const c = await t.host.cli(['clear-attention']);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /cleared \[TRANSITION_REVERSE_STALLED\]/);
    const u = await t.host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(t.host.kernel.patchEnabled(t.l(2)), true);
  });
});

describe('terminal kernel refusals', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  for (const [what, stderr] of [
    ['signature enforcement', "insmod: can't insert 'x.ko': Key was rejected by service"],
    ['lockdown', "insmod: can't insert 'x.ko': Operation not permitted"],
  ] as const) {
    it(`${what} is KERNEL_REJECTED_SIGNATURE, and the daemon does not retry it`, async () => {
      t.host.kernel.failNextLoad = stderr;
      const r = await t.host.cli(['update']);
      assert.equal(r.code, 4);
      assert.match(r.stderr, /^error \[KERNEL_REJECTED_SIGNATURE\]: .*module\.sig_enforce or lockdown/);
      const loads = t.host.kernel.loads().length;
      for (let i = 0; i < 3; i++) {
        const d = await t.host.cli(['run', '--once']);
        assert.equal(d.code, 4);
        assert.match(d.stderr, /refused an unsigned module .*KERNEL_REJECTED_SIGNATURE\]; not loading anything again/);
      }
      assert.equal(t.host.kernel.loads().length, loads, 'no retry loop');
      assert.equal(t.host.kernel.patchEnabled(t.l(1)), true);
      // A manual update tries once more (an operator may have enrolled the signing key).
      const manual = await t.host.cli(['update']);
      assert.equal(manual.code, 0, manual.stderr);
      assert.equal(t.host.kernel.loads().length, loads + 1);
    });
  }
});

describe('local state damage', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('a corrupt state file is moved aside; the release counter is re-seeded from the kernel', async () => {
    writeFileSync(join(t.host.stateDir, 'state.json'), '\u0000\u0000garbage');
    const s = await t.status();
    assert.match(s.stateWarning ?? '', /not valid JSON/);
    assert.equal(s.highestLevel, 1, 'from what the kernel runs');
    const u = await t.host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    assert.ok(existsSync(join(t.host.stateDir, 'state.json.corrupt')));
    assert.equal(t.host.kernel.patchEnabled(t.l(2)), true);
  });
});

describe('single-instance lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lg-lock-'));
  const clock = { now: () => Date.now(), sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };
  const lock = join(dir, 'agent.lock');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const startOf = (pid: number): string => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '?';
  };

  it('takes over the lock of a dead process', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.pid'], { encoding: 'utf8' }).pid;
    writeFileSync(lock, `${dead} 12345\n`);
    const release = await acquireLock(lock, clock, { timeoutMs: 1_000 });
    assert.match(readFileSync(lock, 'utf8'), new RegExp(`^${process.pid} `));
    release();
    assert.equal(existsSync(lock), false);
  });

  it('waits for a live holder and then gives up with BUSY', async () => {
    const child = spawn('sleep', ['30']);
    try {
      await new Promise((r) => setTimeout(r, 50));
      writeFileSync(lock, `${child.pid} ${startOf(child.pid ?? 0)}\n`);
      const started = Date.now();
      await assert.rejects(acquireLock(lock, clock, { timeoutMs: 600 }), { code: 'BUSY' });
      assert.ok(Date.now() - started >= 500);
    } finally {
      child.kill('SIGKILL');
      rmSync(lock, { force: true });
    }
  });

  it('does not mistake a recycled pid for the holder', async () => {
    const child = spawn('sleep', ['30']);
    try {
      await new Promise((r) => setTimeout(r, 50));
      // Same pid, another start time: the original holder is gone.
      writeFileSync(lock, `${child.pid} 1\n`);
      const release = await acquireLock(lock, clock, { timeoutMs: 1_000 });
      release();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('release leaves a lock someone else holds alone', async () => {
    const release = await acquireLock(lock, clock, { timeoutMs: 1_000 });
    writeFileSync(lock, '999999 1\n');
    release();
    assert.equal(readFileSync(lock, 'utf8'), '999999 1\n');
    rmSync(lock);
    mkdirSync(dir, { recursive: true });
  });
});
