import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { kernelIdFromProcVersion } from '@livegraft/protocol';
import { parseBuildIdNotes, readKernelIdentity } from '../src/kernel/identity.ts';
import { elfNote } from './helpers/elf.ts';
import { BUILD_ID, FakeKernel, PROC_VERSION, RELEASE } from './helpers/fake-kernel.ts';

describe('parseBuildIdNotes', () => {
  it('finds the GNU build-id after other notes, honouring 4-byte padding', () => {
    const notes = Buffer.concat([
      elfNote('Xen', 6, Buffer.from('abcde')), // desc of 5 bytes: padded to 8
      elfNote('GNU', 1, Buffer.from([0, 0, 0, 0])), // GNU but not type 3
      elfNote('GNU', 3, Buffer.from('deadbeef00112233', 'hex')),
    ]);
    assert.equal(parseBuildIdNotes(notes), 'deadbeef00112233');
  });

  it('returns undefined without a build-id, and for a truncated stream', () => {
    assert.equal(parseBuildIdNotes(elfNote('Linux', 3, Buffer.from([1, 2, 3, 4]))), undefined);
    const full = elfNote('GNU', 3, Buffer.from(BUILD_ID, 'hex'));
    assert.equal(parseBuildIdNotes(full.subarray(0, full.length - 4)), undefined);
    assert.equal(parseBuildIdNotes(Buffer.alloc(0)), undefined);
  });
});

describe('readKernelIdentity', () => {
  it('reads release, version, id and build-id from the fake tree', () => {
    const root = mkdtempSync(join(tmpdir(), 'lg-id-'));
    try {
      const k = new FakeKernel(root);
      const id = readKernelIdentity({ sysRoot: k.sys, procRoot: k.proc });
      assert.equal(id.release, RELEASE);
      assert.equal(id.procVersion, PROC_VERSION);
      assert.equal(id.id, kernelIdFromProcVersion(PROC_VERSION));
      assert.equal(id.version, '#1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2025-01-01)');
      assert.equal(id.buildId, BUILD_ID);
      // Only the first line of /proc/version counts.
      writeFileSync(join(k.proc, 'version'), `${PROC_VERSION}\nsomething else\n`);
      assert.equal(readKernelIdentity({ sysRoot: k.sys, procRoot: k.proc }).id, id.id);
      rmSync(join(k.sys, 'kernel/notes'));
      assert.equal(readKernelIdentity({ sysRoot: k.sys, procRoot: k.proc }).buildId, undefined);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('fails with a code when /proc/version is missing', () => {
    const root = mkdtempSync(join(tmpdir(), 'lg-id-'));
    try {
      assert.throws(() => readKernelIdentity({ sysRoot: root, procRoot: root }), {
        code: 'KERNEL_IDENTITY_UNREADABLE',
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
