// bench/checkin-storage: the server's storage work per check-in on SQLite, one part at a time, with
// nothing else in the process: the host token lookup, a batched heartbeat, and a report's write
// (the host row, then the compliance history). The parts the fleet benchmark's profiles
// single out, measured closely enough to compare two commits.
//
//   npm run bench -- checkin-storage [--hosts 3000] [--rounds 8]
//
// Prints one JSON document: CPU-µs per operation, the median and the fastest of the rounds after
// two warm-up rounds.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { CheckinRequest } from '../packages/protocol/src/index.ts';
import { HistoryRepository } from '../packages/server/src/compliance/history.ts';
import type { ComplianceDatabase } from '../packages/server/src/compliance/schema.ts';
import { HeartbeatBuffer } from '../packages/server/src/db/heartbeats.ts';
import { HostRepository } from '../packages/server/src/db/hosts.ts';
import { openDatabase } from '../packages/server/src/db/open.ts';
import { kernelIdentity } from '../packages/server/test/helpers.ts';
import type { Kysely } from 'kysely';
import { int } from './args.ts';

const { values: args } = parseArgs({
  options: {
    hosts: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '8' },
  },
});
const hosts = int('hosts', args.hosts, 100, 100_000);
const rounds = int('rounds', args.rounds, 3, 100);
const WARM_UP_ROUNDS = 2;

/** CPU-µs per operation over the measured rounds: median and fastest. */
async function perOp(round: (r: number) => Promise<number>): Promise<{ median: number; min: number }> {
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const before = process.cpuUsage();
    const ops = await round(r);
    const used = process.cpuUsage(before);
    if (r >= WARM_UP_ROUNDS) out.push((used.user + used.system) / ops);
  }
  out.sort((a, b) => a - b);
  const fix = (x: number | undefined): number => Number((x ?? NaN).toFixed(1));
  return { median: fix(out[Math.floor(out.length / 2)]), min: fix(out[0]) };
}

const dir = mkdtempSync(join(tmpdir(), 'livegraft-bench-storage-'));
const opened = await openDatabase(dir);
try {
  const { db, readSync, writeSync } = opened;
  const repo = new HostRepository(db, undefined, readSync, writeSync);
  const token = (i: number): string => i.toString(16).padStart(64, '0');
  await db.transaction().execute(async (tx) => {
    const bulk = new HostRepository(tx);
    for (let i = 0; i < hosts; i++) {
      await bulk.enroll(
        { id: `h${i}`, hostname: `h${i}`, tokenHash: token(i), kernel: kernelIdentity(), agentVersion: '1' },
        new Date(),
      );
    }
  });

  const tokenLookupUs = await perOp(async () => {
    for (let i = 0; i < hosts; i++) {
      if ((await repo.findByTokenHash(token(i)))?.id !== `h${i}`) throw new Error(`token ${i} not found`);
    }
    return hosts;
  });

  const beats = new HeartbeatBuffer(
    db,
    (err) => {
      throw err;
    },
    writeSync,
  );
  const heartbeatUs = await perOp(async (r) => {
    const at = new Date(Date.UTC(2026, 0, 1, 0, 0, r)).toISOString();
    for (let i = 0; i < hosts; i++) beats.add(`h${i}`, at, r);
    await beats.flush();
    return hosts;
  });

  // Each round every host reports a new level: the host row and the history's level rows change.
  const history = new HistoryRepository(db as unknown as Kysely<ComplianceDatabase>, { soleWriter: true, writeSync });
  const start = Date.UTC(2026, 0, 2);
  const reportWriteUs = await perOp(async (r) => {
    const now = new Date(start + r * 3_600_000);
    for (let i = 0; i < hosts; i++) {
      const report: CheckinRequest = {
        kernel: kernelIdentity(),
        appliedLevel: r + 1,
        state: 'patched',
        agentVersion: '1',
        uptimeSec: 86_400 + r * 3600,
        lastApply: {
          action: 'apply',
          ok: true,
          fromLevel: r,
          toLevel: r + 1,
          at: new Date(now.getTime() - 1000).toISOString(),
          durationMs: 900,
        },
      };
      await repo.checkin(`h${i}`, report, now);
      await history.recordCheckin(`h${i}`, report, now, ['CVE-2024-1086']);
    }
    return hosts;
  });

  console.log(
    JSON.stringify({
      bench: 'checkin-storage',
      at: new Date().toISOString(),
      hosts,
      rounds,
      tokenLookupUs,
      heartbeatUs,
      reportWriteUs,
      loadAvg: loadavg().map((l) => Number(l.toFixed(2))),
    }),
  );
} finally {
  await opened.db.destroy();
  rmSync(dir, { recursive: true, force: true });
}
