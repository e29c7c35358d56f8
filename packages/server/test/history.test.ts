import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { CheckinRequest } from '@livegraft/protocol';
import { HistoryRepository, LAST_SEEN_REFRESH_MS } from '../src/compliance/history.ts';
import type { ComplianceDatabase } from '../src/compliance/schema.ts';
import type { Database } from '../src/db/schema.ts';
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

  it('as the sole writer, records changes without reading back the rows it wrote, to the same history', async () => {
    let historyReads = 0;
    const counted = db.withPlugin({
      transformQuery(args) {
        const from = args.node.kind === 'SelectQueryNode' ? JSON.stringify(args.node.from) : '';
        if (from.includes('_history')) historyReads++;
        return args.node;
      },
      transformResult: (args) => Promise.resolve(args.result),
    });
    const hostRepo = new HostRepository(db as unknown as Kysely<Database>);
    for (const id of ['sole', 'shared'])
      await hostRepo.enroll(
        { id, hostname: id, tokenHash: id.padEnd(64, '0'), kernel: kernelIdentity(), agentVersion: '1' },
        at(0),
      );
    const apply = (from: number, to: number, ms: number) => ({
      action: 'apply' as const,
      ok: true,
      fromLevel: from,
      toLevel: to,
      at: at(ms).toISOString(),
      durationMs: 1,
    });
    const otherKernel = { ...kernelIdentity(), id: OTHER_KERNEL_ID, procVersion: `${PROC_VERSION} other` };
    // Enrolment, an apply, a second apply, a reboot into another kernel, a repeat after the refresh time.
    const steps: Array<[CheckinRequest, number, string[]]> = [
      [report({ appliedLevel: 0, state: 'unpatched' }), 1_000, []],
      [report({ appliedLevel: 1, lastApply: apply(0, 1, 2_000), uptimeSec: 200 }), 3_000, ['CVE-2024-0001']],
      [report({ appliedLevel: 2, lastApply: apply(1, 2, 4_000), uptimeSec: 300 }), 5_000, ['CVE-2024-0002']],
      [report({ kernel: otherKernel, appliedLevel: 0, state: 'unpatched', uptimeSec: 5 }), 6_000, []],
      [
        report({ kernel: otherKernel, appliedLevel: 0, state: 'unpatched', uptimeSec: 99 }),
        6_000 + LAST_SEEN_REFRESH_MS,
        [],
      ],
    ];
    const sole = new HistoryRepository(counted, { soleWriter: true });
    const shared = new HistoryRepository(db);
    for (const [i, [r, ms, cves]] of steps.entries()) {
      const before = historyReads;
      await sole.recordCheckin('sole', r, at(ms), cves);
      if (i > 0) assert.equal(historyReads - before, 0, `step ${i} read the history back`);
      await shared.recordCheckin('shared', r, at(ms), cves);
    }
    assert.ok(historyReads > 0, 'the first check-in reads the history');
    const [a, b] = [await shared.history('sole'), await shared.history('shared')];
    assert.deepEqual(a, b);
    assert.equal(a.kernels.length, 2);
    assert.equal(a.levels.length, 4);
  });
});
