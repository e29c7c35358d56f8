import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { CheckinRequest } from '@livegraft/protocol';
import { HistoryRepository, LAST_SEEN_REFRESH_MS } from '../src/compliance/history.ts';
import type { ComplianceDatabase } from '../src/compliance/schema.ts';
import { HostRepository } from '../src/db/hosts.ts';
import { openDatabase } from '../src/db/open.ts';
import { kernelIdentity, OTHER_KERNEL_ID, PROC_VERSION } from './helpers.ts';

const T0 = Date.parse('2026-05-01T00:00:00.000Z');
const at = (ms: number): Date => new Date(T0 + ms);

describe('compliance history at check-in', () => {
  let dir: string;
  let close: () => Promise<void>;
  let db: Kysely<ComplianceDatabase>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'livegraft-history-'));
    const opened = await openDatabase(dir);
    db = opened.db as unknown as Kysely<ComplianceDatabase>;
    close = () => opened.db.destroy();
    await new HostRepository(opened.db).enroll(
      { id: 'h1', hostname: 'h1', tokenHash: 'd'.repeat(64), kernel: kernelIdentity(), agentVersion: '1' },
      at(0),
    );
  });
  after(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  const report = (over: Partial<CheckinRequest> = {}): CheckinRequest => ({
    kernel: kernelIdentity(),
    appliedLevel: 1,
    state: 'patched',
    agentVersion: '1',
    uptimeSec: 100,
    ...over,
  });

  it('skips repeats for a while, and still records a reboot back to an earlier kernel at once', async () => {
    const history = new HistoryRepository(db);
    await history.recordCheckin('h1', report(), at(1000), ['CVE-2024-0001']);
    await history.recordCheckin('h1', report({ uptimeSec: 110 }), at(11_000), []);
    let h = await history.history('h1');
    assert.equal(h.kernels.length, 1);
    assert.equal(h.kernels[0]?.lastSeen, at(1000).toISOString(), 'a repeat within the refresh time writes nothing');

    await history.recordCheckin('h1', report({ uptimeSec: 200 }), at(1000 + LAST_SEEN_REFRESH_MS), []);
    h = await history.history('h1');
    assert.equal(h.kernels[0]?.lastSeen, at(1000 + LAST_SEEN_REFRESH_MS).toISOString(), 'then last seen moves');

    // Another node records a boot into another kernel; this node then sees the first kernel again.
    const other = new HistoryRepository(db);
    const otherKernel = { ...kernelIdentity(), id: OTHER_KERNEL_ID, procVersion: `${PROC_VERSION} other` };
    await other.recordCheckin('h1', report({ kernel: otherKernel, uptimeSec: 5 }), at(70_000), []);
    await history.recordCheckin('h1', report({ uptimeSec: 6 }), at(75_000), []);
    h = await history.history('h1');
    assert.deepEqual(
      h.kernels.map((k) => k.kernelId),
      [kernelIdentity().id, OTHER_KERNEL_ID, kernelIdentity().id],
      'a lower uptime means a reboot: the full path runs',
    );
    // A new apply (its own time) is never skipped either.
    const apply = {
      action: 'apply' as const,
      ok: true,
      fromLevel: 1,
      toLevel: 2,
      at: at(76_000).toISOString(),
      durationMs: 1,
    };
    await history.recordCheckin('h1', report({ appliedLevel: 2, lastApply: apply, uptimeSec: 7 }), at(77_000), []);
    h = await history.history('h1');
    assert.deepEqual(
      h.levels.map((l) => [l.level, l.to === null]),
      [
        [1, false],
        [1, false],
        [1, false],
        [2, true],
      ],
    );
  });
});
