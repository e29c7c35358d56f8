// The apply history is written in batches: what a host reported is in this
// node's reads at once and in the database after a flush, each apply once, and
// a batch that could not be written is noted again at the host's next report.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import type { ApplyResult } from '@livegraft/protocol';
import { ApplyLog } from '../src/dashboard/applies.ts';
import { HostRepository } from '../src/db/hosts.ts';
import { openDatabase } from '../src/db/open.ts';
import { kernelIdentity, KERNEL_ID } from './helpers.ts';

const T0 = Date.parse('2026-05-01T00:00:00.000Z');
const apply = (n: number, over: Partial<ApplyResult> = {}): ApplyResult => ({
  at: new Date(T0 + n * 1000).toISOString(),
  action: 'apply',
  fromLevel: n - 1,
  toLevel: n,
  ok: true,
  durationMs: 1200,
  ...over,
});

describe('the apply history, written in batches', () => {
  let dir: string;
  let db: Kysely<unknown>;
  const errors: unknown[] = [];
  let log: ApplyLog;
  const stored = async (): Promise<number> =>
    Number((await sql<{ n: number }>`select count(*) as n from host_applies`.execute(db)).rows[0]?.n);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'livegraft-applies-'));
    const opened = await openDatabase(dir);
    db = opened.db as unknown as Kysely<unknown>;
    const hosts = new HostRepository(opened.db);
    for (const id of ['h1', 'h2'])
      await hosts.enroll(
        { id, hostname: id, tokenHash: id.repeat(32), kernel: kernelIdentity(), agentVersion: '1' },
        new Date(T0),
      );
    log = new ApplyLog(
      db,
      () => new Date(T0 + 3_600_000),
      (err) => errors.push(err),
    );
  });
  after(async () => {
    await log.flush();
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it("shows a noted apply in this node's reads at once, stores it once, and in the database after the flush", async () => {
    log.note('h1', KERNEL_ID, apply(1));
    log.note('h1', KERNEL_ID, apply(1)); // the same report again: no second row
    log.note('h2', KERNEL_ID, apply(1));
    log.note('h1', KERNEL_ID, apply(2));
    assert.equal(await stored(), 0, 'nothing is written before the batch');
    const h1 = await log.forHost('h1', 10);
    assert.deepEqual(
      h1.map((a) => [a.toLevel, a.hostname]),
      [
        [2, 'h1'],
        [1, 'h1'],
      ],
    );
    assert.equal(await stored(), 3);
    assert.equal((await log.recent(10)).length, 3);
    assert.deepEqual(errors, []);
  });

  it('notes an apply again after its batch failed to write, so the next report stores it', async () => {
    await sql`alter table host_applies rename to host_applies_away`.execute(db);
    log.note('h2', KERNEL_ID, apply(2, { ok: false, code: 'TRANSITION_STALLED', message: 'stalled' }));
    await log.flush();
    assert.equal(errors.length, 1, 'the failed write is reported');
    await sql`alter table host_applies_away rename to host_applies`.execute(db);
    const before = await stored();
    log.note('h2', KERNEL_ID, apply(2, { ok: false, code: 'TRANSITION_STALLED', message: 'stalled' }));
    const h2 = await log.forHost('h2', 10);
    assert.equal(await stored(), before + 1);
    assert.deepEqual(
      h2.map((a) => [a.toLevel, a.ok, a.code]),
      [
        [2, false, 'TRANSITION_STALLED'],
        [1, true, undefined],
      ],
    );
  });
});
