// Real-kernel proof that the agent never leaves a host worse off: a stalled
// transition is reversed, a SIGKILL mid-transition is reconciled, a tampered
// module and a downgrade offer are refused, and a kernel that enforces module
// signatures gets one clear terminal error instead of a retry loop.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWorld, publish, type BuiltPatch, type World } from './lib/world.ts';
import { AGENT_COMMAND_BOUND_MS, agent, idempotent, settle, viewKernel, waitInGuest } from './lib/probe.ts';
import { api } from './lib/admin.ts';
import { rootPinArg } from './lib/root-pin.ts';
import { Guest } from './lib/guest.ts';

/** Shorter than the agent's 75 s default to keep CI quick, but still longer than the kernel's 15 s signal period. */
const TRANSITION_TIMEOUT_SEC = 20;

describe('agent safety on a real kernel', () => {
  let w: World;
  let stall: BuiltPatch;
  let next: BuiltPatch;
  let hostId: string;

  before(async () => {
    w = await createWorld('safety', {
      blocker: true,
      extraLevels: {
        3: ['cmdline-redact', 'test/vm/fixtures/fixes/stall-blocker'],
        4: ['cmdline-redact', 'loadavg-lastpid', 'test/vm/fixtures/fixes/stall-blocker'],
      },
    });
    stall = w.extra.get(3) as BuiltPatch;
    next = w.extra.get(4) as BuiltPatch;
    const en = await agent(
      w.guest,
      `enroll --server http://10.0.2.100 --key ${w.server.registrationKey} ${await rootPinArg(w.server)}`,
    );
    assert.equal(en.code, 0, en.stderr);
    await w.guest.sh(
      `node -e 'const f=process.env.LIVEGRAFT_CONFIG;const c=JSON.parse(require("fs").readFileSync(f));c.transitionTimeoutSec=${TRANSITION_TIMEOUT_SEC};require("fs").writeFileSync(f,JSON.stringify(c))'`,
    );
    const up = await agent(w.guest, 'update');
    assert.equal(up.code, 0, up.stderr);
    const hosts = await api<Array<{ id: string }>>(w.server, 'GET', '/api/v1/hosts');
    hostId = hosts[0]?.id ?? '';
  });
  after(async () => {
    await w?.close();
  });
  // A test that lost its guest (a panic) leaves a fresh one on the same disk to the next, and one that left an agent
  // or a transition running leaves them finished: not a cascade.
  beforeEach(async () => {
    await w.guest.reviveIfLost();
    await settle(w.guest);
  });

  // The SIGKILL test below once lost the console shell on a loaded machine: the killed agent was a background child of
  // that shell, and its SIGCHLD reached busybox ash while ash waited for input with echo off (stdio's read, which
  // takes the EINTR for end of input). Guest.run now starts every command in a subshell; this fails if it does not.
  it('keeps the console shell when a background command ends while the shell waits for input', async () => {
    const before = Number(await w.guest.sh('dmesg | grep -c "console shell exited" || true'));
    await w.guest.sh('sleep 2 &');
    // The shell sits idle in its read while the sleep ends (guest time follows the host's clock under TCG).
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    const after = Number(await w.guest.sh('dmesg | grep -c "console shell exited" || true'));
    assert.equal(after - before, 0, 'the console shell exited when its background child ended');
  });

  it('reverses a transition stalled by a sleeping kernel thread and reports the blocker', async () => {
    await w.guest.sh('insmod /fixtures/livegraft_test_blocker.ko');
    await publish(w.server, stall);
    const r = await agent(w.guest, 'update', 240_000);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /TRANSITION_STALLED/);
    assert.match(r.stderr, /lg_blocker/, 'the blocking kernel thread is named');
    assert.match(r.stderr, /lg_blocker_wait/, 'its stack is shown');
    const v = await viewKernel(w.guest);
    assert.deepEqual([...v.patches.keys()], [w.level1.manifest.name], 'level 1 stays active');
    assert.deepEqual(v.modules, [w.level1.manifest.name], 'the stalled module was removed');
    const host = await api<{ lastApply: { ok: boolean; code?: string } | null }>(
      w.server,
      'GET',
      `/api/v1/hosts/${hostId}`,
    );
    assert.equal(host.lastApply?.ok, false);
    assert.equal(host.lastApply?.code, 'TRANSITION_STALLED');
    // The failure halts the rollout of that level fleet-wide.
    const halts = await api<Array<{ kernelId: string; level: number }>>(w.server, 'GET', '/api/v1/halts');
    assert.ok(
      halts.some((h) => h.level === stall.manifest.level && h.kernelId === stall.manifest.kernel.id),
      `level ${stall.manifest.level} was not halted: ${JSON.stringify(halts)}`,
    );
  });

  it('reconciles after a SIGKILL between load and transition complete, without loading twice', async () => {
    const name = stall.manifest.name;
    // An operator resumes the halted rollout (the blocker is still in place).
    await api(w.server, 'DELETE', `/api/v1/halts/${stall.manifest.kernel.id}/${stall.manifest.level}`);
    const enablingBefore = Number(await w.guest.sh(`dmesg | grep -c "enabling patch '${name}'" || true`));
    await w.guest.sh('livegraft-agent update > /tmp/killed.log 2>&1 & echo $! > /tmp/killed.pid');
    // The agent's update may take minutes on a loaded machine: wait for as long as it may run, and stop
    // waiting if it ends before its transition starts (then its own log says why).
    await waitInGuest(
      w.guest,
      `[ "$(cat /sys/kernel/livepatch/${name}/transition 2>/dev/null)" = 1 ]`,
      'transition started',
      {
        boundSec: AGENT_COMMAND_BOUND_MS / 1000 - 60,
        giveUp: '! kill -0 $(cat /tmp/killed.pid) 2>/dev/null',
      },
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\nthe agent's output:\n${await w.guest.sh('cat /tmp/killed.log')}`);
    });
    await w.guest.sh('kill -9 $(cat /tmp/killed.pid)');
    // The kernel finishes the transition on its own once the thread leaves the old function.
    await idempotent(w.guest, 'echo 1 > /sys/module/livegraft_test_blocker/parameters/release');
    await waitInGuest(w.guest, `[ "$(cat /sys/kernel/livepatch/${name}/transition)" = 0 ]`, 'transition finished', {
      boundSec: 300,
    });
    const r = await agent(w.guest, 'update --json');
    assert.equal(r.code, 0, r.stderr);
    const v = await viewKernel(w.guest);
    assert.deepEqual([...v.patches.keys()], [name]);
    assert.deepEqual(v.modules, [name], 'the retired level-1 module was removed by the reconcile');
    const enablingAfter = Number(await w.guest.sh(`dmesg | grep -c "enabling patch '${name}'" || true`));
    assert.equal(enablingAfter - enablingBefore, 1, 'the module was loaded exactly once');
    const st = await agent(w.guest, 'status --json');
    assert.match(st.stdout, new RegExp(`"appliedLevel":\\s*${stall.manifest.level}`));
  });

  it('refuses tampered metadata and a tampered module on the server, keeping the applied level', async () => {
    await publish(w.server, next);
    // Signed targets metadata altered in flight: the new level's length grows by one byte.
    w.front.rewrites.set('/tuf/metadata/', (body) => {
      const doc = body as { signed?: { _type?: string; targets?: Record<string, { length: number }> } };
      for (const t of Object.values(doc.signed?._type === 'targets' ? (doc.signed.targets ?? {}) : {})) t.length += 1;
      return doc;
    });
    try {
      const r = await agent(w.guest, 'update');
      assert.notEqual(r.code, 0, 'tampered metadata was accepted');
      assert.deepEqual([...(await viewKernel(w.guest)).patches.keys()], [stall.manifest.name]);
    } finally {
      w.front.rewrites.clear();
    }
    const stored = join(w.dir, 'server', 'modules', `${next.manifest.module.sha256}.ko`);
    const good = readFileSync(stored);
    const bad = Buffer.from(good);
    bad[bad.length >> 1] = (bad[bad.length >> 1] ?? 0) ^ 0x01;
    writeFileSync(stored, bad);
    try {
      const r = await agent(w.guest, 'update');
      assert.notEqual(r.code, 0, 'a tampered module was accepted');
      assert.match(r.stderr, /hash|length|HASH|LENGTH/);
      const v = await viewKernel(w.guest);
      assert.deepEqual([...v.patches.keys()], [stall.manifest.name]);
      assert.deepEqual(v.modules, [stall.manifest.name], 'nothing was loaded');
    } finally {
      writeFileSync(stored, good);
    }
    const ok = await agent(w.guest, 'update');
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual([...(await viewKernel(w.guest)).patches.keys()], [next.manifest.name]);
  });

  it('refuses a validly signed downgrade offer, but carries out an operator rollback live', async () => {
    // The server itself never offers a downgrade without an operator, so play a compromised one.
    const offer = { kernelId: w.level1.manifest.kernel.id, level: 1, manifest: w.level1.manifest };
    w.front.rewrites.set('/api/v1/hosts/checkin', (body) => ({
      ...(body as object),
      latest: offer,
      desired: { level: 1, reason: 'feed', allowDowngrade: false },
    }));
    try {
      const r = await agent(w.guest, 'update');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /DOWNGRADE_REFUSED/);
      const v = await viewKernel(w.guest);
      assert.deepEqual([...v.patches.keys()], [next.manifest.name]);
      assert.deepEqual(v.modules, [next.manifest.name]);
    } finally {
      w.front.rewrites.clear();
    }

    const host = await api<{ feed?: string }>(w.server, 'GET', `/api/v1/hosts/${hostId}`);
    await api(w.server, 'POST', '/api/v1/rollback', {
      feed: host.feed ?? 'production',
      kernelId: next.manifest.kernel.id,
      level: 1,
    });
    const rb = await agent(w.guest, 'update');
    assert.equal(rb.code, 0, rb.stderr);
    const v = await viewKernel(w.guest);
    assert.deepEqual([...v.patches.keys()], [w.level1.manifest.name]);
    assert.deepEqual(v.modules, [w.level1.manifest.name]);
  });

  it('gets a clear terminal error, and no retry loop, when the kernel enforces module signatures', async () => {
    await w.guest.shutdown();
    const g = new Guest({ ...w.guest.options, append: `${w.guest.options.append ?? ''} module.sig_enforce=1` });
    w.guest = g;
    await g.boot();
    assert.equal(await g.sh('cat /sys/module/module/parameters/sig_enforce'), 'Y');
    assert.notEqual(await g.sh('cat /tmp/boot.rc'), '0', 'the boot-time re-apply should fail');
    assert.match(await g.sh('cat /tmp/boot.log'), /KERNEL_REJECTED_SIGNATURE/);
    assert.equal((await viewKernel(g)).patches.size, 0);
    // The daemon must not hammer the kernel with the same unsigned module.
    await g.sh(
      '(livegraft-agent run --interval 2 > /tmp/run.log 2>&1 &) ; sleep 20; kill $(pidof node) 2>/dev/null; true',
      60_000,
    );
    const rejected = Number(await g.sh('dmesg | grep -c "Loading of unsigned module is rejected" || true'));
    assert.ok(rejected >= 1 && rejected <= 2, `the kernel saw ${rejected} load attempts`);
    const st = await agent(g, 'status');
    assert.match(st.stdout + st.stderr, /KERNEL_REJECTED_SIGNATURE|signing key/);
  });
});
