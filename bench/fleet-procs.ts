// bench/fleet-procs: the processes bench/fleet.ts drives: server nodes (with
// the CPU probe loaded), the static mirror, and the simulated-host workers.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { ProbeCommand, ProbeReading } from './fleet-server-probe.ts';
import type { WorkerCommand, WorkerMessage } from './fleet-worker.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE = process.execPath;
/** File descriptors asked for in the server and worker processes (each holds one socket per agent). */
const WANT_NOFILE = 65_536;
/** Every wait in the bench is bounded by one of these. */
export const SERVER_START_TIMEOUT_MS = 60_000;
export const STOP_TIMEOUT_MS = 60_000;
const PROBE_TIMEOUT_MS = 60_000;

export const say = (msg: string): void => {
  process.stderr.write(`[fleet] ${msg}\n`);
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
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
export function spawnNode(
  nodeArgs: string[],
  opts: { ipc?: boolean; stdout?: 'pipe' | 'inherit'; env?: Record<string, string> } = {},
): ChildProcess {
  const script = `ulimit -n ${WANT_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const stdout = opts.stdout ?? (opts.ipc === true ? 'inherit' : 'pipe');
  return spawn('sh', ['-c', script, 'sh', NODE, ...nodeArgs], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: opts.ipc === true ? ['ignore', stdout, 'inherit', 'ipc'] : ['ignore', stdout, 'inherit'],
  });
}

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+([0-9]+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** user+system CPU seconds a process has used (the kernel's counters for it). */
export function cpuSec(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

/**
 * CPU seconds of a process and its children: its own, those of children it
 * has reaped, and those of its live children (PostgreSQL's postmaster and its
 * backends, which come and go).
 */
export function treeCpuSec(pid: number): number {
  const fieldsOf = (p: string): string[] => readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const own = fieldsOf(String(pid));
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const f = fieldsOf(entry);
      if (Number(f[1]) === pid) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process ended while the list was read.
    }
  }
  return ticks / 100;
}

export function nofile(pid: number): number {
  const m = /Max open files\s+([0-9]+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** Polls `probe` (errors count as "not yet") until it returns a value; `dead` ends the wait early. */
export async function waitFor<T>(
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

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  await Promise.race([done, sleep(STOP_TIMEOUT_MS)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export interface ServerNode {
  url: string;
  pid: number;
  dataDir: string;
  adminToken: string;
  registrationKey: string;
  /** Asks the CPU probe inside the server (bench/fleet-server-probe.ts). */
  probe(cmd: ProbeCommand): Promise<unknown>;
  read(): Promise<ProbeReading>;
  stop(): Promise<void>;
}

export interface ServerOptions {
  dataDir: string;
  spreadSec: number;
  /** postgres://...; SQLite in dataDir when absent. */
  database?: string;
  /** Shared online TUF keys (a second node of the same deployment). */
  tufKeysDir?: string;
  adminToken?: string;
  registrationKey?: string;
  /** false: the probe counts requests only, without the per-kind CPU split (and its counter reads). */
  split?: boolean;
}

export async function startServerNode(o: ServerOptions): Promise<ServerNode> {
  const port = await freePort();
  const adminToken = o.adminToken ?? `bench-admin-${Math.random().toString(36).slice(2)}`;
  const registrationKey = o.registrationKey ?? `bench-registration-${Math.random().toString(36).slice(2)}`;
  const nodeArgs = [
    '--import',
    'tsx',
    '--import',
    './bench/fleet-server-probe.ts',
    'packages/server/src/bin.ts',
    '--data-dir',
    o.dataDir,
    ...(o.database === undefined ? [] : ['--database', o.database]),
    ...(o.tufKeysDir === undefined ? [] : ['--tuf-keys-dir', o.tufKeysDir]),
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--log-level',
    'warn',
    '--checkin-interval',
    '3600',
    '--push-spread',
    String(o.spreadSec),
    '--promotion-interval',
    '3600',
    // The simulated fleet enrols from one address.
    '--enroll-burst',
    '100000',
    '--enroll-per-minute',
    '1000000',
  ];
  const child = spawnNode(nodeArgs, {
    ipc: true,
    stdout: 'pipe',
    env: {
      LIVEGRAFT_ADMIN_TOKEN: adminToken,
      LIVEGRAFT_REGISTRATION_KEY: registrationKey,
      LIVEGRAFT_BENCH_SPLIT: o.split === false ? '0' : '1',
    },
  });
  child.stdout?.resume();
  const waiters: ((m: unknown) => void)[] = [];
  child.on('message', (m) => waiters.shift()?.(m));
  const probe = (cmd: ProbeCommand): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server probe: no answer to ${cmd.probe}`)), PROBE_TIMEOUT_MS);
      waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
      child.send(cmd);
    });
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
  return {
    url,
    pid: child.pid ?? 0,
    dataDir: o.dataDir,
    adminToken,
    registrationKey,
    probe,
    read: async () => (await probe({ probe: 'read' })) as ProbeReading,
    stop: () => stopChild(child),
  };
}

export interface Mirror {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** `livegraft mirror --upstream URL --dir DIR --serve`: syncs once, then serves DIR (layout B). */
export async function startMirror(upstream: string, dir: string): Promise<Mirror> {
  const port = await freePort();
  const child = spawnNode(
    [
      '--import',
      'tsx',
      'packages/cli/src/bin.ts',
      'mirror',
      '--upstream',
      upstream,
      '--dir',
      dir,
      '--serve',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
    ],
    { stdout: 'pipe' },
  );
  child.stdout?.resume();
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'mirror start',
    SERVER_START_TIMEOUT_MS,
    async () => ((await fetch(`${url}/tuf/metadata/timestamp.json`)).ok ? true : undefined),
    () => (child.exitCode === null ? undefined : `the mirror exited with ${child.exitCode}`),
  );
  return { url, pid: child.pid ?? 0, stop: () => stopChild(child) };
}

/** One worker process and a typed request/answer channel to it. */
export class Worker {
  readonly child: ChildProcess;
  readonly #waiters: { type: WorkerMessage['type']; resolve: (m: WorkerMessage) => void }[] = [];
  last: Extract<WorkerMessage, { type: 'progress' }> | undefined;

  constructor(share: boolean) {
    this.child = spawnNode(
      ['--max-old-space-size=8192', '--import', 'tsx', 'bench/fleet-worker.ts', ...(share ? [] : ['--no-share'])],
      { ipc: true },
    );
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

export async function adminCall(
  server: { url: string; adminToken: string },
  method: string,
  path: string,
  body?: Buffer | unknown,
): Promise<unknown> {
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
