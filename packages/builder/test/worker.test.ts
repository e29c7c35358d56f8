import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LivegraftError, isLivegraftError, type JobClaim, type JobResult } from '@livegraft/protocol';
import { JobClient, LEASE_HEADER } from '../src/worker/client.ts';
import { TOKEN_ENV, workerConfig } from '../src/worker/config.ts';
import { BoundedLog, errorOutcome, skippedOutcome, writeFixDir } from '../src/worker/job.ts';
import { runWorker } from '../src/worker/worker.ts';
import { kernelLogProblems } from '../src/validate/validate.ts';
import { verdictOf, triggerCommand } from '../src/validate/triggers.ts';
import { parseLdd } from '../src/validate/image.ts';

const KERNEL_ID = 'a'.repeat(64);
const claim = (over: Partial<JobClaim> = {}): JobClaim => ({
  jobId: 'job-1',
  leaseId: 'lease-1',
  leaseExpiresAt: new Date(Date.now() + 120_000).toISOString(),
  attempt: 1,
  kernel: {
    kernelId: KERNEL_ID,
    release: '6.1.0-50-amd64',
    procVersion: 'Linux version 6.1.0-50-amd64',
    packageVersion: null,
  },
  level: 1,
  fixes: [{ id: 'CVE-2026-1', sha256: 'b'.repeat(64) }],
  newFix: 'CVE-2026-1',
  previous: null,
  ...over,
});

describe('job outcomes', () => {
  it('reads a fixedIn skip as already fixed, with the version', () => {
    assert.deepEqual(skippedOutcome('already fixed in 6.1.187 (the fix entered 6.1 in 6.1.177)'), {
      outcome: 'already-fixed',
      reason: 'already fixed in 6.1.187 (the fix entered 6.1 in 6.1.177)',
      version: '6.1.187',
    });
    assert.equal(skippedOutcome("compiles to no change in 6.1.0-50-amd64's configuration").outcome, 'not-affected');
  });

  it('maps builder errors: the new fix skipped, a unit not built, a refusal, anything else', () => {
    const nothing = new LivegraftError('NOTHING_TO_BUILD', 'nothing', {
      details: {
        skipped: [{ id: 'F', cves: [], reason: 'already fixed in 6.1.190 (the fix entered 6.1 in 6.1.180)' }],
      },
    });
    assert.equal(errorOutcome(nothing, 'F').outcome, 'already-fixed');
    assert.equal(errorOutcome(nothing, 'G').outcome, 'failed');
    assert.equal(errorOutcome(new LivegraftError('UNIT_NOT_BUILT', 'x.c is not built'), 'F').outcome, 'not-affected');
    const refused = errorOutcome(new LivegraftError('NOT_LIVE_PATCHABLE', 'changes a data object'), 'F');
    assert.equal(refused.outcome, 'not-live-patchable');
    assert.match(refused.reason ?? '', /NOT_LIVE_PATCHABLE: changes a data object/);
    const broken = errorOutcome(new LivegraftError('PATCH_DOES_NOT_APPLY', 'hunk 2 of a.patch fails'), 'F');
    assert.deepEqual(broken, { outcome: 'failed', reason: 'PATCH_DOES_NOT_APPLY: hunk 2 of a.patch fails' });
  });
});

describe('the build log', () => {
  it('keeps the start and the end within its budget', () => {
    const log = new BoundedLog(2000);
    for (let i = 0; i < 1000; i++) log.add(`line ${i} ${'x'.repeat(20)}`);
    const text = log.text();
    assert.ok(text.length <= 2100, `${text.length} bytes`);
    assert.match(text, /^line 0 /);
    assert.match(text, /line 999 x+\n$/);
    assert.match(text, /lines left out/);
  });
});

describe('fix bundles on disk', () => {
  it('writes fix.json and the files, and refuses a name that would leave the directory', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lg-fixdir-'));
    try {
      const spec = { id: 'F', title: 't', cves: ['CVE-2026-1'], patches: ['a.patch'] };
      await writeFixDir({ spec, files: [{ name: 'a.patch', content: Buffer.from('diff').toString('base64') }] }, dir);
      assert.equal(await readFile(path.join(dir, 'a.patch'), 'utf8'), 'diff');
      assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'fix.json'), 'utf8')), spec);
      await assert.rejects(
        writeFixDir({ spec, files: [{ name: 'fix.json', content: '' }] }, dir),
        (e: unknown) => isLivegraftError(e) && e.code === 'FIX_INVALID',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('validation helpers', () => {
  it('finds warnings, oopses, lockdep and RCU stalls in the kernel log, not ordinary livepatch lines', () => {
    const dmesg = [
      '[   12.1] livepatch: enabling patch livegraft_416b04c80a80_l2',
      '[   12.2] livepatch: tainting kernel with TAINT_LIVEPATCH',
      '[   13.0] WARNING: CPU: 0 PID: 77 at net/core/sock_map.c:100 sock_map_update_common+0x1/0x2',
      '[   14.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:',
      '[   15.0] WARNING: possible circular locking dependency detected',
      '[   16.0] BUG: kernel NULL pointer dereference, address: 0000000000000000',
    ].join('\n');
    const found = kernelLogProblems(dmesg);
    assert.equal(found.length, 4);
    const jump = '[462368.4] watchdog: BUG: soft lockup - CPU#0 stuck for 430591s! [V8Worker:1590]';
    const real = '[62.4] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:90]';
    assert.deepEqual(kernelLogProblems(`${jump}\n${real}`, 600), [real], 'a clock jump is not a lockup');
    assert.ok(found.every((l) => !l.includes('TAINT_LIVEPATCH')));
  });

  it('reads a trigger verdict from its last verdict line; a crash or UNSUPPORTED is ERROR', () => {
    assert.equal(verdictOf('probing\nVULNERABLE\n', 0), 'VULNERABLE');
    assert.equal(verdictOf('FIXED', 0), 'FIXED');
    assert.equal(verdictOf('FIXED', 139), 'ERROR');
    assert.equal(verdictOf('UNSUPPORTED: no e1000 device', 0), 'ERROR');
    assert.equal(verdictOf('', 0), 'ERROR');
    assert.match(triggerCommand({ fixId: 'X', runAs: 'user' }, 30), /timeout 30 su -s \/bin\/sh -c \/triggers\/X user/);
  });

  it('reads the libraries ldd lists, the loader included', () => {
    const ldd = [
      '\tlinux-vdso.so.1 (0x00007ffd)',
      '\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007f)',
    ].join('\n');
    assert.deepEqual(parseLdd(ldd), ['/lib/x86_64-linux-gnu/libstdc++.so.6', '/lib64/ld-linux-x86-64.so.2']);
  });
});

describe('worker configuration', () => {
  const agent = process.execPath; // any existing file stands in for the bundle
  it('names the option and the problem', () => {
    const bad = (f: Parameters<typeof workerConfig>[0], re: RegExp, env: NodeJS.ProcessEnv = {}): void =>
      assert.throws(
        () => workerConfig({ agent, ...f }, env),
        (e: unknown) => isLivegraftError(e) && e.code === 'USAGE' && re.test(e.message),
      );
    bad({}, /--server is required/);
    bad({ server: '127.0.0.1:3000', tokenFile: '/x' }, /--server 127\.0\.0\.1:3000: not a URL; give the scheme too/);
    bad({ server: 'ftp://example.org', tokenFile: '/x' }, /use an http:\/\/ or https:\/\/ URL/);
    bad(
      { server: 'https://example.org', tokenFile: '/nonexistent/token' },
      /--token-file \/nonexistent\/token: cannot read it \(ENOENT\)/,
    );
    bad({ server: 'https://example.org' }, new RegExp(`--token-file is required .* or set ${TOKEN_ENV}`));
    bad({ server: 'https://example.org', poll: '0' }, /--poll 0: give a whole number of seconds from 1/, {
      [TOKEN_ENV]: 't',
    });
    bad(
      { server: 'https://example.org', agent: '/nonexistent/agent.mjs' },
      /--agent \/nonexistent\/agent\.mjs: no agent bundle/,
      { [TOKEN_ENV]: 't' },
    );
  });

  it('reads the token from the file, trimmed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lg-worker-'));
    try {
      const f = path.join(dir, 'token');
      await writeFile(f, 'lgw_secret\n', { mode: 0o600 });
      const c = workerConfig(
        { server: 'https://example.org', tokenFile: f, agent, id: 'w1', poll: '2', once: true },
        {},
      );
      assert.equal(c.token, 'lgw_secret');
      assert.equal(c.workerId, 'w1');
      assert.equal(c.pollMs, 2000);
      assert.equal(c.maxJobs, 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A stand-in server for the job routes, over real HTTP. */
class FakeJobServer {
  readonly requests: {
    method: string;
    url: string;
    auth: string | undefined;
    lease: string | undefined;
    body: string;
  }[] = [];
  jobs: JobClaim[] = [];
  results = new Map<string, JobResult>();
  heartbeatStatus = 200;
  #server = createServer((req, res) => void this.#handle(req, res));
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += String(c);
    const lease = req.headers[LEASE_HEADER];
    this.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      auth: req.headers.authorization,
      lease: typeof lease === 'string' ? lease : undefined,
      body,
    });
    const json = (status: number, v: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (req.url === '/api/v1/jobs/claim') {
      const job = this.jobs.shift();
      if (job === undefined) {
        res.writeHead(204);
        res.end();
        return;
      }
      json(200, job);
      return;
    }
    const m = /^\/api\/v1\/jobs\/([^/]+)\/(heartbeat|result)$/.exec(req.url ?? '');
    if (m?.[2] === 'heartbeat') {
      if (this.heartbeatStatus !== 200)
        json(this.heartbeatStatus, { code: 'LEASE_LOST', message: 'the lease expired' });
      else json(200, { leaseExpiresAt: new Date(Date.now() + 120_000).toISOString() });
      return;
    }
    if (m?.[2] === 'result') {
      this.results.set(m[1] ?? '', JSON.parse(body) as JobResult);
      json(200, { ok: true });
      return;
    }
    json(404, { code: 'NOT_FOUND', message: `no route ${req.url}` });
  }
}

describe('the worker loop over HTTP', () => {
  const server = new FakeJobServer();
  before(() => server.start());
  after(() => server.stop());
  const base = {
    run: () => Promise.reject(new Error('no processes in this test')),
    cacheDir: '/nonexistent',
    workDir: '/nonexistent',
    node: process.execPath,
    agentBundle: process.execPath,
    log: () => undefined,
  };

  it('claims with its token and id, runs the job, sends the result, and stops when idle', async () => {
    server.jobs = [claim()];
    const client = new JobClient({ url: new URL(server.url), token: 'lgw_t', workerId: 'w1' });
    const summary = await runWorker({
      ...base,
      client,
      pollMs: 10,
      untilIdle: true,
      signal: new AbortController().signal,
      runJob: (env, job) => {
        env.phase('validate'); // a phase change beats at once
        return Promise.resolve({
          leaseId: job.leaseId,
          outcome: 'not-affected',
          reason: 'x.c is not built',
          buildLog: 'log',
          timings: { buildMs: 1, validateMs: 0 },
        });
      },
    });
    assert.deepEqual(summary, { jobs: 1, outcomes: { 'not-affected': 1 } });
    assert.equal(server.results.get('job-1')?.outcome, 'not-affected');
    const claimReq = server.requests.find((r) => r.url === '/api/v1/jobs/claim');
    assert.equal(claimReq?.auth, 'Bearer lgw_t');
    assert.deepEqual(JSON.parse(claimReq?.body ?? '{}'), { workerId: 'w1' });
    const beat = server.requests.find((r) => r.url.endsWith('/heartbeat'));
    assert.deepEqual(JSON.parse(beat?.body ?? '{}'), { leaseId: 'lease-1', phase: 'validate' });
  });

  it('abandons a job whose lease the server took back, without sending a result', async () => {
    server.results.clear();
    server.jobs = [claim({ jobId: 'job-2' })];
    server.heartbeatStatus = 409;
    const client = new JobClient({ url: new URL(server.url), token: 't', workerId: 'w1' });
    let sawAbort = false;
    const summary = await runWorker({
      ...base,
      client,
      pollMs: 10,
      untilIdle: true,
      signal: new AbortController().signal,
      runJob: async (env, job, signal) => {
        env.phase('validate');
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        sawAbort = true;
        throw new LivegraftError('CANCELLED', `job ${job.jobId} cancelled`);
      },
    });
    server.heartbeatStatus = 200;
    assert.ok(sawAbort);
    assert.equal(summary.jobs, 0);
    assert.equal(server.results.has('job-2'), false);
  });

  it('waits and retries while the server cannot be reached', async () => {
    const client = new JobClient({ url: new URL('http://127.0.0.1:9'), token: 't', workerId: 'w1' });
    const stop = new AbortController();
    const waits: number[] = [];
    await runWorker({
      ...base,
      client,
      pollMs: 1000,
      signal: stop.signal,
      sleep: (ms) => {
        waits.push(ms);
        if (waits.length === 3) stop.abort();
        return Promise.resolve();
      },
    });
    assert.deepEqual(waits, [1000, 2000, 4000]);
  });

  it('reports a refusal with the server code', async () => {
    const client = new JobClient({ url: new URL(server.url), token: 't', workerId: 'w1' });
    await assert.rejects(
      client.previousManifest(claim()),
      (e: unknown) => isLivegraftError(e) && e.code === 'NOT_FOUND' && /404/.test(e.message),
    );
  });
});
