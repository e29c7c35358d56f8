// bench/fleet-throughput: check-ins per second held by a real server node vs a
// bare Fastify hello-world, same load generator (bench/fleet-load.ts), for
// bench/fleet.ts. Also the server's own CPU per steady check-in.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckinRequest } from '../packages/protocol/src/index.ts';
import type { FakeKernel } from '../packages/agent/test/helpers/fake-kernel.ts';
import { SERVER_START_TIMEOUT_MS, freePort, say, sleep, spawnNode, waitFor, type ServerNode } from './fleet-procs.ts';

export interface Throughput {
  concurrency: number;
  durationSec: number;
  checkin: Record<string, unknown>;
  hello: Record<string, unknown>;
  ratio: number;
  /** Server CPU (its own counter) per steady check-in over the whole load run, warm-up included. */
  serverCpuMsPerCheckin: number;
  /** The same for the hello-world: its CPU per request, warm-up included. */
  helloCpuMsPerRequest: number;
  /**
   * Share of one core each server used over its load run (CPU / wall time). A server well under
   * 1 is waiting for requests: the load generator, not the server, set that run's rate.
   */
  checkinServerCoreShare: number;
  helloServerCoreShare: number;
}

/** All requests a load run answered, warm-up included (by status). */
function answered(load: Record<string, unknown>): number {
  return Object.values((load['statuses'] ?? {}) as Record<string, number>).reduce((a, b) => a + b, 0);
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

export async function throughput(
  server: ServerNode,
  tokens: string[],
  kernel: FakeKernel,
  o: { concurrency: number; durationMs: number; profFile?: string },
): Promise<Throughput> {
  const { concurrency, durationMs, profFile } = o;
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
  await server.probe({ probe: 'checkin-kind', kind: 'checkin' });
  if (profFile !== undefined) await server.probe({ probe: 'profile-start' });
  const before = await server.read();
  const checkinStart = performance.now();
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
  const checkinWallMs = performance.now() - checkinStart;
  const after = await server.read();
  if (profFile !== undefined) await server.probe({ probe: 'profile-stop', file: profFile });
  const n = after.requests.checkin - before.requests.checkin;
  const serverCpuMsPerCheckin = (after.totalUs - before.totalUs) / 1000 / Math.max(1, n);
  say(`  check-in: ${JSON.stringify(checkin)}; server ${serverCpuMsPerCheckin.toFixed(3)} CPU-ms per check-in`);
  const port = await freePort();
  const hello = spawnNode(['--import', 'tsx', 'bench/fleet-hello.ts', String(port)]);
  hello.stdout?.resume();
  try {
    await waitFor('hello-world start', SERVER_START_TIMEOUT_MS, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/hello`);
      return res.ok ? true : undefined;
    });
    const helloCpu = async (): Promise<number> =>
      ((await (await fetch(`http://127.0.0.1:${port}/cpu`)).json()) as { totalUs: number }).totalUs;
    const helloBefore = await helloCpu();
    const helloStart = performance.now();
    const ceiling = await runLoad({
      url: `http://127.0.0.1:${port}`,
      method: 'GET',
      path: '/hello',
      concurrency,
      durationMs,
      warmupMs: 2000,
    });
    const helloWallMs = performance.now() - helloStart;
    const helloUs = (await helloCpu()) - helloBefore;
    const helloCpuMsPerRequest = helloUs / 1000 / Math.max(1, answered(ceiling));
    const checkinServerCoreShare = (after.totalUs - before.totalUs) / 1000 / checkinWallMs;
    const helloServerCoreShare = helloUs / 1000 / helloWallMs;
    say(
      `  hello-world: ${JSON.stringify(ceiling)}; server ${helloCpuMsPerRequest.toFixed(3)} CPU-ms per request; ` +
        `core share: check-in server ${checkinServerCoreShare.toFixed(2)}, hello-world ${helloServerCoreShare.toFixed(2)}`,
    );
    const ratio = Number(checkin['perSec']) / Math.max(1, Number(ceiling['perSec']));
    return {
      concurrency,
      durationSec: durationMs / 1000,
      checkin,
      hello: ceiling,
      ratio: Number(ratio.toFixed(3)),
      serverCpuMsPerCheckin: Number(serverCpuMsPerCheckin.toFixed(3)),
      helloCpuMsPerRequest: Number(helloCpuMsPerRequest.toFixed(4)),
      checkinServerCoreShare: Number(checkinServerCoreShare.toFixed(2)),
      helloServerCoreShare: Number(helloServerCoreShare.toFixed(2)),
    };
  } finally {
    hello.kill('SIGTERM');
  }
}
