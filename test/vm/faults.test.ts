// Real-kernel proof that a power cut at any step of a kernel change, even with
// state.json lost, boots back into the right patch level, and that a full
// state disk never leaves the agent's records behind the kernel. The power
// cut is a sysrq reset (no sync, no unmount) of a guest whose state disk is
// ext4, as on a real host.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createWorld, publish, type World } from './lib/world.ts';
import { AGENT_COMMAND_BOUND_MS, agent, settle, viewKernel, waitInGuest } from './lib/probe.ts';

const STATE = '/var/lib/livegraft';
/** The agent stops itself (SIGSTOP) once this journal step is on disk: the reset then hits exactly there. */
const STOP_ENV = 'LIVEGRAFT_STOP_AFTER_STEP';

describe('power cuts and a full disk on a real kernel', () => {
  let w: World;

  before(async () => {
    w = await createWorld('faults');
    // The test server has no TLS: the lab-only switch allows plain http without a pinned root.
    const en = await agent(w.guest, `enroll --server http://10.0.2.100 --key ${w.server.registrationKey} --insecure`);
    assert.equal(en.code, 0, en.stderr);
    const up = await agent(w.guest, 'update');
    assert.equal(up.code, 0, up.stderr);
    await publish(w.server, w.level2);
  });
  after(async () => {
    await w?.close();
  });
  // A test that lost its guest leaves a fresh one (same disk) to the next, and a stopped agent is ended.
  beforeEach(async () => {
    await w.guest.reviveIfLost();
    await settle(w.guest);
  });

  /** The livegraft patches sysfs lists as enabled, and that each is settled. */
  async function enabledLevels(): Promise<number[]> {
    const v = await viewKernel(w.guest);
    const levels: number[] = [];
    for (const [name, p] of v.patches) {
      assert.equal(p.transition, '0', `${name} is still in transition`);
      if (p.enabled === '1') levels.push(Number(/_l(\d+)$/.exec(name)?.[1]));
    }
    return levels.sort();
  }

  /** Level 1 running and level 2 allowed again, as before each power cut. */
  async function backToLevel1(): Promise<void> {
    const levels = await enabledLevels();
    if (levels.includes(2)) {
      const rb = await agent(w.guest, 'rollback --to 1');
      assert.equal(rb.code, 0, rb.stderr);
    }
    const st = (await agent(w.guest, 'status --json')).json as { quarantined: number[] };
    if (st.quarantined.includes(2)) assert.equal((await agent(w.guest, 'unquarantine 2')).code, 0);
    assert.deepEqual(await enabledLevels(), [1]);
  }

  /** What the boot-time re-apply of the last boot printed, checked for a clean exit. */
  async function bootLog(): Promise<string> {
    const log = await w.guest.sh('cat /tmp/boot.log');
    assert.equal(await w.guest.sh('cat /tmp/boot.rc'), '0', `boot failed:\n${log}`);
    assert.doesNotMatch(log, /INTERNAL|\n\s+at /, `boot printed an internal error:\n${log}`);
    return log;
  }

  const expected = { intent: 1, loaded: 1, transitioned: 2, 'old-removed': 2 } as const;
  for (const step of ['intent', 'loaded', 'transitioned', 'old-removed'] as const) {
    it(`a power cut after "${step}" with state.json lost: boot re-applies level ${expected[step]}`, async () => {
      await backToLevel1();
      await w.guest.sh(`${STOP_ENV}=${step} livegraft-agent update > /tmp/cut.log 2>&1 & echo $! > /tmp/cut.pid`);
      // Waits by the guest's clock for as long as an agent command may run, and stops waiting if the agent
      // ends before it reaches the step (its own log then says why).
      await waitInGuest(w.guest, 'grep -q "^State:.*stopped" /proc/$(cat /tmp/cut.pid)/status 2>/dev/null', step, {
        boundSec: AGENT_COMMAND_BOUND_MS / 1000 - 60,
        giveUp: '! kill -0 $(cat /tmp/cut.pid) 2>/dev/null',
      }).catch(async (e: Error) => {
        throw new Error(
          `the agent never reached "${step}": ${e.message}\nits output:\n${await w.guest.sh('cat /tmp/cut.log')}`,
        );
      });
      assert.match(await w.guest.sh(`cat ${STATE}/journal.json`), new RegExp(`"step": "${step}"`));
      await w.guest.sh(`rm ${STATE}/state.json`);
      await w.guest.powerCut();
      const log = await bootLog();
      assert.deepEqual(await enabledLevels(), [expected[step]], log);
      const st = (await agent(w.guest, 'status --json')).json as {
        appliedLevel: number;
        quarantined: number[];
        journal: unknown;
      };
      assert.equal(st.appliedLevel, expected[step]);
      assert.equal(st.journal, null);
      // Only a change that had not completed is held against its level.
      assert.deepEqual(st.quarantined, expected[step] === 2 ? [] : [2]);
    });
  }

  it('a power cut after a plain check with state.json lost: boot re-applies level 1', async () => {
    await backToLevel1();
    await agent(w.guest, 'check');
    await w.guest.sh(`rm ${STATE}/state.json`);
    await w.guest.powerCut();
    await bootLog();
    assert.deepEqual(await enabledLevels(), [1]);
  });

  it('a full state disk: rollback completes with its records, refuses the next change up front, and a reboot keeps it', async () => {
    await backToLevel1();
    const up = await agent(w.guest, 'update');
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(await enabledLevels(), [2]);
    /** Fills the state disk, leaving `free` bytes (ext4 blocks are 4 KiB here). */
    const fill = (free: number): Promise<string> =>
      w.guest.sh(
        `rm -f ${STATE}/filler ${STATE}/filler2; dd if=/dev/zero of=${STATE}/filler bs=64k 2>/dev/null; ` +
          `dd if=/dev/zero of=${STATE}/filler2 bs=4k 2>/dev/null; sync; ` +
          `s=$(stat -c %s ${STATE}/filler); truncate -s $((s - ${free})) ${STATE}/filler; sync; df -k ${STATE} | tail -1`,
        240_000,
      );
    await fill(8192);
    const rb = await agent(w.guest, 'rollback --to 1');
    assert.equal(rb.code, 0, rb.stderr);
    assert.deepEqual(await enabledLevels(), [1]);
    const v = await viewKernel(w.guest);
    assert.deepEqual(v.modules, [w.level1.manifest.name], 'the level-2 module was removed');
    assert.match(await w.guest.sh(`cat ${STATE}/state.json`), /"level": 1,/);
    assert.equal((await w.guest.run(`test -e ${STATE}/journal.json`)).code, 1, 'no journal left');

    await fill(4096);
    const u = await agent(w.guest, 'update');
    assert.equal(u.code, 4);
    assert.match(u.stderr, /\[DISK_FULL\]/);
    assert.doesNotMatch(u.stderr, /INTERNAL|\n\s+at /);
    assert.deepEqual(await enabledLevels(), [1], 'the kernel was not changed');

    // A power cut now: the operator's rollback stands after the reboot.
    await w.guest.sh(`rm ${STATE}/filler ${STATE}/filler2`);
    await w.guest.powerCut();
    await bootLog();
    assert.deepEqual(await enabledLevels(), [1]);
  });
});
