// Real-kernel proof: the example fixes, built by the real builder, published on
// the real server, applied by the bundled agent inside a QEMU guest running the
// current Debian kernel. Every assertion is on what the guest itself shows.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createWorld, publish, type World } from './lib/world.ts';
import { rootPinArg } from './lib/root-pin.ts';
import { agent, startWorkload, settle, viewKernel, workloadCounts, type KernelView } from './lib/probe.ts';

const REDACTED = 'livegraft.demo_secret=***';
const SECRET = 'livegraft.demo_secret=hunter2';

describe('live patching a running kernel', () => {
  let w: World;
  let name1: string;
  let name2: string;
  let bootId: string;
  let lastOk = 0;

  before(async () => {
    w = await createWorld('livepatch');
    name1 = w.level1.manifest.name;
    name2 = w.level2.manifest.name;
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

  /** Workload still running, no failed read, same boot. */
  async function assertUndisturbed(v: KernelView): Promise<void> {
    const c = await workloadCounts(w.guest);
    assert.equal(c.fail, 0, 'the workload saw failed reads');
    assert.ok(c.ok > lastOk, `the workload stopped making progress (${c.ok} <= ${lastOk})`);
    lastOk = c.ok;
    assert.equal(v.bootId, bootId, 'the guest rebooted');
  }

  it('enrols and reports no patch applied on an unpatched kernel', async () => {
    const before = await viewKernel(w.guest);
    bootId = before.bootId;
    assert.equal(before.patches.size, 0);
    assert.ok(before.cmdline.includes(SECRET), before.cmdline);
    const en = await agent(
      w.guest,
      `enroll --server http://10.0.2.100 --key ${w.server.registrationKey} ${await rootPinArg(w.server)}`,
    );
    assert.equal(en.code, 0, en.stderr);
    const check = await agent(w.guest, 'check');
    assert.equal(check.code, 2, `check should say an update is available: ${check.stdout}${check.stderr}`);
    await startWorkload(w.guest);
  });

  it('applies level 1: the fix is visible and sysfs shows it', async () => {
    const r = await agent(w.guest, 'update --json');
    assert.equal(r.code, 0, r.stderr);
    const v = await viewKernel(w.guest);
    assert.deepEqual([...v.patches.keys()], [name1]);
    assert.deepEqual(v.patches.get(name1), { enabled: '1', transition: '0' });
    assert.ok(v.cmdline.includes(REDACTED) && !v.cmdline.includes('hunter2'), v.cmdline);
    assert.notEqual(v.lastPid, '0', 'level 1 must not hide the last PID');
    assert.equal((await agent(w.guest, 'check')).code, 0, 'check: up to date');
    assert.match((await agent(w.guest, 'uname')).stdout.trim(), new RegExp(`^${w.kernel.release}\\+lg1$`));
    await assertUndisturbed(v);
  });

  it('upgrades to level 2 by atomic replace: both fixes active, level-1 module gone', async () => {
    await publish(w.server, w.level2);
    assert.equal((await agent(w.guest, 'check')).code, 2, 'check: update available');
    const r = await agent(w.guest, 'update --json');
    assert.equal(r.code, 0, r.stderr);
    const v = await viewKernel(w.guest);
    assert.deepEqual([...v.patches.keys()], [name2]);
    assert.deepEqual(v.patches.get(name2), { enabled: '1', transition: '0' });
    assert.deepEqual(v.modules, [name2], 'the replaced level-1 module must be unloaded');
    assert.ok(v.cmdline.includes(REDACTED), v.cmdline);
    assert.equal(v.lastPid, '0', 'level 2 hides the last PID');
    const st = await agent(w.guest, 'status --json');
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /LG-DEMO-0001/);
    assert.match(st.stdout, /LG-DEMO-0002/);
    await assertUndisturbed(v);
  });

  it('rolls back to level 1 live', async () => {
    const r = await agent(w.guest, 'rollback --to 1');
    assert.equal(r.code, 0, r.stderr);
    const v = await viewKernel(w.guest);
    assert.deepEqual([...v.patches.keys()], [name1]);
    assert.deepEqual(v.modules, [name1]);
    assert.ok(v.cmdline.includes(REDACTED), v.cmdline);
    assert.notEqual(v.lastPid, '0');
    await assertUndisturbed(v);
  });

  it('unloads everything: original behaviour is back', async () => {
    const r = await agent(w.guest, 'unload');
    assert.equal(r.code, 0, r.stderr);
    const v = await viewKernel(w.guest);
    assert.equal(v.patches.size, 0);
    assert.deepEqual(v.modules, []);
    assert.ok(v.cmdline.includes(SECRET), v.cmdline);
    assert.notEqual(v.lastPid, '0');
    await assertUndisturbed(v);
  });

  it('refuses a module built for another kernel build, a corrupted module and a non-livepatch module', async () => {
    const up = await agent(w.guest, 'update --json');
    assert.equal(up.code, 0, up.stderr);
    const cases: Array<[string, RegExp]> = [
      [w.bad.otherKernel, /KERNEL_MISMATCH/],
      [w.bad.corrupt, /MODULE_HASH_MISMATCH/],
      [w.bad.notLivepatch, /MODULE_NOT_LIVEPATCH/],
    ];
    for (const [manifest, code] of cases) {
      const r = await agent(w.guest, `apply ${manifest}`);
      assert.notEqual(r.code, 0, `${manifest} was accepted`);
      assert.match(r.stderr, code);
      const v = await viewKernel(w.guest);
      assert.deepEqual([...v.patches.keys()], [name2], 'the applied level changed');
      assert.deepEqual(v.modules, [name2], 'a refused module reached the kernel');
    }
    await assertUndisturbed(await viewKernel(w.guest));
  });

  it('keeps the workload error-free across every step, on one boot', async () => {
    await w.guest.sh('touch /tmp/work.stop');
    const c = await workloadCounts(w.guest);
    assert.equal(c.fail, 0);
    assert.ok(c.ok > 0);
    assert.equal((await viewKernel(w.guest)).bootId, bootId);
  });

  it('re-applies the cached level at boot before any server contact', async () => {
    const seen = w.server.requests.length;
    await w.guest.reboot();
    const afterBoot = await viewKernel(w.guest);
    assert.notEqual(afterBoot.bootId, bootId, 'the guest did not really reboot');
    assert.equal(await w.guest.sh('cat /tmp/boot.rc'), '0', await w.guest.sh('cat /tmp/boot.log'));
    assert.deepEqual([...afterBoot.patches.keys()], [name2]);
    assert.deepEqual(afterBoot.patches.get(name2), { enabled: '1', transition: '0' });
    assert.equal(afterBoot.lastPid, '0');
    assert.ok(afterBoot.cmdline.includes(REDACTED));
    assert.deepEqual(w.server.requests.slice(seen), [], 'the boot-time re-apply talked to the server');
  });
});
