// bench/pipeline: from "fix submitted" to "applied on every host", over a
// fleet of real Debian kernel builds in QEMU guests (TCG), with the real
// server, the real worker (patch factory + VM validation) and the real agent
// daemons on push. Prints one JSON document with the time of each phase.
//
//   npm run bench -- pipeline [--kernels N] [--workers N]
//
// The kernel builds are prepared before the clock starts (a fleet's kernels
// are prepared once, when they first appear; that cost is reported apart).
// The fix is a one-function change every build lacks (bench/fixtures/pipeline-fix).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FixRecord, HostRecord, JobRecord } from '@livegraft/protocol';
import {
  ALL_PARTS,
  ensureKernelBuild,
  listAvailableBuilds,
  pickTestRelease,
} from '../packages/builder/src/kernel/index.ts';
import { spawnRunner } from '../packages/builder/src/runner.ts';
import { api } from '../test/vm/lib/admin.ts';
import {
  bootFleetGuest,
  cli,
  enrol,
  runWorkerUntilIdle,
  workerTokenFile,
  type FleetGuest,
} from '../test/vm/lib/pipeline-world.ts';
import { startServer } from '../test/vm/lib/server.ts';
import { CACHE, REPO } from '../test/vm/lib/world.ts';

const FIX_DIR = join(REPO, 'bench/fixtures/pipeline-fix');
const FIX_ID = 'LG-BENCH-KEYCTL';
const TIMEOUT_MS = 60 * 60_000;

const { values } = parseArgs({
  options: { kernels: { type: 'string', default: '3' }, workers: { type: 'string', default: '1' } },
});
const kernelCount = Number(values.kernels);
const workerCount = Number(values.workers);

/** The factory tests' build, then builds spread over what the archive offers (oldest to newest). */
async function releases(n: number): Promise<string[]> {
  const first = await pickTestRelease(spawnRunner);
  const rest = (await listAvailableBuilds(spawnRunner)).map((b) => b.release).filter((r) => r !== first);
  const picked = [first];
  for (let i = 0; i < n - 1 && rest.length > 0; i++) {
    const at = Math.round(((i + 1) * (rest.length - 1)) / Math.max(1, n - 1));
    const r = rest[Math.min(rest.length - 1, at)];
    if (r !== undefined && !picked.includes(r)) picked.push(r);
  }
  if (picked.length < n) throw new Error(`the archive offers only ${picked.join(', ')}`);
  return picked;
}

const ms = (from: string | null | undefined, to: string | null | undefined): number | null =>
  from && to ? Date.parse(to) - Date.parse(from) : null;

const kernels = await releases(kernelCount);
const dir = join(CACHE, 'bench-pipeline');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const prepare: Record<string, number> = {};
for (const r of kernels) {
  const t = Date.now();
  await ensureKernelBuild(r, { run: spawnRunner, parts: [...ALL_PARTS], log: (l) => console.error(l) });
  prepare[r] = Date.now() - t;
}

const server = await startServer(join(dir, 'server'), ['--push-spread', '0']);
const guests: FleetGuest[] = [];
try {
  const tokenFile = await workerTokenFile(server, dir);
  for (const r of kernels) {
    const g = await bootFleetGuest(`bench-pipeline-${r}`, r, server.port, [FIX_DIR]);
    guests.push(g);
    await enrol(g.guest, server);
    await g.guest.sh('(livegraft-agent run > /tmp/daemon.log 2>&1 &)');
  }
  // Every host has checked in and holds its push stream before the clock starts.
  const until = Date.now() + 120_000;
  while (
    (await api<HostRecord[]>(server, 'GET', '/api/v1/hosts')).filter((h) => h.lastCheckinAt).length < kernels.length
  ) {
    if (Date.now() > until) throw new Error('the hosts did not check in');
    await new Promise((r) => setTimeout(r, 500));
  }
  await new Promise((r) => setTimeout(r, 3000));

  const t0 = Date.now();
  const submitted = JSON.parse(await cli(server, ['fixes', 'submit', FIX_DIR, '--json'])) as FixRecord;
  const planMs = Date.now() - t0;
  const workers = Array.from({ length: workerCount }, () => runWorkerUntilIdle(server, tokenFile, TIMEOUT_MS));
  const appliedAt = new Map<string, number>();
  while (appliedAt.size < kernels.length) {
    if (Date.now() - t0 > TIMEOUT_MS) throw new Error('not every host applied the fix in time');
    for (const h of await api<HostRecord[]>(server, 'GET', '/api/v1/hosts'))
      if (h.appliedLevel > 0 && !appliedAt.has(h.id)) appliedAt.set(h.id, Date.now() - t0);
    await new Promise((r) => setTimeout(r, 250));
  }
  const totalMs = Date.now() - t0;
  await Promise.all(workers);
  const fix = await api<FixRecord>(server, 'GET', `/api/v1/fixes/${FIX_ID}`);
  const jobs = (await api<JobRecord[]>(server, 'GET', '/api/v1/jobs')).filter((j) => j.fixId === FIX_ID);
  const hosts = await api<HostRecord[]>(server, 'GET', '/api/v1/hosts');
  const perKernel = kernels.map((r) => {
    const job = jobs.find((j) => j.release === r);
    const entry = fix.plan.find((p) => p.release === r);
    const host = hosts.find((h) => h.release === r);
    return {
      release: r,
      state: entry?.state,
      queuedMs: ms(job?.createdAt, job?.startedAt),
      buildMs: job?.timings?.buildMs ?? null,
      validateMs: job?.timings?.validateMs ?? null,
      validation: job?.validation?.result ?? null,
      validationTimings: job?.validation?.timings ?? null,
      /** Job finished (result received) to level released. */
      releaseMs: ms(job?.finishedAt, entry?.state === 'released' ? entry.updatedAt : null),
      /** Level released to the host's report of it applied (push, download, apply, report). */
      pushAndApplyMs:
        entry?.updatedAt && host ? (appliedAt.get(host.id) ?? 0) - (Date.parse(entry.updatedAt) - t0) : null,
      appliedAtMs: host ? (appliedAt.get(host.id) ?? null) : null,
      agentApplyMs: host?.lastApply?.durationMs ?? null,
    };
  });
  console.log(
    JSON.stringify(
      {
        benchmark: 'pipeline',
        kernels,
        workers: workerCount,
        fix: FIX_ID,
        prepareKernelMs: prepare,
        planMs,
        plannedStates: submitted.plan.map((p) => p.state),
        totalMs,
        targetMs: 15 * 60_000,
        perKernel,
      },
      null,
      2,
    ),
  );
} finally {
  for (const g of guests) await g.close();
  await server.stop();
}
