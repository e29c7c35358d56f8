// The build pipeline on real kernels: a fix is submitted once; the server
// plans one job per kernel build its hosts run; a worker builds each level with
// the patch factory and proves it in a VM of that exact Debian kernel before
// it is released; each host gets only its own build's level. A fix the newer
// build already carries is skipped there, and a level whose module makes the
// kernel warn fails validation, is halted, and never reaches a host.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CoverageReport, FixRecord, FleetKernel, JobRecord } from '@livegraft/protocol';
import { api } from './lib/admin.ts';
import { CATALOGUE } from './lib/factory-world.ts';
import {
  bootFleetGuest,
  cli,
  enrol,
  pipelineReleases,
  runWorkerUntilIdle,
  workerTokenFile,
  type FleetGuest,
} from './lib/pipeline-world.ts';
import { agent, viewKernel } from './lib/probe.ts';
import { startServer, type RunningServer } from './lib/server.ts';
import { runTriggers } from './lib/triggers.ts';
import { CACHE, REPO } from './lib/world.ts';

/** A real fix (keyctl, 6.1.177): the older build needs it, the newer one carries it. */
const REAL = 'CVE-2026-63824';
const REAL_DIR = join(CATALOGUE, REAL);
/** A test fix whose module warns when its function runs (keyctl_pkey_query). */
const WARNS_DIR = join(REPO, 'test/vm/fixtures/pipeline/warns');
const WARNS = 'LG-TEST-WARNS';
const WORKER_TIMEOUT_MS = 45 * 60_000;

describe('the build pipeline: submit once, build and validate per kernel build, release, apply', () => {
  let server: RunningServer;
  let tokenFile = '';
  let releases: string[] = [];
  const guests = new Map<string, FleetGuest>();
  const kernelIdOf = new Map<string, string>();
  const dir = join(CACHE, 'pipeline');

  const plan = async (fixId: string): Promise<Map<string, FixRecord['plan'][number]>> => {
    const fix = await api<FixRecord>(server, 'GET', `/api/v1/fixes/${fixId}`);
    return new Map(fix.plan.map((p) => [p.release, p]));
  };

  before(async () => {
    releases = await pipelineReleases('6.1.187');
    rmSync(dir, { recursive: true, force: true });
    server = await startServer(join(dir, 'server'), ['--push-spread', '0']);
    tokenFile = await workerTokenFile(server, dir);
    for (const r of releases) {
      const g = await bootFleetGuest(`pipeline-${r}`, r, server.port, [REAL_DIR, WARNS_DIR]);
      guests.set(r, g);
      await enrol(g.guest, server);
      // A check-in tells the server the host's kernel (no level exists yet: "unsupported", exit 3).
      const c = await agent(g.guest, 'check --json');
      assert.equal(
        (c.json as { appliedLevel?: number } | undefined)?.appliedLevel,
        0,
        `check: ${c.stdout}\n${c.stderr}`,
      );
    }
  });
  after(async () => {
    for (const g of guests.values()) await g.close();
    await server?.stop();
  });

  it('the server knows the fleet: one host on each kernel build', async () => {
    const kernels = await api<FleetKernel[]>(server, 'GET', '/api/v1/fleet/kernels');
    for (const r of releases) {
      const k = kernels.find((x) => x.release === r);
      assert.ok(k, `${r} is not among ${kernels.map((x) => x.release).join(', ')}`);
      assert.equal(k.hosts, 1);
      kernelIdOf.set(r, k.kernelId);
    }
  });

  it('a real fix is planned per build: to build on the older one, already fixed on the newer one', async () => {
    const out = await cli(server, ['fixes', 'submit', REAL_DIR, '--json']);
    const fix = JSON.parse(out) as FixRecord;
    assert.equal(fix.id, REAL);
    const p = new Map(fix.plan.map((e) => [e.release, e]));
    assert.equal(p.get(releases[0] ?? '')?.state, 'to-build');
    assert.equal(p.get(releases[1] ?? '')?.state, 'already-fixed');
    assert.match(p.get(releases[1] ?? '')?.version ?? '', /^6\.1\.\d+/);
  });

  it('a worker builds the level for the older build, validates it in a VM of that kernel, and it is released', async () => {
    const log = await runWorkerUntilIdle(server, tokenFile, WORKER_TIMEOUT_MS);
    console.log(
      log
        .split('\n')
        .filter((l) => / job /.test(l))
        .join('\n'),
    );
    const p = await plan(REAL);
    const entry = p.get(releases[0] ?? '');
    assert.equal(entry?.state, 'released', JSON.stringify(entry));
    assert.equal(entry?.level, 1);
    const jobs = await api<JobRecord[]>(server, 'GET', '/api/v1/jobs');
    const job = jobs.find((j) => j.fixId === REAL && j.release === releases[0]);
    assert.equal(job?.validation?.result, 'passed', JSON.stringify(job?.validation));
    const t = job?.validation?.triggers.find((x) => x.fixId === REAL);
    assert.deepEqual([t?.before, t?.after, t?.afterRollback], ['VULNERABLE', 'FIXED', 'VULNERABLE']);
    assert.equal(job?.validation?.workload.failed, 0);
    assert.ok((job?.validation?.workload.operations ?? 0) > 0);
    assert.match(job?.validation?.kernelVersion ?? '', /Debian/);
  });

  it("each host gets only its own build's level: the older one is fixed live, the newer one needs nothing", async () => {
    const [older, newer] = releases.map((r) => guests.get(r)?.guest);
    assert.ok(older && newer);
    const before = await runTriggers(older, [REAL_DIR]);
    assert.equal(before.get(REAL), 'VULNERABLE');
    const up = await agent(older, 'update --json', 600_000);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    const view = await viewKernel(older);
    assert.equal([...view.patches.values()][0]?.enabled, '1');
    assert.equal((await runTriggers(older, [REAL_DIR])).get(REAL), 'FIXED');
    // Nothing was released for the newer build: the server has no level for it (exit 3, "not supported").
    const none = await agent(newer, 'update --json', 600_000);
    assert.ok(none.code === 0 || none.code === 3, `${none.stdout}\n${none.stderr}`);
    assert.equal((await viewKernel(newer)).patches.size, 0);
    assert.equal((await runTriggers(newer, [REAL_DIR])).get(REAL), 'FIXED', 'the newer build carries the fix itself');
  });

  it('a level whose module warns fails validation on every build, is halted, and never reaches a host', async () => {
    const fix = JSON.parse(await cli(server, ['fixes', 'submit', WARNS_DIR, '--json'])) as FixRecord;
    assert.ok(
      fix.plan.every((e) => e.state === 'to-build'),
      JSON.stringify(fix.plan),
    );
    await runWorkerUntilIdle(server, tokenFile, WORKER_TIMEOUT_MS);
    const p = await plan(WARNS);
    const jobs = await api<JobRecord[]>(server, 'GET', '/api/v1/jobs');
    for (const r of releases) {
      assert.equal(p.get(r)?.state, 'validation-failed', `${r}: ${JSON.stringify(p.get(r))}`);
      const job = jobs.find((j) => j.fixId === WARNS && j.release === r);
      assert.equal(job?.validation?.result, 'failed');
      assert.ok(
        job?.validation?.kernelLog.some((l) => /WARNING:|keyctl_pkey_query: a validation test fix that warns/.test(l)),
        JSON.stringify(job?.validation?.kernelLog),
      );
    }
    const older = guests.get(releases[0] ?? '')?.guest;
    const newer = guests.get(releases[1] ?? '')?.guest;
    assert.ok(older && newer);
    const up = await agent(older, 'update --json', 600_000);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    const names = [...(await viewKernel(older)).patches.keys()];
    assert.deepEqual(
      names.map((n) => n.replace(/^.*_l/, 'l')),
      ['l1'],
      'the older host stays on level 1',
    );
    await agent(newer, 'update --json', 600_000);
    assert.equal((await viewKernel(newer)).patches.size, 0, 'the newer host got the failed level');
    const dmesg = await older.sh('dmesg | grep -c "validation test fix" || true');
    assert.equal(dmesg, '0', 'the failed module ran on a host');
  });

  it('coverage answers CVE by kernel build: applied on the older build, fixed in the newer one', async () => {
    const cov = await api<CoverageReport>(server, 'GET', '/api/v1/coverage');
    const row = cov.rows.find((r) => r.cve === REAL);
    assert.ok(row, 'no coverage row for the real fix');
    const cell = (r: string) => row.cells.find((c) => c.kernelId === kernelIdOf.get(r));
    assert.equal(cell(releases[0] ?? '')?.state, 'applied');
    assert.equal(cell(releases[0] ?? '')?.hostsApplied, 1);
    assert.equal(cell(releases[1] ?? '')?.state, 'fixed-in-build');
    const text = await cli(server, ['coverage']);
    assert.match(text, new RegExp(REAL));
  });
});
