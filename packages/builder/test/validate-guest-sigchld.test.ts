// The validation guest's console shell is busybox ash on a terminal with echo
// off, as in the guest's init. Such an ash reads its commands with stdio, and
// a SIGCHLD arriving while it waits for input (a background command, such as
// the workload, ending) interrupts that read: ash takes the EINTR for end of
// input and exits. Commands therefore run in a subshell, so the console shell
// has no background children. Here "QEMU" is that same shell on a pseudo-
// terminal; without the subshell, it exits and the guest is lost.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { GUEST_READY_MARKER } from '../src/validate/guest.ts';
import { fakeQemuGuest, fakeQemuOnPath } from './helpers.ts';

/** From busybox-static, which the set-up installs for the guests' userland. */
const BUSYBOX = '/bin/busybox';

describe('a validation guest whose command leaves a background child', () => {
  let dir = '';
  let restorePath = (): void => undefined;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lg-sigchld-'));
    restorePath = await fakeQemuOnPath(
      dir,
      `exec script -qfec 'stty -echo -onlcr; echo ${GUEST_READY_MARKER}; PS1= exec ${BUSYBOX} sh' /dev/null\n`,
    );
  });
  after(async () => {
    restorePath();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps its shell when the child ends while the shell waits for input', async () => {
    const g = fakeQemuGuest();
    try {
      await g.boot(20_000);
      assert.equal((await g.run('sleep 1 &', 20_000)).code, 0);
      // The shell is idle, reading, when the sleep ends.
      await sleep(3_000);
      const r = await g.run('echo alive', 20_000);
      assert.equal(r.out.trim(), 'alive');
    } finally {
      g.kill();
    }
  });
});
