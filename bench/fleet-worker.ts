// bench/fleet-worker: one process simulating many hosts for bench/fleet.ts.
// Each simulated host runs the real agent core (Agent + Daemon: check-in,
// push stream, TUF update, apply procedure, journal, state) on its own fake
// kernel tree and state dir; only the kernel is fake. Driven over IPC.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { Agent as Dispatcher } from 'undici';
import { Agent } from '../packages/agent/src/operations/agent.ts';
import { systemClock, type Clock } from '../packages/agent/src/lib/clock.ts';
import { Daemon } from '../packages/agent/src/cli/daemon.ts';
import type { Logger } from '../packages/agent/src/lib/log.ts';
import { FakeKernel } from '../packages/agent/test/helpers/fake-kernel.ts';
import { shareSignatureChecks, type MemoStats } from './fleet-memo.ts';

export type WorkerCommand =
  | {
      cmd: 'enroll';
      server: string;
      key: string;
      from: number;
      count: number;
      dir: string;
      concurrency: number;
      /** SHA-256 of the server's 1.root.json: what a real host pins at enrolment. */
      rootSha256: string;
      /** TUF metadata and modules from this static mirror instead of the server (layout B). */
      mirror?: string;
    }
  | { cmd: 'start'; concurrency: number }
  | { cmd: 'watch'; level: number; deadline: number }
  | { cmd: 'stop' };

export type WorkerMessage =
  | { type: 'enrolled'; count: number; ms: number; tokens: string[]; errors: string[] }
  | { type: 'started'; connected: number; cycled: number; total: number; rssBytes: number; heapBytes: number }
  | { type: 'progress'; connected: number; cycled: number; applied: number; total: number }
  | {
      type: 'applied';
      level: number;
      at: number[];
      /** Per host that heard the push: [arrival, spread asked, applied (or -1)] in epoch ms. */
      pushes: [number, number, number][];
      failures: string[];
      /** What the worker's hosts shared (undefined with --no-share). */
      memo?: MemoStats;
    }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

/** Kept per simulated host: the agent, its daemon and what the bench observes. */
interface SimHost {
  agent: Agent;
  daemon?: Daemon;
  cycles: number;
  appliedAt: Map<number, number>;
  lastFailure?: string;
  /** When the pushed event arrived, and the spread it asked for. */
  pushedAt?: number;
  spreadMs?: number;
}

const MAX_ERRORS_KEPT = 20;
/** How often progress is reported to the parent while waiting. */
const PROGRESS_MS = 500;
/**
 * Connections for plain requests (not push streams) to one origin from this
 * worker; more requests wait in the pool's queue. A real fleet has one
 * connection per host; thousands of simulated hosts in one process would
 * otherwise each open a second socket beside their push stream, and the
 * server would run out of file descriptors before CPU.
 */
const MAX_REQUESTS_IN_FLIGHT = 256;

/**
 * `fetch` over two connection pools: push streams (held open, one per host)
 * in one, every other request in a bounded one. A real host's client has
 * one push connection beside its requests; with one shared pool here, every
 * request would walk the thousands of busy stream connections to find a
 * free one, a cost no real host pays.
 */
function pooledFetch(limit: number): typeof fetch {
  const streams = new Dispatcher();
  const requests = new Dispatcher({ connections: limit });
  return (input, init) => {
    const accept = new Headers(init?.headers).get('accept') ?? '';
    const dispatcher = accept.includes('text/event-stream') ? streams : requests;
    // Node's fetch takes an undici dispatcher; its bundled undici is the version pinned in package.json.
    return fetch(input, { ...init, dispatcher } as RequestInit);
  };
}

const sharedFetch = pooledFetch(MAX_REQUESTS_IN_FLIGHT);
/** Hosts in this process share verified signatures unless the bench says otherwise (see fleet-memo.ts). */
const memoStats = process.argv.includes('--no-share') ? undefined : shareSignatureChecks();

const send = (m: WorkerMessage): void => {
  process.send?.(m);
};

/**
 * Counts errors and keeps a few for the report; notes when the host heard
 * the push. Everything else is dropped (a real agent logs to journald).
 */
function benchLogger(errors: string[], host: () => SimHost | undefined): Logger {
  return {
    log(level, msg, fields) {
      if (level === 'error' && errors.length < MAX_ERRORS_KEPT) errors.push(`${msg} ${JSON.stringify(fields ?? {})}`);
      const h = host();
      if (h !== undefined && h.pushedAt === undefined && msg.startsWith('pushed a new desired level')) {
        h.pushedAt = Date.now();
        h.spreadMs = Number(fields?.['inMs'] ?? 0);
      }
    },
  };
}

/**
 * Kernel waits (transition polls) tick the fake kernel and yield; the
 * daemon's own sleeps (they carry a signal) take real time.
 */
function simClock(kernel: FakeKernel): Clock {
  return {
    now: () => Date.now(),
    sleep: async (ms, signal) => {
      if (signal !== undefined) return systemClock.sleep(ms, signal);
      kernel.tick();
      await yieldNow();
    },
  };
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}

const hosts: SimHost[] = [];
const errors: string[] = [];
const stop = new AbortController();
const runs: Promise<number>[] = [];

async function enroll(c: Extract<WorkerCommand, { cmd: 'enroll' }>): Promise<void> {
  const t0 = Date.now();
  const tokens: string[] = [];
  const indexes = Array.from({ length: c.count }, (_, i) => c.from + i);
  await pool(indexes, c.concurrency, async (i) => {
    const root = join(c.dir, `h${i}`);
    mkdirSync(root, { recursive: true });
    const kernel = new FakeKernel(join(root, 'k'));
    let self: SimHost | undefined;
    const log = benchLogger(errors, () => self);
    const agent = new Agent({
      configPath: join(root, 'agent.json'),
      stateDir: join(root, 'state'),
      sysRoot: kernel.sys,
      procRoot: kernel.proc,
      loader: kernel.loader,
      clock: simClock(kernel),
      log,
      fetch: sharedFetch,
    });
    try {
      const r = await agent.enroll({ server: c.server, key: c.key, hostname: `sim-${i}`, rootSha256: c.rootSha256 });
      // The bench's hosts check in hourly and do not follow a kernel log (see docs/benchmarks-fleet.md).
      const config = JSON.parse(readFileSync(agent.deps.configPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(
        agent.deps.configPath,
        JSON.stringify({
          ...config,
          checkinIntervalSec: 3600,
          kernelLog: false,
          ...(c.mirror === undefined ? {} : { mirror: c.mirror }),
        }),
        {
          mode: 0o600,
        },
      );
      if (tokens.length < 2000) tokens.push(r.config.token);
      self = { agent, cycles: 0, appliedAt: new Map() };
      hosts.push(self);
    } catch (err) {
      if (errors.length < MAX_ERRORS_KEPT) errors.push(`enroll ${i}: ${(err as Error).message}`);
    }
  });
  send({ type: 'enrolled', count: hosts.length, ms: Date.now() - t0, tokens, errors: [...errors] });
}

function counts(level?: number): { connected: number; cycled: number; applied: number } {
  let connected = 0;
  let cycled = 0;
  let applied = 0;
  for (const h of hosts) {
    if (h.daemon?.pushState === 'connected') connected++;
    if (h.cycles > 0) cycled++;
    if (level !== undefined && h.appliedAt.has(level)) applied++;
  }
  return { connected, cycled, applied };
}

async function start(c: Extract<WorkerCommand, { cmd: 'start' }>): Promise<void> {
  // Daemons start in waves so the first check-ins do not all land at once.
  await pool(hosts, c.concurrency, async (h) => {
    // One stop signal per host, as in a real deployment (one daemon per process): thousands of
    // daemons listening on one shared signal would make every listener removal a long list walk.
    const own = new AbortController();
    stop.signal.addEventListener('abort', () => own.abort(), { once: true });
    const daemon = new Daemon(h.agent, {
      stop: own.signal,
      timers: systemClock,
      onCycle: (outcome, err) => {
        h.cycles++;
        const a = outcome?.apply;
        if (a?.ok === true) h.appliedAt.set(a.toLevel, Date.now());
        if (err !== undefined) h.lastFailure = (err as Error).message;
        else if (a !== undefined && !a.ok) h.lastFailure = `${a.code ?? '?'}: ${a.message ?? ''}`;
      },
    });
    h.daemon = daemon;
    const first = h.cycles;
    runs.push(daemon.run());
    // Wait until this host's first cycle is done (bounded), so `concurrency` bounds the start-up load.
    for (let i = 0; i < 600 && h.cycles === first && !stop.signal.aborted; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  const mem = process.memoryUsage();
  send({ type: 'started', ...counts(), total: hosts.length, rssBytes: mem.rss, heapBytes: mem.heapUsed });
}

/**
 * With LIVEGRAFT_BENCH_COUNT_FS=1, the synchronous file-system calls the
 * simulated hosts make during the rollout are counted (the agent uses the
 * synchronous API for its durable writes) and printed per applied host.
 */
function countFsCalls(): { start(): void; report(applied: number): void } {
  const names = [
    'openSync',
    'closeSync',
    'readFileSync',
    'writeFileSync',
    'writeSync',
    'fsyncSync',
    'renameSync',
    'mkdirSync',
    'rmSync',
    'readdirSync',
    'statSync',
    'lstatSync',
    'existsSync',
    'unlinkSync',
  ] as const;
  const counts = new Map<string, number>();
  let on = false;
  const table = fs as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of names) {
    const real = table[name];
    if (real === undefined) continue;
    table[name] = function (this: unknown, ...a: unknown[]) {
      if (on) counts.set(name, (counts.get(name) ?? 0) + 1);
      return real.apply(this, a);
    };
  }
  syncBuiltinESMExports();
  return {
    start: () => {
      counts.clear();
      on = true;
    },
    report: (applied) => {
      on = false;
      const per = Object.fromEntries([...counts].map(([k, v]) => [k, Number((v / Math.max(1, applied)).toFixed(1))]));
      process.stderr.write(`[worker ${process.pid}] fs calls per applied host: ${JSON.stringify(per)}\n`);
    },
  };
}
const fsCounter = process.env['LIVEGRAFT_BENCH_COUNT_FS'] === '1' ? countFsCalls() : undefined;

/**
 * With LIVEGRAFT_BENCH_WORKER_PROF=DIR, the rollout (the watch with a
 * deadline) is CPU-profiled on its own, without enrolment and start-up.
 */
async function profiled<T>(fn: () => Promise<T>): Promise<T> {
  const dir = process.env['LIVEGRAFT_BENCH_WORKER_PROF'];
  if (dir === undefined) return fn();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(dir, `rollout-${process.pid}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

async function watch(level: number, deadline: number): Promise<void> {
  if (deadline > 0) fsCounter?.start();
  // Reports progress until every host applied `level` or the deadline (epoch ms) passes.
  while (!stop.signal.aborted) {
    const c = counts(level);
    send({ type: 'progress', ...c, total: hosts.length });
    if (c.applied >= hosts.length || Date.now() >= deadline) break;
    await systemClock.sleep(Math.min(PROGRESS_MS, Math.max(1, deadline - Date.now())), stop.signal);
  }
  const at = hosts.map((h) => h.appliedAt.get(level)).filter((t): t is number => t !== undefined);
  if (deadline > 0) fsCounter?.report(at.length);
  const failures = hosts
    .filter((h) => !h.appliedAt.has(level) && h.lastFailure !== undefined)
    .slice(0, MAX_ERRORS_KEPT)
    .map((h) => h.lastFailure ?? '');
  const pushes = hosts
    .filter((h) => h.pushedAt !== undefined)
    .map((h): [number, number, number] => [h.pushedAt ?? 0, h.spreadMs ?? 0, h.appliedAt.get(level) ?? -1]);
  send({ type: 'applied', level, at, pushes, failures: [...failures, ...errors.slice(0, 5)], memo: memoStats?.() });
}

process.on('message', (m: WorkerCommand) => {
  const run = async (): Promise<void> => {
    switch (m.cmd) {
      case 'enroll':
        return enroll(m);
      case 'start':
        return start(m);
      case 'watch':
        return m.deadline > 0 ? profiled(() => watch(m.level, m.deadline)) : watch(m.level, m.deadline);
      case 'stop': {
        stop.abort();
        await Promise.allSettled(runs);
        send({ type: 'stopped' });
        process.disconnect();
        return;
      }
    }
  };
  run().catch((err: unknown) => send({ type: 'error', message: (err as Error).stack ?? String(err) }));
});
