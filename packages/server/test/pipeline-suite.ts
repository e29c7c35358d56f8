import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  kernelIdFromProcVersion,
  type ApiError,
  type FeedRecord,
  type FixRecord,
  type FleetKernel,
  type CoverageCell,
  type CoverageReport,
  type HaltRecord,
  type JobClaim,
  type JobRecord,
  type PatchRecord,
} from '@livegraft/protocol';
import { ManualClock, startFleetHarness, type FleetHarness, type FleetHarnessOptions } from './fleet-helpers.ts';
import type { DatabaseMaker } from './fleet-suite.ts';
import { affected, loadDefaultDataset } from '@livegraft/inspector';
import { KERNEL_ID, PROC_VERSION } from './helpers.ts';
import { builtResult, fixBundle, patchText, PROC_VERSION_90, workerToken } from './pipeline-helpers.ts';

const KERNEL_90 = kernelIdFromProcVersion(PROC_VERSION_90);

/** A PDF's text as a reader sees it (poppler's pdftotext; the fonts are embedded subsets, so not the raw streams). */
async function pdfText(pdf: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lg-pdf-'));
  try {
    await writeFile(join(dir, 'r.pdf'), pdf);
    const out = spawnSync('pdftotext', [join(dir, 'r.pdf'), '-'], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    return out.stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
const LEASE = 'x-livegraft-lease';

/** The build pipeline over real HTTP, once per storage backend (SQLite, PostgreSQL). */
export function pipelineSuite(backend: string, makeDatabase: DatabaseMaker, skip: string | false = false): void {
  describe(`build pipeline (${backend})`, { skip }, () => {
    const open: FleetHarness[] = [];
    const dirs: string[] = [];
    after(async () => {
      for (const h of open) await h.stop();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });

    interface World {
      h: FleetHarness;
      clock: ManualClock;
      worker: string;
      claim: (workerId?: string) => Promise<JobClaim | undefined>;
      submit: (id: string, over?: Parameters<typeof fixBundle>[1]) => Promise<FixRecord>;
    }

    async function world(o: FleetHarnessOptions = {}, kernels = 2): Promise<World> {
      const clock = new ManualClock();
      const database = await makeDatabase();
      const h = await startFleetHarness({
        ...o,
        config: { jobLeaseSec: 60, ...o.config },
        deps: { clock: clock.now, ...o.deps },
        ...(database === undefined ? {} : { database }),
      });
      open.push(h);
      await h.enroll('web1');
      await h.enroll('web2');
      if (kernels > 1) await h.enroll('db1', { procVersion: PROC_VERSION_90 });
      const worker = await workerToken(h);
      return {
        h,
        clock,
        worker,
        async claim(workerId = 'builder-1:1') {
          const res = await h.call('POST', '/jobs/claim', { token: worker, json: { workerId } });
          assert.ok(res.status === 200 || res.status === 204, `claim: ${res.status} ${res.bytes.toString()}`);
          return res.status === 204 ? undefined : (res.json as JobClaim);
        },
        async submit(id, over = {}) {
          const res = await h.call('POST', '/fixes', { json: { fix: fixBundle(id, over) } });
          assert.equal(res.status, 201, res.bytes.toString());
          return res.json as FixRecord;
        },
      };
    }

    const result = (w: World, claim: JobClaim, body: unknown) =>
      w.h.call('POST', `/jobs/${claim.jobId}/result`, { token: w.worker, json: body });

    it('fleet kernels: each build in use with its host count and versions from /proc/version', async () => {
      const { h } = await world();
      const kernels = await h.ok<FleetKernel[]>('GET', '/fleet/kernels');
      const byId = new Map(kernels.map((k) => [k.kernelId, k]));
      assert.deepEqual(
        { ...byId.get(KERNEL_ID), kernelId: undefined },
        {
          kernelId: undefined,
          release: '6.1.0-18-amd64',
          upstreamVersion: '6.1.76',
          packageVersion: '6.1.76-1',
          hosts: 2,
          latestLevel: 0,
        },
      );
      assert.equal(byId.get(KERNEL_90)?.upstreamVersion, '6.1.90');
      assert.equal(byId.get(KERNEL_90)?.hosts, 1);
    });

    it('plans one entry per fleet kernel: to-build, or already-fixed with the version from fixedIn', async () => {
      const w = await world();
      const fix = await w.submit('raw-icmp', { fixedIn: { '6.1': '6.1.80' } });
      const plan = new Map(fix.plan.map((p) => [p.kernelId, p]));
      assert.equal(plan.get(KERNEL_ID)?.state, 'to-build');
      assert.equal(plan.get(KERNEL_ID)?.jobState, 'queued');
      assert.equal(plan.get(KERNEL_90)?.state, 'already-fixed');
      assert.equal(plan.get(KERNEL_90)?.version, '6.1.80');
      assert.equal(plan.get(KERNEL_90)?.jobId, null);
      const jobs = await w.h.ok<JobRecord[]>('GET', '/jobs');
      assert.deepEqual(
        jobs.map((j) => [j.fixId, j.kernelId, j.state]),
        [['raw-icmp', KERNEL_ID, 'queued']],
      );
      const listed = await w.h.ok<FixRecord[]>('GET', '/fixes');
      assert.deepEqual(
        listed.map((f) => f.id),
        ['raw-icmp'],
      );
      assert.deepEqual((await w.h.ok<FixRecord>('GET', '/fixes/raw-icmp')).sha256, fix.sha256);
    });

    it('refuses bad submissions with a 400 naming the problem', async () => {
      const catalogue = await mkdtemp(join(tmpdir(), 'livegraft-catalogue-'));
      dirs.push(catalogue);
      await mkdir(join(catalogue, 'CVE-2026-63810'));
      await writeFile(
        join(catalogue, 'CVE-2026-63810', 'fix.json'),
        JSON.stringify({
          id: 'shipped-fix',
          cves: ['CVE-2026-63810'],
          commits: [{ id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', subject: 'x' }],
        }),
      );
      const w = await world({ config: { catalogueDir: catalogue } });
      const bad = async (fix: unknown, code: string, says: RegExp): Promise<void> => {
        const res = await w.h.call('POST', '/fixes', { json: { fix } });
        assert.equal(res.status, 400, res.bytes.toString());
        const err = res.json as ApiError;
        assert.equal(err.code, code, err.message);
        assert.match(err.message, says);
      };
      await bad(fixBundle('no-cve', { cves: [] }), 'FIX_NO_CVE', /names no CVE/);
      await bad(fixBundle('x1', {}, { 'upstream.patch': 'this is not a diff\n' }), 'PATCH_INVALID', /no unified diff/);
      const cut = patchText('net/a.c').replace(' d\n', '');
      await bad(fixBundle('x2', {}, { 'upstream.patch': cut }), 'PATCH_INVALID', /cut short/);
      await bad(fixBundle('x3', {}, { 'other.patch': patchText('net/a.c') }), 'FIX_INVALID', /upstream\.patch/);
      await bad(fixBundle('x4', { trigger: { source: 'trigger.c' } }), 'FIX_INVALID', /trigger\.source.*trigger\.c/);
      await bad({ spec: { id: 'x5' }, files: [] }, 'VALIDATION_FAILED', /title|cves/);
      await bad(fixBundle('shipped-fix'), 'FIX_DUPLICATE', /catalogue/);
      const commit = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
      await bad(
        fixBundle('x6', { cves: ['CVE-2026-63810'] }, { 'upstream.patch': patchText('net/a.c', commit) }),
        'FIX_DUPLICATE',
        /catalogue already fixes CVE-2026-63810/,
      );
      await w.submit('first');
      await bad(fixBundle('first'), 'FIX_DUPLICATE', /already submitted/);
      const c2 = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
      const withCommit = fixBundle('second', {}, { 'upstream.patch': patchText('net/b.c', c2) });
      assert.equal((await w.h.call('POST', '/fixes', { json: { fix: withCommit } })).status, 201);
      await bad(
        fixBundle('third', { commits: [{ id: c2.slice(0, 12), subject: 'same' }] }),
        'FIX_DUPLICATE',
        /bbbbbbbbbbbb is already submitted as fix second/,
      );
      // A viewer cannot submit.
      const viewer = await w.h.ok<{ token: string }>('POST', '/tokens', { json: { name: 'v', role: 'viewer' } });
      const res = await w.h.call('POST', '/fixes', { token: viewer.token, json: { fix: fixBundle('v1') } });
      assert.equal(res.status, 403);
    });

    it('worker tokens reach only the job routes; other tokens cannot claim', async () => {
      const w = await world();
      for (const [method, path] of [
        ['GET', '/fixes'],
        ['GET', '/jobs'],
        ['GET', '/feeds'],
        ['GET', '/hosts'],
        ['GET', '/fleet/kernels'],
        ['GET', '/coverage'],
        ['POST', '/patches'],
      ] as const) {
        const res = await w.h.call(method, path, { token: w.worker, ...(method === 'POST' ? { json: {} } : {}) });
        assert.equal(res.status, 403, `${method} ${path} with a worker token: ${res.status}`);
      }
      const res = await w.h.call('POST', '/jobs/claim', { json: { workerId: 'admin' } });
      assert.equal(res.status, 403);
      assert.equal(await w.claim(), undefined);
    });

    it('claim, heartbeat, inputs, result: a validated level is released, signed with its validation, and offered', async () => {
      const w = await world();
      await w.submit('raw-icmp', { fixedIn: { '6.1': '6.1.80' } });
      const claim = await w.claim();
      assert.ok(claim !== undefined);
      assert.equal(claim.kernel.kernelId, KERNEL_ID);
      assert.equal(claim.kernel.packageVersion, '6.1.76-1');
      assert.equal(claim.level, 1);
      assert.equal(claim.attempt, 1);
      assert.equal(claim.previous, null);
      assert.deepEqual(
        claim.fixes.map((f) => f.id),
        ['raw-icmp'],
      );
      assert.equal(await w.claim('builder-2:1'), undefined, 'one job, already held');

      const hb = await w.h.call('POST', `/jobs/${claim.jobId}/heartbeat`, {
        token: w.worker,
        json: { leaseId: claim.leaseId, phase: 'validate' },
      });
      assert.equal(hb.status, 200, hb.bytes.toString());
      const bundle = await w.h.call('GET', `/jobs/${claim.jobId}/fixes/raw-icmp`, { token: w.worker });
      assert.equal(bundle.status, 409, 'no lease header');
      const got = await fetch(`${w.h.server.url}/api/v1/jobs/${claim.jobId}/fixes/raw-icmp`, {
        headers: { authorization: `Bearer ${w.worker}`, [LEASE]: claim.leaseId },
      });
      assert.equal(got.status, 200);
      assert.equal(((await got.json()) as { spec: { id: string } }).spec.id, 'raw-icmp');
      assert.equal((await w.h.ok<JobRecord>('GET', `/jobs/${claim.jobId}`)).state, 'validating');

      // A module for another kernel build, or another level, is refused.
      const other = await result(w, claim, builtResult(claim, 'passed', { kernelId: KERNEL_90 }));
      assert.equal(other.status, 400);
      assert.match((other.json as ApiError).message, /this job builds kernel/);
      const wrongLevel = await result(w, claim, builtResult(claim, 'passed', { level: 2 }));
      assert.equal(wrongLevel.status, 400);
      const notHeld = await result(w, claim, { ...builtResult(claim, 'passed'), leaseId: 'not-the-lease' });
      assert.equal(notHeld.status, 409);
      assert.equal((notHeld.json as ApiError).code, 'LEASE_LOST');

      const done = await result(w, claim, builtResult(claim, 'passed'));
      assert.equal(done.status, 200, done.bytes.toString());
      const job = done.json as JobRecord;
      assert.equal(job.state, 'done');
      assert.equal(job.outcome, 'built');
      assert.equal(job.validation?.result, 'passed');
      const again = await result(w, claim, builtResult(claim, 'passed'));
      assert.equal(again.status, 409, 'a result is taken once');

      const fix = await w.h.ok<FixRecord>('GET', '/fixes/raw-icmp');
      assert.equal(fix.plan.find((p) => p.kernelId === KERNEL_ID)?.state, 'released');
      assert.equal(fix.plan.find((p) => p.kernelId === KERNEL_ID)?.level, 1);
      const patches = await w.h.ok<PatchRecord[]>('GET', `/patches?kernelId=${KERNEL_ID}`);
      assert.deepEqual(
        patches.map((p) => [p.level, p.published]),
        [[1, true]],
      );
      const production = await w.h.ok<FeedRecord>('GET', '/feeds/production');
      assert.equal(production.levels.find((l) => l.kernelId === KERNEL_ID)?.level, 1);
      const log = await w.h.call('GET', `/jobs/${claim.jobId}/log`);
      assert.equal(log.bytes.toString(), 'building...\nok\n');
      const consoleLog = await w.h.call('GET', `/jobs/${claim.jobId}/console`);
      assert.match(consoleLog.bytes.toString(), /Linux version/);
      const logAsWorker = await w.h.call('GET', `/jobs/${claim.jobId}/log`, { token: w.worker });
      assert.equal(logAsWorker.status, 403);

      // The validation summary is in the target's signed custom metadata.
      const ts = await w.h.call('GET', '/tuf/metadata/timestamp.json', { token: null });
      assert.equal(ts.status, 200);
      const snapVersion = (ts.json as { signed: { meta: Record<string, { version: number }> } }).signed.meta[
        'snapshot.json'
      ]?.version;
      const snap = await w.h.call('GET', `/tuf/metadata/${snapVersion}.snapshot.json`, { token: null });
      const tv = (snap.json as { signed: { meta: Record<string, { version: number }> } }).signed.meta['targets.json']
        ?.version;
      const targets = await w.h.call('GET', `/tuf/metadata/${tv}.targets.json`, { token: null });
      const entries = Object.values(
        (targets.json as { signed: { targets: Record<string, { custom: { livegraft: Record<string, unknown> } }> } })
          .signed.targets,
      );
      const v = entries[0]?.custom.livegraft['validation'] as { result: string; worker: string } | undefined;
      assert.equal(v?.result, 'passed');
      assert.equal(v?.worker, 'builder-1:1');

      // The next fix builds level 2 on top of level 1: cumulative.
      await w.submit('second', { fixedIn: { '6.1': '6.1.80' } });
      const next = await w.claim();
      assert.equal(next?.level, 2);
      assert.deepEqual(
        next?.fixes.map((f) => f.id),
        ['raw-icmp', 'second'],
      );
      assert.equal(next?.previous?.level, 1);
      const prev = await fetch(`${w.h.server.url}/api/v1/jobs/${next?.jobId}/previous/manifest`, {
        headers: { authorization: `Bearer ${w.worker}`, [LEASE]: next?.leaseId ?? '' },
      });
      assert.equal(((await prev.json()) as { level: number }).level, 1);
      const mod = await fetch(`${w.h.server.url}/api/v1/jobs/${next?.jobId}/previous/module`, {
        headers: { authorization: `Bearer ${w.worker}`, [LEASE]: next?.leaseId ?? '' },
      });
      assert.equal(mod.status, 200);
      assert.equal(Buffer.from(await mod.arrayBuffer()).length, patches[0]?.size);
    });

    it('a failed validation records the level unpublished and halts it; the next level skips it', async () => {
      const w = await world({}, 1);
      await w.submit('bad-fix');
      const claim = await w.claim();
      assert.ok(claim !== undefined);
      const res = await result(w, claim, builtResult(claim, 'failed'));
      assert.equal(res.status, 200, res.bytes.toString());
      const fix = await w.h.ok<FixRecord>('GET', '/fixes/bad-fix');
      const entry = fix.plan[0];
      assert.equal(entry?.state, 'validation-failed');
      assert.equal(entry?.level, 1);
      assert.match(entry?.reason ?? '', /validation failed: trigger still VULNERABLE/);
      const halts = await w.h.ok<HaltRecord[]>('GET', '/halts');
      assert.deepEqual(
        halts.map((x) => [x.kernelId, x.level]),
        [[KERNEL_ID, 1]],
      );
      const patches = await w.h.ok<PatchRecord[]>('GET', '/patches');
      assert.deepEqual(
        patches.map((p) => [p.level, p.published]),
        [[1, false]],
      );
      const production = await w.h.ok<FeedRecord>('GET', '/feeds/production');
      assert.equal(production.levels.length, 0, 'never offered');
      const enrolled = await w.h.enroll('web9');
      assert.equal((await w.h.checkin(enrolled.token)).desired, undefined);

      await w.submit('good-fix');
      const next = await w.claim();
      assert.equal(next?.level, 2);
      assert.deepEqual(
        next?.fixes.map((f) => f.id),
        ['good-fix'],
        'built from the last released level (none), not the halted one',
      );
    });

    it('other outcomes end the job and set the plan; a build failure on one kernel does not stop the others', async () => {
      const w = await world();
      await w.submit('two-kernels');
      const a = await w.claim('w:1');
      const b = await w.claim('w:2');
      assert.ok(a !== undefined && b !== undefined);
      assert.notEqual(a.kernel.kernelId, b.kernel.kernelId);
      const base = { buildLog: 'patch does not apply', timings: { buildMs: 10, validateMs: 0 } };
      const ra = await result(w, a, {
        ...base,
        leaseId: a.leaseId,
        outcome: 'failed',
        reason: 'PATCH_DOES_NOT_APPLY: hunk 1 of net/x.c failed',
      });
      assert.equal(ra.status, 200, ra.bytes.toString());
      const rb = await result(w, b, {
        ...base,
        leaseId: b.leaseId,
        outcome: 'not-live-patchable',
        reason: 'changes a struct',
      });
      assert.equal(rb.status, 200, rb.bytes.toString());
      const fix = await w.h.ok<FixRecord>('GET', '/fixes/two-kernels');
      const plan = new Map(fix.plan.map((p) => [p.kernelId, p]));
      assert.equal(plan.get(a.kernel.kernelId)?.state, 'failed');
      assert.match(plan.get(a.kernel.kernelId)?.reason ?? '', /PATCH_DOES_NOT_APPLY/);
      assert.equal(plan.get(b.kernel.kernelId)?.state, 'not-live-patchable');
      assert.equal(plan.get(b.kernel.kernelId)?.reason, 'changes a struct');
    });

    it('jobs of one kernel build run in submission order; other kernels go ahead', async () => {
      const w = await world();
      await w.submit('one', { fixedIn: { '6.1': '6.1.80' } });
      await w.submit('two');
      const first = await w.claim('w:1');
      assert.equal(first?.newFix, 'one');
      const second = await w.claim('w:2');
      assert.equal(second?.newFix, 'two');
      assert.equal(second?.kernel.kernelId, KERNEL_90, 'the other kernel is not held up');
      assert.equal(await w.claim('w:3'), undefined, 'fix two on the first kernel waits for fix one there');
      const res = await result(w, first as JobClaim, builtResult(first as JobClaim, 'passed'));
      assert.equal(res.status, 200);
      const third = await w.claim('w:3');
      assert.equal(third?.newFix, 'two');
      assert.equal(third?.kernel.kernelId, KERNEL_ID);
      assert.equal(third?.level, 2);
    });

    it('an expired lease queues the job again; after 3 attempts it fails as worker lost', async () => {
      const w = await world({}, 1);
      await w.submit('slow');
      const c1 = await w.claim('w:1');
      assert.equal(c1?.attempt, 1);
      w.clock.advance(30);
      const hb = await w.h.call('POST', `/jobs/${c1?.jobId}/heartbeat`, {
        token: w.worker,
        json: { leaseId: c1?.leaseId, phase: 'build' },
      });
      assert.equal(hb.status, 200);
      w.clock.advance(61);
      const c2 = await w.claim('w:2');
      assert.equal(c2?.jobId, c1?.jobId);
      assert.equal(c2?.attempt, 2);
      const lost = await w.h.call('POST', `/jobs/${c1?.jobId}/heartbeat`, {
        token: w.worker,
        json: { leaseId: c1?.leaseId, phase: 'build' },
      });
      assert.equal(lost.status, 409);
      assert.equal((lost.json as ApiError).code, 'LEASE_LOST');
      w.clock.advance(61);
      const c3 = await w.claim('w:3');
      assert.equal(c3?.attempt, 3);
      w.clock.advance(61);
      assert.equal(await w.claim('w:4'), undefined);
      const job = await w.h.ok<JobRecord>('GET', `/jobs/${c1?.jobId}`);
      assert.equal(job.state, 'done');
      assert.equal(job.outcome, 'failed');
      assert.match(job.reason ?? '', /worker lost/);
      const fix = await w.h.ok<FixRecord>('GET', '/fixes/slow');
      assert.equal(fix.plan[0]?.state, 'failed');
    });

    it('a job fails with a clear reason when the released level carries a fix that was never submitted', async () => {
      const w = await world({}, 1);
      await w.h.publish(1);
      await w.submit('after-hand-build');
      assert.equal(await w.claim(), undefined);
      const fix = await w.h.ok<FixRecord>('GET', '/fixes/after-hand-build');
      assert.equal(fix.plan[0]?.state, 'failed');
      assert.match(fix.plan[0]?.reason ?? '', /fix-1 that were never submitted/);
    });

    it('gating: a feed that requires validation takes only validated levels, or an audited override', async () => {
      const w = await world();
      const feeds = await w.h.ok<FeedRecord[]>('GET', '/feeds');
      assert.deepEqual(
        feeds.map((f) => [f.name, f.requireValidated]),
        [
          ['canary', false],
          ['production', false],
          ['staging', false],
        ],
        'the feeds a server starts with stay ungated, so hand-published levels roll out as before',
      );
      const ring = await w.h.ok<FeedRecord>('POST', '/feeds', { json: { name: 'ring1', autoPublish: true } });
      assert.equal(ring.requireValidated, true, 'new feeds are gated by default');
      const open = await w.h.ok<FeedRecord>('POST', '/feeds', {
        json: { name: 'lab', autoPublish: true, requireValidated: false },
      });
      assert.equal(open.requireValidated, false);
      await w.h.ok('PATCH', '/feeds/staging', { json: { requireValidated: true, promotesTo: 'production' } });

      await w.h.publish(1); // by hand: no validation
      const level = async (feed: string): Promise<number | undefined> =>
        (await w.h.ok<FeedRecord>('GET', `/feeds/${feed}`)).levels.find((l) => l.kernelId === KERNEL_ID)?.level;
      assert.equal(await level('production'), 1);
      assert.equal(await level('lab'), 1);
      assert.equal(await level('ring1'), undefined, 'a gated feed is not offered an unvalidated level');
      const set = await w.h.call('PUT', `/feeds/ring1/levels/${KERNEL_ID}`, { json: { level: 1 } });
      assert.equal(set.status, 409);
      assert.equal((set.json as ApiError).code, 'NOT_VALIDATED');
      await w.h.ok('POST', '/feeds/canary/promote', { json: { to: 'staging' } });
      assert.equal(await level('staging'), undefined, 'nor promoted one');

      const override = await w.h.call('PUT', `/kernels/${KERNEL_ID}/levels/1/validation`, {
        json: { reason: 'built and tested by hand before the pipeline existed' },
      });
      assert.equal(override.status, 200, override.bytes.toString());
      assert.equal(await level('ring1'), 1, 'the override lets the auto-publish feed take it');
      await w.h.ok('POST', '/feeds/canary/promote', { json: { to: 'staging' } });
      assert.equal(await level('staging'), 1);
      const audit = await w.h.ok<{ action: string }[]>('GET', '/audit?action=level.validation-override');
      assert.equal(audit.length, 1);

      // A pipeline-validated level enters gated feeds on its own (on the other kernel build: the hand-built
      // level 1 above carries a fix never submitted, so the next level of its build cannot be built).
      await w.submit('validated');
      const claim = await w.claim();
      assert.equal(claim?.kernel.kernelId, KERNEL_90);
      assert.equal((await result(w, claim as JobClaim, builtResult(claim as JobClaim, 'passed'))).status, 200);
      const ring1 = await w.h.ok<FeedRecord>('GET', '/feeds/ring1');
      assert.equal(ring1.levels.find((l) => l.kernelId === KERNEL_90)?.level, 1);
    });

    it('coverage: each CVE affecting a fleet kernel build, per build, from no fix to applied on N of M hosts', async () => {
      const w = await world();
      const cve = affected(await loadDefaultDataset(), PROC_VERSION).affected[0]?.id;
      assert.ok(cve !== undefined, 'the shipped CVE data has CVEs affecting 6.1.76');
      const cellOf = async (kernelId: string, id = cve): Promise<CoverageCell | undefined> => {
        const r = await w.h.ok<CoverageReport>('GET', '/coverage');
        assert.equal(r.kernels.length, 2);
        return r.rows.find((x) => x.cve === id)?.cells.find((c) => c.kernelId === kernelId);
      };
      assert.equal((await cellOf(KERNEL_ID))?.state, 'no-fix');
      await w.submit('cov-fix', { cves: [cve], fixedIn: { '6.1': '6.1.80' } });
      assert.deepEqual(
        { ...(await cellOf(KERNEL_ID)) },
        {
          kernelId: KERNEL_ID,
          state: 'queued',
          version: null,
          level: null,
          hostsApplied: 0,
          hosts: 2,
          reason: null,
          fixId: 'cov-fix',
        },
      );
      const fixed = await cellOf(KERNEL_90);
      assert.equal(fixed?.state, 'fixed-in-build');
      assert.equal(fixed?.version, '6.1.80');
      const claim = await w.claim();
      assert.ok(claim !== undefined);
      const hb = { token: w.worker, json: { leaseId: claim.leaseId, phase: 'validate' } };
      assert.equal((await w.h.call('POST', `/jobs/${claim.jobId}/heartbeat`, hb)).status, 200);
      assert.equal((await cellOf(KERNEL_ID))?.state, 'built', 'built, under validation');
      assert.equal((await result(w, claim, builtResult(claim, 'passed', { cves: [cve] }))).status, 200);
      const released = await cellOf(KERNEL_ID);
      assert.equal(released?.state, 'released');
      assert.equal(released?.level, 1);
      const host = await w.h.enroll('web3');
      await w.h.checkin(host.token, { appliedLevel: 1, state: 'patched' });
      const applied = await cellOf(KERNEL_ID);
      assert.equal(applied?.state, 'applied');
      assert.equal(applied?.hostsApplied, 1);
      assert.equal(applied?.hosts, 3);

      // A submitted fix's CVE is covered even when the CVE data does not know it; the worker's reason is kept.
      await w.submit('unknown-cve', { cves: ['CVE-2099-0001'] });
      const c = await w.claim();
      assert.ok(c !== undefined);
      const body = { leaseId: c.leaseId, outcome: 'not-live-patchable', reason: 'changes struct sock', buildLog: '' };
      const r = await result(w, c, { ...body, timings: { buildMs: 1, validateMs: 0 } });
      assert.equal(r.status, 200, r.bytes.toString());
      const npl = await cellOf(c.kernel.kernelId, 'CVE-2099-0001');
      assert.equal(npl?.state, 'not-live-patchable');
      assert.equal(npl?.reason, 'changes struct sock');

      // The compliance report carries the same coverage: JSON, CSV (part=coverage) and PDF.
      const json = await w.h.ok<{ coverage?: CoverageReport }>('GET', '/reports/compliance?format=json');
      const inReport = json.coverage?.rows.find((x) => x.cve === 'CVE-2099-0001');
      assert.equal(inReport?.cells.find((x) => x.kernelId === c.kernel.kernelId)?.state, 'not-live-patchable');
      const csv = (await w.h.call('GET', '/reports/compliance?format=csv&part=coverage')).bytes.toString();
      assert.match(csv, /^cve,severity,cvss,kernel_id,kernel_release,state,/);
      assert.ok(
        csv.split('\r\n').some((l) => l.startsWith('CVE-2099-0001,') && l.includes(',not-live-patchable,')),
        'a CSV line per CVE and build',
      );
      const windowsCsv = (await w.h.call('GET', '/reports/compliance?format=csv')).bytes.toString();
      assert.match(windowsCsv, /^host_id,hostname,cve,/, 'the default CSV stays the exposure windows');
      const pdf = await w.h.call('GET', '/reports/compliance?format=pdf');
      assert.equal(pdf.status, 200);
      assert.ok((await pdfText(pdf.bytes)).includes('Coverage: CVE x kernel build'), 'the PDF has a coverage section');
    });
  });
}
