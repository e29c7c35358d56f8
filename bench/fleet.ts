// bench/fleet: how fast a fleet picks up a new patch level, and what the
// server pays for it. One real server process (SQLite) on 127.0.0.1, and
// worker processes each simulating many hosts with the real agent core
// (bench/fleet-worker.ts) on fake kernels. Prints one JSON document.
//
//   npm run bench -- fleet [--agents N] [--curve 100,1000,3000,10000] [--workers 2]
//                          [--spread SEC] [--throughput-sec S] [--concurrency C] [--no-throughput] [--json]
//
// Per run (one N): enrol N hosts, start their daemons (first check-in, push
// stream), measure server memory per connected agent, publish a level and
// time publish -> applied-and-reported for every host. After the largest
// run: check-ins per second held vs a bare Fastify hello-world, same load
// generator (bench/fleet-load.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { CheckinRequest } from '../packages/protocol/src/index.ts';
import { FakeKernel } from '../packages/agent/test/helpers/fake-kernel.ts';
import { makePatch } from '../packages/agent/test/helpers/patches.ts';
import type { WorkerCommand, WorkerMessage } from './fleet-worker.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE = process.execPath;
/** File descriptors asked for in the server and worker processes (each holds one socket per agent). */
const WANT_NOFILE = 65_536;
/** Every wait in the bench is bounded by one of these. */
const SERVER_START_TIMEOUT_MS = 60_000;
const ENROLL_TIMEOUT_MS = 15 * 60_000;
const START_TIMEOUT_MS = 15 * 60_000;
const CONNECT_TIMEOUT_MS = 3 * 60_000;
const ROLLOUT_TIMEOUT_MS = 3 * 60_000;
const STOP_TIMEOUT_MS = 60_000;
/** The targets this bench checks. */
const TARGET_ALL_APPLIED_SEC = 30;
const TARGET_P99_SEC = 15;
const TARGET_THROUGHPUT_RATIO = 0.4;
const TARGET_BYTES_PER_AGENT = 20 * 1024;

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: '1000' },
    curve: { type: 'string' },
    workers: { type: 'string', default: '2' },
    spread: { type: 'string', default: '10' },
    'throughput-sec': { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    'no-throughput': { type: 'boolean', default: false },
    'server-prof': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const say = (msg: string): void => {
  process.stderr.write(`[fleet] ${msg}\n`);
};

function int(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max}`);
  return n;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Runs a node script with a raised open-files limit (root may raise the hard limit too). */
function spawnNode(nodeArgs: string[], opts: { ipc?: boolean; env?: Record<string, string> } = {}): ChildProcess {
  const script = `ulimit -n ${WANT_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  return spawn('sh', ['-c', script, 'sh', NODE, ...nodeArgs], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: opts.ipc === true ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'],
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+([0-9]+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** user+system CPU seconds a process has used. */
function cpuSec(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

function nofile(pid: number): number {
  const m = /Max open files\s+([0-9]+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` (errors count as "not yet") until it returns a value; `dead` ends the wait early. */
async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  dead: () => string | undefined = () => undefined,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const why = dead();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

interface Server {
  url: string;
  pid: number;
  adminToken: string;
  registrationKey: string;
  stop(): Promise<void>;
}

async function startLivegraftServer(dataDir: string, spreadSec: number, prof?: string): Promise<Server> {
  const port = await freePort();
  const adminToken = `bench-admin-${Math.random().toString(36).slice(2)}`;
  const registrationKey = `bench-registration-${Math.random().toString(36).slice(2)}`;
  const nodeArgs = [
    ...(prof === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`]),
    '--import',
    'tsx',
    'packages/server/src/bin.ts',
    '--data-dir',
    dataDir,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--log-level',
    'warn',
    '--checkin-interval',
    '3600',
    '--push-spread',
    String(spreadSec),
    '--promotion-interval',
    '3600',
    // The simulated fleet enrols from one address.
    '--enroll-burst',
    '100000',
    '--enroll-per-minute',
    '1000000',
  ];
  const child = spawnNode(nodeArgs, {
    env: { LIVEGRAFT_ADMIN_TOKEN: adminToken, LIVEGRAFT_REGISTRATION_KEY: registrationKey },
  });
  child.stdout?.resume();
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'server start',
    SERVER_START_TIMEOUT_MS,
    async () => {
      const res = await fetch(`${url}/healthz`);
      return res.ok ? true : undefined;
    },
    () => (child.exitCode === null ? undefined : `the server exited with ${child.exitCode}`),
  );
  const pid = child.pid ?? 0;
  return {
    url,
    pid,
    adminToken,
    registrationKey,
    stop: async () => {
      if (child.exitCode !== null) return;
      const done = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await Promise.race([done, sleep(STOP_TIMEOUT_MS)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** One worker process and a typed request/answer channel to it. */
class Worker {
  readonly child: ChildProcess;
  readonly #waiters: { type: WorkerMessage['type']; resolve: (m: WorkerMessage) => void }[] = [];
  last: Extract<WorkerMessage, { type: 'progress' }> | undefined;

  constructor() {
    this.child = spawnNode(['--max-old-space-size=8192', '--import', 'tsx', 'bench/fleet-worker.ts'], { ipc: true });
    this.child.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') this.last = m;
      if (m.type === 'error') say(`worker error: ${m.message}`);
      const i = this.#waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0]?.resolve(m);
    });
  }

  request<T extends WorkerMessage['type']>(
    cmd: WorkerCommand,
    answer: T,
    timeoutMs: number,
  ): Promise<Extract<WorkerMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker: no ${answer} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        type: answer,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<WorkerMessage, { type: T }>);
        },
      });
      this.child.send(cmd);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    try {
      await this.request({ cmd: 'stop' }, 'stopped', STOP_TIMEOUT_MS);
    } catch {
      // fall through to the kill
    }
    await Promise.race([new Promise((r) => this.child.once('exit', r)), sleep(5000)]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

function stats(samples: number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number): number =>
    Number(((s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN) / 1000).toFixed(3));
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: Number(((s.at(-1) ?? NaN) / 1000).toFixed(3)) };
}

async function adminCall(server: Server, method: string, path: string, body?: Buffer | unknown): Promise<unknown> {
  const headers: Record<string, string> = { authorization: `Bearer ${server.adminToken}` };
  let payload: string | Buffer | undefined;
  if (Buffer.isBuffer(body)) {
    headers['content-type'] = 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${server.url}${path}`, { method, headers, body: payload });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

interface RunResult {
  agents: number;
  enrolled: number;
  enrolSec: number;
  startSec: number;
  connected: number;
  serverRssBaselineMiB: number;
  serverRssConnectedMiB: number;
  serverBytesPerAgent: number;
  workerBytesPerAgent: number;
  applied: number;
  appliedWithinTargetSec: number;
  publishToAppliedSec: ReturnType<typeof stats>;
  phases: Record<string, ReturnType<typeof stats>>;
  allAppliedSec: number | null;
  serverCpuSecDuringRollout: number;
  workerCpuSecDuringRollout: number;
  failures: string[];
  throughput?: Throughput;
}

interface Throughput {
  concurrency: number;
  durationSec: number;
  checkin: unknown;
  hello: unknown;
  ratio: number;
}

async function rollout(
  n: number,
  o: { workers: number; spread: number; throughput: boolean; prof?: string },
): Promise<RunResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'livegraft-bench-server-'));
  // Simulated hosts' fake kernels and state dirs: many small files, on tmpfs when there is one.
  const hostsDir = mkdtempSync(join(os.platform() === 'linux' ? '/dev/shm' : tmpdir(), 'livegraft-bench-hosts-'));
  const server = await startLivegraftServer(dataDir, o.spread, o.prof);
  const workers: Worker[] = [];
  try {
    say(`N=${n}: server ${server.url} (pid ${server.pid}, nofile ${nofile(server.pid)}), ${o.workers} workers`);
    for (let i = 0; i < o.workers; i++) workers.push(new Worker());
    const share = (i: number): { from: number; count: number } => {
      const base = Math.floor(n / o.workers);
      const from = i * base;
      return { from, count: i === o.workers - 1 ? n - from : base };
    };

    let t = Date.now();
    const enrolled = await Promise.all(
      workers.map((w, i) =>
        w.request(
          {
            cmd: 'enroll',
            server: server.url,
            key: server.registrationKey,
            ...share(i),
            dir: hostsDir,
            concurrency: 32,
          },
          'enrolled',
          ENROLL_TIMEOUT_MS,
        ),
      ),
    );
    const enrolSec = (Date.now() - t) / 1000;
    const enrolledCount = enrolled.reduce((a, e) => a + e.count, 0);
    for (const e of enrolled) for (const err of e.errors.slice(0, 3)) say(`enrol error: ${err}`);
    say(`enrolled ${enrolledCount}/${n} in ${enrolSec.toFixed(1)} s`);
    await sleep(1000);
    const baseline = rssBytes(server.pid);

    t = Date.now();
    const started = await Promise.all(
      workers.map((w) => w.request({ cmd: 'start', concurrency: 100 }, 'started', START_TIMEOUT_MS)),
    );
    const startSec = (Date.now() - t) / 1000;
    const connected = await waitFor('all push streams connected', CONNECT_TIMEOUT_MS, async () => {
      const counts = await Promise.all(
        workers.map((w) => w.request({ cmd: 'watch', level: 1, deadline: 0 }, 'applied', 10_000).then(() => w.last)),
      );
      const c = counts.reduce((a, p) => a + (p?.connected ?? 0), 0);
      return c >= enrolledCount ? c : undefined;
    }).catch(() => workers.reduce((a, w) => a + (w.last?.connected ?? 0), 0));
    say(`started ${enrolledCount} daemons in ${startSec.toFixed(1)} s; ${connected} push streams connected`);
    await sleep(2000);
    const withStreams = rssBytes(server.pid);
    const workerRss = started.reduce((a, s) => a + s.rssBytes, 0);

    // Publish: upload the module first; the clock starts when the publish request is sent.
    const kernel = new FakeKernel(join(hostsDir, 'publisher'));
    const patch = makePatch(kernel, 1);
    await adminCall(server, 'PUT', `/api/v1/modules/${patch.manifest.module.sha256}`, patch.bytes);
    const cpuBefore = cpuSec(server.pid);
    const workerCpuBefore = workers.reduce((a, w) => a + cpuSec(w.child.pid ?? 0), 0);
    const t0 = Date.now();
    await adminCall(server, 'POST', '/api/v1/patches', { manifest: patch.manifest, publish: true });
    say(`published level 1 (answer after ${Date.now() - t0} ms); waiting for the fleet`);
    const deadline = t0 + ROLLOUT_TIMEOUT_MS;
    const progress = setInterval(() => {
      const applied = workers.reduce((a, w) => a + (w.last?.applied ?? 0), 0);
      say(`  +${((Date.now() - t0) / 1000).toFixed(1)} s: ${applied}/${enrolledCount} applied`);
    }, 1000);
    const results = await Promise.all(
      workers.map((w) => w.request({ cmd: 'watch', level: 1, deadline }, 'applied', ROLLOUT_TIMEOUT_MS + 30_000)),
    );
    clearInterval(progress);
    const cpuRollout = cpuSec(server.pid) - cpuBefore;
    const workerCpuRollout = workers.reduce((a, w) => a + cpuSec(w.child.pid ?? 0), 0) - workerCpuBefore;
    const latencies = results.flatMap((r) => r.at.map((a) => a - t0));
    // Where the time went: push delivery, the spread each host was told to wait, and the rest (work).
    const pushes = results.flatMap((r) => r.pushes);
    const phases = {
      pushDeliveredSec: stats(pushes.map(([at]) => at - t0)),
      spreadAskedSec: stats(pushes.map(([, spread]) => spread)),
      afterSpreadSec: stats(pushes.filter(([, , done]) => done > 0).map(([at, spread, done]) => done - at - spread)),
    };
    const allApplied = latencies.length === enrolledCount ? Math.max(...latencies) / 1000 : null;
    const result: RunResult = {
      agents: n,
      enrolled: enrolledCount,
      enrolSec: Number(enrolSec.toFixed(1)),
      startSec: Number(startSec.toFixed(1)),
      connected,
      serverRssBaselineMiB: Number((baseline / 2 ** 20).toFixed(1)),
      serverRssConnectedMiB: Number((withStreams / 2 ** 20).toFixed(1)),
      serverBytesPerAgent: Math.round((withStreams - baseline) / Math.max(1, connected)),
      workerBytesPerAgent: Math.round(workerRss / Math.max(1, enrolledCount)),
      applied: latencies.length,
      appliedWithinTargetSec: latencies.filter((l) => l <= TARGET_ALL_APPLIED_SEC * 1000).length,
      publishToAppliedSec: stats(latencies),
      phases,
      allAppliedSec: allApplied === null ? null : Number(allApplied.toFixed(3)),
      serverCpuSecDuringRollout: Number(cpuRollout.toFixed(2)),
      workerCpuSecDuringRollout: Number(workerCpuRollout.toFixed(2)),
      failures: results.flatMap((r) => r.failures).slice(0, 10),
    };
    say(
      `N=${n}: applied ${result.applied}/${enrolledCount}; p50 ${result.publishToAppliedSec.p50} s, ` +
        `p99 ${result.publishToAppliedSec.p99} s, max ${result.publishToAppliedSec.max} s; ` +
        `server ${result.serverBytesPerAgent} B/agent`,
    );
    await Promise.all(workers.map((w) => w.stop()));
    if (o.throughput) {
      const tokens = enrolled.flatMap((e) => e.tokens).slice(0, 2000);
      result.throughput = await throughput(server, tokens, kernel);
    }
    return result;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(hostsDir, { recursive: true, force: true });
  }
}

async function runLoad(spec: Record<string, unknown>): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'livegraft-bench-load-'));
  try {
    const file = join(dir, 'spec.json');
    writeFileSync(file, JSON.stringify(spec));
    const child = spawnNode(['--import', 'tsx', 'bench/fleet-load.ts', file]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const timeoutMs = Number(spec['durationMs']) + Number(spec['warmupMs']) + 60_000;
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(timeoutMs).then(() => child.kill('SIGKILL'))]);
    return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Check-ins per second held by the real server vs a bare Fastify hello-world, same generator. */
async function throughput(server: Server, tokens: string[], kernel: FakeKernel): Promise<Throughput> {
  const concurrency = int('concurrency', args.concurrency, 1, 4096);
  const durationMs = int('throughput-sec', args['throughput-sec'], 1, 600) * 1000;
  const identity = {
    id: kernel.id,
    release: kernel.release,
    version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2025-01-01)',
    machine: 'x86_64',
    procVersion: kernel.procVersion,
    buildId: '0123456789abcdef0123456789abcdef01234567',
  };
  // The steady-state heartbeat of a patched host: what a fleet sends most.
  const body = (): string =>
    JSON.stringify({
      kernel: identity,
      appliedLevel: 1,
      state: 'patched',
      agentVersion: '0.1.0',
      uptimeSec: 1234.5,
      patchState: { module: `livegraft_${kernel.id.slice(0, 12)}_l1`, enabled: true, transition: false },
    } satisfies CheckinRequest);
  const bodies = tokens.map(() => body());
  say(`throughput: ${concurrency} connections, ${durationMs / 1000} s each, ${tokens.length} host tokens`);
  const checkin = await runLoad({
    url: server.url,
    method: 'POST',
    path: '/api/v1/hosts/checkin',
    tokens,
    bodies,
    concurrency,
    durationMs,
    warmupMs: 2000,
  });
  say(`  check-in: ${JSON.stringify(checkin)}`);
  const port = await freePort();
  const hello = spawnNode(['--import', 'tsx', 'bench/fleet-hello.ts', String(port)]);
  hello.stdout?.resume();
  try {
    await waitFor('hello-world start', SERVER_START_TIMEOUT_MS, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/hello`);
      return res.ok ? true : undefined;
    });
    const ceiling = await runLoad({
      url: `http://127.0.0.1:${port}`,
      method: 'GET',
      path: '/hello',
      concurrency,
      durationMs,
      warmupMs: 2000,
    });
    say(`  hello-world: ${JSON.stringify(ceiling)}`);
    const ratio = Number(checkin['perSec']) / Math.max(1, Number(ceiling['perSec']));
    return { concurrency, durationSec: durationMs / 1000, checkin, hello: ceiling, ratio: Number(ratio.toFixed(3)) };
  } finally {
    hello.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const workers = int('workers', args.workers, 1, 16);
  const spread = int('spread', args.spread, 0, 3600);
  const sizes =
    args.curve === undefined
      ? [int('agents', args.agents, 1, 50_000)]
      : args.curve.split(',').map((v) => int('curve', v.trim(), 1, 50_000));
  const largest = Math.max(...sizes);
  const runs: RunResult[] = [];
  for (const n of sizes) {
    runs.push(
      await rollout(n, {
        workers: Math.min(workers, n),
        spread,
        throughput: !args['no-throughput'] && n === largest && !runs.some((r) => r.agents === largest),
        prof: args['server-prof'],
      }),
    );
  }
  const big = runs.find((r) => r.agents === largest);
  const tp = big?.throughput;
  const out = {
    bench: 'fleet',
    at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    setup: {
      workers,
      pushSpreadSec: spread,
      server: 'one process, SQLite, 127.0.0.1',
      agents: 'real agent core (Agent + Daemon) on fake kernels, in worker processes',
    },
    runs,
    targets: {
      allAppliedWithinSec: TARGET_ALL_APPLIED_SEC,
      p99Sec: TARGET_P99_SEC,
      throughputRatio: TARGET_THROUGHPUT_RATIO,
      bytesPerAgent: TARGET_BYTES_PER_AGENT,
      met:
        big === undefined
          ? null
          : {
              allApplied:
                big.allAppliedSec !== null &&
                big.allAppliedSec <= TARGET_ALL_APPLIED_SEC &&
                big.applied === big.enrolled,
              p99: big.publishToAppliedSec.p99 < TARGET_P99_SEC,
              throughput: tp === undefined ? null : tp.ratio >= TARGET_THROUGHPUT_RATIO,
              memory: big.serverBytesPerAgent < TARGET_BYTES_PER_AGENT,
            },
    },
  };
  process.stdout.write(`${JSON.stringify(out, null, args.json ? 2 : 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench fleet failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
