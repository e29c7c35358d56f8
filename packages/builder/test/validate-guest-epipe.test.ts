// A validation guest that stops reading its console input (it died, or closed
// it) makes the next command's write fail with EPIPE. That must end as the
// guest's own timeout or loss, never as an uncaught error in the builder.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LivegraftError } from '@livegraft/protocol';
import { GUEST_READY_MARKER, ValidationGuest } from '../src/validate/guest.ts';

describe('a validation guest that closes its input', () => {
  let dir = '';
  const oldPath = process.env.PATH;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lg-epipe-'));
    const bin = path.join(dir, 'bin');
    await mkdir(bin);
    // "QEMU" closes its standard input, says it is ready, and hangs.
    await writeFile(
      path.join(bin, 'qemu-system-x86_64'),
      `#!/bin/sh\nexec 0<&-\necho ${GUEST_READY_MARKER}\nexec sleep 600 0<&-\n`,
      { mode: 0o755 },
    );
    process.env.PATH = `${bin}:${oldPath ?? ''}`;
  });
  after(async () => {
    process.env.PATH = oldPath;
    await rm(dir, { recursive: true, force: true });
  });

  it('ends with a typed error when its input is refused, and is killed', async () => {
    const g = new ValidationGuest({
      vmlinuz: 'x',
      initrd: 'x',
      memoryMb: 64,
      qemuArgs: [],
      deadline: Date.now() + 60_000,
    });
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
