// A validation guest that stops reading its console input (it died, or closed
// it) makes the next command's write fail with EPIPE. That must end as the
// guest's own timeout or loss, never as an uncaught error in the builder.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LivegraftError } from '@livegraft/protocol';
import { GUEST_READY_MARKER } from '../src/validate/guest.ts';
import { fakeQemuGuest, fakeQemuOnPath } from './helpers.ts';

describe('a validation guest that closes its input', () => {
  let dir = '';
  let restorePath = (): void => undefined;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lg-epipe-'));
    // "QEMU" closes its standard input, says it is ready, and hangs.
    restorePath = await fakeQemuOnPath(dir, `exec 0<&-\necho ${GUEST_READY_MARKER}\nexec sleep 600 0<&-\n`);
  });
  after(async () => {
    restorePath();
    await rm(dir, { recursive: true, force: true });
  });

  it('ends with a typed error when its input is refused, and is killed', async () => {
    const g = fakeQemuGuest();
    const err = await g.boot(3000).then(
      () => undefined,
      (e: unknown) => e,
    );
    g.kill();
    assert.ok(err instanceof LivegraftError, `expected a typed error, got ${String(err)}`);
    assert.match(err.code, /^VALIDATION_(TIMEOUT|GUEST_LOST)$/);
    // A write after the guest is gone is refused quietly too.
    await g.stop(1000);
  });
});
