// bench/fleet: how fast a fleet picks up a new patch level, and what the
// server pays for it per host update. One or two real server nodes on
// 127.0.0.1 (SQLite, or one PostgreSQL shared by two nodes), optionally a
// static TUF mirror, and worker processes each simulating many hosts with the
// real agent core (bench/fleet-worker.ts) on fake kernels. Prints one JSON
// document.
//
//   npm run bench -- fleet [--agents N] [--curve 100,1000,3000,10000] [--workers 2]
//                          [--layout A|B] [--nodes 1|2] [--no-share] [--no-split]
//                          [--spread SEC] [--throughput-sec S] [--concurrency C] [--no-throughput]
//                          [--server-prof DIR] [--json]
//
// Layout A: the server serves everything. Layout B: TUF metadata and modules
// come from `livegraft mirror --serve`; the server handles check-ins, push
// streams and reports. --nodes 2: two server nodes on one PostgreSQL, hosts
// split between them, the release published on the first.
//
// Per run (one N): enrol N hosts, start their daemons (first check-in, push
// stream), measure server memory per connected agent, publish a level and
// time publish -> applied-and-reported for every host, with each node's CPU
// per host update split by request kind (bench/fleet-server-probe.ts). After
// the largest run: check-ins per second held vs a bare Fastify hello-world.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FakeKernel } from '../packages/agent/test/helpers/fake-kernel.ts';
import { makePatch } from '../packages/agent/test/helpers/patches.ts';
import { syncMirror } from '../packages/cli/src/mirror.ts';
import { startPostgres, type PgCluster } from '../packages/server/test/pg-harness.ts';
import type { MemoStats } from './fleet-memo.ts';
import {
  adminCall,
  cpuSec,
  treeCpuSec,
  nofile,
  rssBytes,
  say,
  sleep,
  startMirror,
  startServerNode,
  waitFor,
  Worker,
  type Mirror,
  type ServerNode,
} from './fleet-procs.ts';
import { KINDS, type Kind, type ProbeReading } from './fleet-server-probe.ts';
import { throughput, type Throughput } from './fleet-throughput.ts';
import { int } from './args.ts';

const ENROLL_TIMEOUT_MS = 15 * 60_000;
const START_TIMEOUT_MS = 15 * 60_000;
const CONNECT_TIMEOUT_MS = 3 * 60_000;
const ROLLOUT_TIMEOUT_MS = 6 * 60_000;
/** How long the window waits, after the last apply, for the servers to have every applied host's report. */
const REPORTS_TIMEOUT_MS = 120_000;
/** The targets this bench checks. */
const TARGET_ALL_APPLIED_SEC = 30;
const TARGET_P99_SEC = 15;
const TARGET_THROUGHPUT_RATIO = 0.4;
const TARGET_BYTES_PER_AGENT = 20 * 1024;
const TARGET_CPU_MS_PER_HOST = { A: 1.5, B: 1.0 } as const;

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: '1000' },
    curve: { type: 'string' },
    workers: { type: 'string', default: '2' },
    layout: { type: 'string', default: 'A' },
    nodes: { type: 'string', default: '1' },
    'no-share': { type: 'boolean', default: false },
    'no-split': { type: 'boolean', default: false },
    spread: { type: 'string', default: '10' },
    'throughput-sec': { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    'no-throughput': { type: 'boolean', default: false },
    'server-prof': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

function stats(samples: number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number): number =>
    Number(((s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN) / 1000).toFixed(3));
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: Number(((s.at(-1) ?? NaN) / 1000).toFixed(3)) };
}

const round = (v: number, digits = 3): number => Number(v.toFixed(digits));
const load = (): number[] => os.loadavg().map((l) => round(l, 2));
/** The machine's CPU time counters (USER_HZ ticks): all of it, and the part a hypervisor gave to others (steal). */
function cpuTicks(): { total: number; steal: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
}

/** One node's CPU during the rollout, from its own counters, per host update it served. */
interface NodeCost {
  url: string;
  hosts: number;
  cpuSec: number;
  cpuMsPerHost: number;
  /** CPU-ms per host update by request kind (see fleet-server-probe.ts); sums to cpuMsPerHost. */
  cpuMsPerHostByKind: Record<Kind, number>;
  requestsPerHostByKind: Record<Kind, number>;
}

function nodeCost(url: string, hosts: number, a: ProbeReading, b: ProbeReading): NodeCost {
  const per = (v: number): number => round(v / Math.max(1, hosts));
  const cpu = (b.totalUs - a.totalUs) / 1e6;
  // The CPU counter divided between the kinds in proportion to their main-thread busy time.
  const busy = KINDS.map((k) => b.busyMs[k] - a.busyMs[k]);
  const busyTotal = busy.reduce((x, y) => x + y, 0);
  const byKind = Object.fromEntries(
    KINDS.map((k, i) => [k, busyTotal > 0 ? per(((busy[i] ?? 0) / busyTotal) * cpu * 1000) : 0]),
  ) as Record<Kind, number>;
  const reqs = Object.fromEntries(KINDS.map((k) => [k, per(b.requests[k] - a.requests[k])])) as Record<Kind, number>;
  return {
    url,
    hosts,
    cpuSec: round(cpu, 2),
    cpuMsPerHost: per(cpu * 1000),
    cpuMsPerHostByKind: byKind,
    requestsPerHostByKind: reqs,
  };
}

interface RunResult {
  agents: number;
  layout: 'A' | 'B';
  nodes: number;
  loadAvgBefore: number[];
  loadAvgAfter: number[];
  /** Of the machine's CPU time during the rollout, the share stolen by the hypervisor (%). */
  stealPct: number;
  enrolled: number;
  enrolSec: number;
  startSec: number;
  connected: number;
  serverRssBaselineMiB: number;
  serverRssConnectedMiB: number;
  bytesPerAgent: number;
  workerBytesPerAgent: number;
  applied: number;
  /** Check-ins that reported the apply, received by the servers within the window (one per applied host). */
  reportsReceived: number;
  appliedWithinTargetSec: number;
  publishToAppliedSec: ReturnType<typeof stats>;
  p99Ms: number;
  maxMs: number;
  phases: Record<string, ReturnType<typeof stats>>;
  allAppliedSec: number | null;
  /** All nodes' CPU during the rollout / hosts applied. */
  serverCpuMsPerHost: number;
  serverCpuMsPerHostByKind: Record<Kind, number>;
  perNode: NodeCost[];
  serverCpuSecDuringRollout: number;
  mirrorCpuSecDuringRollout: number | null;
  /** PostgreSQL's CPU (postmaster and backends) during the rollout, with --nodes 2; not in serverCpuMsPerHost. */
  databaseCpuSecDuringRollout: number | null;
  /** (server nodes' CPU + PostgreSQL's CPU) / hosts applied, with --nodes 2. */
  serverAndDatabaseCpuMsPerHost: number | null;
  workerCpuSecDuringRollout: number;
  workerCpuMsPerHost: number;
  shared: MemoStats | null;
  failures: string[];
  throughput?: Throughput;
}

interface RunOptions {
  workers: number;
  spread: number;
  layout: 'A' | 'B';
  nodes: number;
  share: boolean;
  /** Split each node's CPU by request kind (the probe reads the CPU counter at every request start and end). */
  split: boolean;
  throughput: boolean;
  prof?: string;
}

async function rollout(n: number, o: RunOptions): Promise<RunResult> {
  const dirs: string[] = [];
  const tmp = (prefix: string, base = tmpdir()): string => {
    const d = mkdtempSync(join(base, prefix));
    dirs.push(d);
    return d;
  };
  // Simulated hosts' fake kernels and state dirs: many small files, on tmpfs when there is one.
  const hostsDir = tmp('livegraft-bench-hosts-', os.platform() === 'linux' ? '/dev/shm' : tmpdir());
  const nodes: ServerNode[] = [];
  const workers: Worker[] = [];
  let pg: PgCluster | undefined;
  let mirror: Mirror | undefined;
  const loadAvgBefore = load();
  try {
    let database: string | undefined;
    if (o.nodes > 1) {
      pg = await startPostgres();
      database = await pg.createDatabase();
    }
    const first = await startServerNode({
      dataDir: tmp('livegraft-bench-server-'),
      spreadSec: o.spread,
      database,
      split: o.split,
    });
    nodes.push(first);
    for (let i = 1; i < o.nodes; i++) {
      // One deployment: the same secrets and TUF keys on every node.
      nodes.push(
        await startServerNode({
          dataDir: tmp('livegraft-bench-server-'),
          spreadSec: o.spread,
          database,
          tufKeysDir: join(first.dataDir, 'keys'),
          adminToken: first.adminToken,
          registrationKey: first.registrationKey,
          split: o.split,
        }),
      );
    }
    const mirrorDir = o.layout === 'B' ? tmp('livegraft-bench-mirror-') : undefined;
    if (mirrorDir !== undefined) mirror = await startMirror(first.url, mirrorDir);
    say(
      `N=${n}: layout ${o.layout}, ${nodes.map((s) => `${s.url} (pid ${s.pid}, nofile ${nofile(s.pid)})`).join(', ')}` +
        `${mirror === undefined ? '' : `, mirror ${mirror.url}`}, ${o.workers} workers, load ${load().join(' ')}`,
    );
    // Levels land in feeds only when the bench moves them, after the mirror has the release (layout B).
    const feeds = (await adminCall(first, 'GET', '/api/v1/feeds')) as { name: string; autoPublish: boolean }[];
    for (const f of feeds.filter((x) => x.autoPublish)) {
      await adminCall(first, 'PATCH', `/api/v1/feeds/${f.name}`, { autoPublish: false });
    }
    // What each host pins at enrolment, as `livegraft keys fingerprint` prints it.
    const root = Buffer.from(await (await fetch(`${first.url}/tuf/metadata/1.root.json`)).arrayBuffer());
    const rootSha256 = createHash('sha256').update(root).digest('hex');
    for (let i = 0; i < o.workers; i++) workers.push(new Worker(o.share));
    const nodeOf = (i: number): ServerNode => nodes[i % nodes.length] as ServerNode;
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
            server: nodeOf(i).url,
            key: first.registrationKey,
            ...share(i),
            dir: hostsDir,
            concurrency: 32,
            rootSha256,
            ...(mirror === undefined ? {} : { mirror: mirror.url }),
          },
          'enrolled',
          ENROLL_TIMEOUT_MS,
        ),
      ),
    );
    const enrolSec = (Date.now() - t) / 1000;
    const enrolledCount = enrolled.reduce((a, e) => a + e.count, 0);
    const hostsOn = nodes.map((_, k) =>
      enrolled.filter((_, i) => i % nodes.length === k).reduce((a, e) => a + e.count, 0),
    );
    for (const e of enrolled) for (const err of e.errors.slice(0, 3)) say(`enrol error: ${err}`);
    say(`enrolled ${enrolledCount}/${n} in ${enrolSec.toFixed(1)} s`);
    await sleep(1000);
    const baseline = nodes.map((s) => rssBytes(s.pid));

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
    const withStreams = nodes.map((s) => rssBytes(s.pid));
    const workerRss = started.reduce((a, s) => a + s.rssBytes, 0);

    // The release: the module is uploaded first (to every node: each keeps its own module store).
    const kernel = new FakeKernel(join(hostsDir, 'publisher'));
    const patch = makePatch(kernel, 1);
    for (const s of nodes) await adminCall(s, 'PUT', `/api/v1/modules/${patch.manifest.module.sha256}`, patch.bytes);
    for (const s of nodes) await s.probe({ probe: 'checkin-kind', kind: 'report' });
    if (o.prof !== undefined) for (const s of nodes) await s.probe({ probe: 'profile-start' });
    const before = await Promise.all(nodes.map((s) => s.read()));
    const mirrorCpuBefore = mirror === undefined ? 0 : cpuSec(mirror.pid);
    const databaseCpuBefore = pg === undefined ? 0 : treeCpuSec(pg.pid);
    const workerCpuBefore = workers.reduce((a, w) => a + cpuSec(w.child.pid ?? 0), 0);
    const ticksBefore = cpuTicks();
    // The clock starts when the publish request is sent: publish, mirror sync (B), then the feeds move (push).
    const t0 = Date.now();
    await adminCall(first, 'POST', '/api/v1/patches', { manifest: patch.manifest, publish: true });
    if (mirrorDir !== undefined) await syncMirror({ upstream: first.url, dir: mirrorDir });
    for (const f of feeds) {
      await adminCall(first, 'PUT', `/api/v1/feeds/${f.name}/levels/${kernel.id}`, { level: 1 });
    }
    say(`published level 1 (feeds moved after ${Date.now() - t0} ms); waiting for the fleet`);
    const deadline = t0 + ROLLOUT_TIMEOUT_MS;
    const progress = setInterval(() => {
      const applied = workers.reduce((a, w) => a + (w.last?.applied ?? 0), 0);
      say(`  +${((Date.now() - t0) / 1000).toFixed(1)} s: ${applied}/${enrolledCount} applied`);
    }, 1000);
    const results = await Promise.all(
      workers.map((w) => w.request({ cmd: 'watch', level: 1, deadline }, 'applied', ROLLOUT_TIMEOUT_MS + 30_000)),
    );
    clearInterval(progress);
    // The window ends when the servers have every applied host's report, not when the workers saw the last
    // apply: saturated workers send part of their reports after that, and the servers' cost includes them.
    const appliedHosts = results.reduce((a, r) => a + r.at.length, 0);
    const reportsSince = (now: ProbeReading[]): number =>
      now.reduce((a, r, k) => a + r.requests.report - (before[k] as ProbeReading).requests.report, 0);
    let after = await Promise.all(nodes.map((s) => s.read()));
    const reportsBy = Date.now() + REPORTS_TIMEOUT_MS;
    while (reportsSince(after) < appliedHosts && Date.now() < reportsBy) {
      await sleep(200);
      after = await Promise.all(nodes.map((s) => s.read()));
    }
    const reportsReceived = reportsSince(after);
    if (reportsReceived < appliedHosts) say(`only ${reportsReceived} of ${appliedHosts} reports reached the servers`);
    if (o.prof !== undefined) {
      for (const [k, s] of nodes.entries()) {
        await s.probe({ probe: 'profile-stop', file: join(o.prof, `server-${o.layout}-${n}-node${k}.cpuprofile`) });
      }
    }
    const loadAvgAfter = load();
    const ticksAfter = cpuTicks();
    // On a virtual machine, the share of the rollout's CPU time the hypervisor ran other guests in.
    const stealPct = round(
      (100 * (ticksAfter.steal - ticksBefore.steal)) / Math.max(1, ticksAfter.total - ticksBefore.total),
      1,
    );
    const mirrorCpu = mirror === undefined ? null : round(cpuSec(mirror.pid) - mirrorCpuBefore, 2);
    const databaseCpu = pg === undefined ? null : treeCpuSec(pg.pid) - databaseCpuBefore;
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
    const perNode = nodes.map((s, k) =>
      nodeCost(s.url, hostsOn[k] ?? 0, before[k] as ProbeReading, after[k] as ProbeReading),
    );
    const applied = latencies.length;
    const serverCpu = perNode.reduce((a, c) => a + c.cpuSec, 0);
    const byKind = Object.fromEntries(
      KINDS.map((k) => [
        k,
        round(perNode.reduce((a, c) => a + c.cpuMsPerHostByKind[k] * c.hosts, 0) / Math.max(1, applied)),
      ]),
    ) as Record<Kind, number>;
    const memo = results.map((r) => r.memo).filter((m): m is MemoStats => m !== undefined);
    const sum = (f: (m: MemoStats) => number): number => memo.reduce((a, m) => a + f(m), 0);
    const publishToApplied = stats(latencies);
    const result: RunResult = {
      agents: n,
      layout: o.layout,
      nodes: nodes.length,
      loadAvgBefore,
      loadAvgAfter,
      stealPct,
      enrolled: enrolledCount,
      enrolSec: round(enrolSec, 1),
      startSec: round(startSec, 1),
      connected,
      serverRssBaselineMiB: round(baseline.reduce((a, b) => a + b, 0) / 2 ** 20, 1),
      serverRssConnectedMiB: round(withStreams.reduce((a, b) => a + b, 0) / 2 ** 20, 1),
      bytesPerAgent: Math.round(
        (withStreams.reduce((a, b) => a + b, 0) - baseline.reduce((a, b) => a + b, 0)) / Math.max(1, connected),
      ),
      workerBytesPerAgent: Math.round(workerRss / Math.max(1, enrolledCount)),
      applied,
      reportsReceived,
      appliedWithinTargetSec: latencies.filter((l) => l <= TARGET_ALL_APPLIED_SEC * 1000).length,
      publishToAppliedSec: publishToApplied,
      p99Ms: Math.round(publishToApplied.p99 * 1000),
      maxMs: Math.round(publishToApplied.max * 1000),
      phases,
      allAppliedSec: allApplied === null ? null : round(allApplied),
      serverCpuMsPerHost: round((serverCpu * 1000) / Math.max(1, applied)),
      serverCpuMsPerHostByKind: byKind,
      perNode,
      serverCpuSecDuringRollout: round(serverCpu, 2),
      mirrorCpuSecDuringRollout: mirrorCpu,
      databaseCpuSecDuringRollout: databaseCpu === null ? null : round(databaseCpu, 2),
      serverAndDatabaseCpuMsPerHost:
        databaseCpu === null ? null : round(((serverCpu + databaseCpu) * 1000) / Math.max(1, applied)),
      workerCpuSecDuringRollout: round(workerCpuRollout, 2),
      workerCpuMsPerHost: round((workerCpuRollout * 1000) / Math.max(1, applied)),
      shared:
        memo.length === 0
          ? null
          : {
              keyConversions: sum((m) => m.keyConversions),
              keyHits: sum((m) => m.keyHits),
              verifications: sum((m) => m.verifications),
              verifyHits: sum((m) => m.verifyHits),
            },
      failures: results.flatMap((r) => r.failures).slice(0, 10),
    };
    say(
      `N=${n} ${o.layout}/${nodes.length}: applied ${applied}/${enrolledCount}; p50 ${publishToApplied.p50} s, ` +
        `p99 ${publishToApplied.p99} s, max ${publishToApplied.max} s; server ${result.serverCpuMsPerHost} CPU-ms/host ` +
        `${JSON.stringify(byKind)}; ${result.bytesPerAgent} B/agent; load ${loadAvgAfter.join(' ')}; steal ${stealPct} %`,
    );
    await Promise.all(workers.map((w) => w.stop()));
    if (o.throughput) {
      const tokens = enrolled
        .filter((_, i) => i % nodes.length === 0)
        .flatMap((e) => e.tokens)
        .slice(0, 2000);
      result.throughput = await throughput(first, tokens, kernel, {
        concurrency: int('concurrency', args.concurrency, 1, 4096),
        durationMs: int('throughput-sec', args['throughput-sec'], 1, 600) * 1000,
        ...(o.prof === undefined ? {} : { profFile: join(o.prof, `server-checkin-${o.layout}-${n}.cpuprofile`) }),
      });
    }
    return result;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await mirror?.stop();
    for (const s of nodes) await s.stop();
    await pg?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const workers = int('workers', args.workers, 1, 16);
  const spread = int('spread', args.spread, 0, 3600);
  const nodes = int('nodes', args.nodes, 1, 2);
  const layout = args.layout?.toUpperCase();
  if (layout !== 'A' && layout !== 'B') throw new Error('--layout must be A or B');
  if (workers % nodes !== 0) throw new Error('--workers must be a multiple of --nodes');
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
        layout,
        nodes,
        share: !args['no-share'],
        split: !args['no-split'],
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
      layout,
      nodes,
      pushSpreadSec: spread,
      server: nodes > 1 ? `${nodes} processes, one PostgreSQL, 127.0.0.1` : 'one process, SQLite, 127.0.0.1',
      delivery:
        layout === 'B' ? 'TUF metadata and modules from livegraft mirror --serve' : 'the server serves everything',
      agents: 'real agent core (Agent + Daemon) on fake kernels, in worker processes',
      sharedInWorker: args['no-share'] ? 'nothing' : 'verified ed25519 signatures and converted public keys',
    },
    summary:
      big === undefined
        ? null
        : {
            agents: big.agents,
            serverCpuMsPerHost: big.serverCpuMsPerHost,
            serverCpuMsPerHostByKind: big.serverCpuMsPerHostByKind,
            serverAndDatabaseCpuMsPerHost: big.serverAndDatabaseCpuMsPerHost,
            p99Ms: big.p99Ms,
            maxMs: big.maxMs,
            allAppliedSec: big.allAppliedSec,
            ratioToHelloWorld: tp?.ratio ?? null,
            // How much of a core each server used in its load run: under 1, the generator set the rate.
            serverCoreShareInLoad:
              tp === undefined ? null : { checkin: tp.checkinServerCoreShare, hello: tp.helloServerCoreShare },
            bytesPerAgent: big.bytesPerAgent,
            loadAvg: big.loadAvgAfter,
            stealPct: big.stealPct,
          },
    runs,
    targets: {
      allAppliedWithinSec: TARGET_ALL_APPLIED_SEC,
      p99Sec: TARGET_P99_SEC,
      throughputRatio: TARGET_THROUGHPUT_RATIO,
      bytesPerAgent: TARGET_BYTES_PER_AGENT,
      serverCpuMsPerHost: TARGET_CPU_MS_PER_HOST[layout],
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
              memory: big.bytesPerAgent < TARGET_BYTES_PER_AGENT,
              serverCpu: big.serverCpuMsPerHost <= TARGET_CPU_MS_PER_HOST[layout],
            },
    },
  };
  // Exit once printed: a mirror sync's HTTP client may keep idle sockets and timers alive.
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`, () => process.exit(process.exitCode ?? 0));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench fleet failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
