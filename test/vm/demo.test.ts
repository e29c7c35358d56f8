// `npm run demo` end to end (scripts/demo.ts, after the build): its one claim
// about the reboot is that the guest reboots with the level applied and the
// agent has it live in /sys/kernel/livepatch before the network is up. The
// demo's output must show that, with the kernel log's times in that order,
// and the unload must come after the reboot.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BOOT_ORDER_LINE, bootOrder } from './lib/boot-order.ts';
import { exec } from './lib/exec.ts';
import { REPO } from './lib/world.ts';

/** Builds four fixes the first time (cached after), then boots and reboots one TCG guest. */
const DEMO_TIMEOUT_MS = 75 * 60_000;

describe('the demo (real kernel)', { timeout: DEMO_TIMEOUT_MS + 60_000 }, () => {
  it('reboots with the level applied and shows it live before the network, then unloads it', async (t) => {
    const r = await exec(process.execPath, ['--import', 'tsx', join(REPO, 'scripts/demo.ts')], {
      cwd: REPO,
      timeoutMs: DEMO_TIMEOUT_MS,
    });
    const out = r.stdout;
    assert.equal(r.code, 0, `demo failed:\n${out.slice(-4000)}\n${r.stderr.slice(-4000)}`);
    const m = BOOT_ORDER_LINE.exec(out);
    assert.ok(m, `no "re-applied before the network" line in the demo output:\n${out.slice(-4000)}`);
    const [, level, module, live, net] = m;
    t.diagnostic(m[0]);
    assert.ok(Number(live) < Number(net), m[0]);
    assert.match(out, new RegExp(`/sys/kernel/livepatch +${module}\\n +${module} +enabled 1`), 'sysfs after reboot');
    const reboot = out.indexOf(`== Reboot with level ${level} applied`);
    const unload = out.indexOf('== Unloading at the end');
    assert.ok(reboot > 0 && unload > reboot, 'the reboot must come before the unload');
    assert.match(out.slice(unload), /\/sys\/kernel\/livepatch +\(empty\)/);
  });
});

describe('reading the boot order from the kernel log', () => {
  const log = [
    '[    2.101223] e1000 0000:00:03.0 eth0: (PCI:33MHz:32-bit) 52:54:00:12:34:56',
    "[    4.812001] livepatch: enabling patch 'livegraft_416b04c80a80_l1'",
    "[    4.990310] livepatch: 'livegraft_416b04c80a80_l1': starting patching transition",
    "[    5.402117] livepatch: 'livegraft_416b04c80a80_l1': patching complete",
    '[    6.020544] e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX',
  ].join('\n');

  it('takes the end of the transition and the link coming up, not the driver probe', () => {
    assert.deepEqual(bootOrder(log, 'livegraft_416b04c80a80_l1'), {
      liveAt: 5.402117,
      liveLine: "livepatch: 'livegraft_416b04c80a80_l1': patching complete",
      netUpAt: 6.020544,
      netLine: 'e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX',
    });
  });

  it('says nothing when the patch never went live in that boot', () => {
    assert.equal(bootOrder(log, 'livegraft_416b04c80a80_l2'), undefined);
  });
});
