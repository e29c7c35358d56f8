// bench/userspace: user-space live patching of many running processes on
// Debian's real libc 2.36 (extracted, run through its own loader): how long
// each process is stopped, the total time to patch them all, and the memory
// each patched process gains. Prints one JSON document.
//
//   npm run bench -- userspace [--processes N] [--threads N] [--busy]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UserspaceManager, type ProcessOutcome } from '../packages/agent/src/userspace/manager.ts';
import { compile, ensureLibc } from '../packages/agent/test/userspace/debian-libc.ts';
import { writeMarkerBundle } from '../packages/agent/test/userspace/marker-bundle.ts';

const { values } = parseArgs({
  options: {
    processes: { type: 'string', default: '1000' },
    /** Another build of the helper (e.g. an older one, to compare under the same load). */
    helper: { type: 'string' },
    threads: { type: 'string', default: '2' },
    busy: { type: 'boolean', default: false },
  },
});
const AGENT = fileURLToPath(new URL('../packages/agent/', import.meta.url));
const HELPER = values.helper ?? join(AGENT, 'dist', 'livegraft-uspatch');

function privateKb(pid: number): number {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? 0);
  return kb('Private_Clean') + kb('Private_Dirty');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

function stopStats(out: ProcessOutcome[]) {
  const us = out.map((o) => o.stopUs).sort((a, b) => a - b);
  const waiting = out.map((o) => o.stoppingUs ?? 0).sort((a, b) => a - b);
  const hold = out.map((o) => o.holdUs ?? o.stopUs).sort((a, b) => a - b);
  return {
    /** The longest single stop of each process (an apply stops twice: to map the code, then for the jumps). */
    holdP50Ms: percentile(hold, 50) / 1000,
    holdP99Ms: percentile(hold, 99) / 1000,
    holdMaxMs: (hold.at(-1) ?? 0) / 1000,
    /** Each process's stops added up: */
    p50Ms: percentile(us, 50) / 1000,
    p99Ms: percentile(us, 99) / 1000,
    maxMs: (us.at(-1) ?? 0) / 1000,
    /** Of that: until every thread had stopped (their own scheduling), p50 and p99. */
    stoppingP50Ms: percentile(waiting, 50) / 1000,
    stoppingP99Ms: percentile(waiting, 99) / 1000,
  };
}

async function waitStarted(children: ChildProcess[], libc: string, threads: number): Promise<void> {
  for (const c of children) {
    for (;;) {
      try {
        const maps = readFileSync(`/proc/${c.pid}/maps`, 'utf8');
        if (maps.includes(libc) && readdirSync(`/proc/${c.pid}/task`).length >= threads + 1) break;
      } catch {
        throw new Error(`target ${c.pid} did not start`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

async function run(n: number, threads: number, busy: boolean, dir: string, program: string, bundle: string) {
  const libc = ensureLibc();
  const children: ChildProcess[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const args = ['--library-path', libc.libDir, program, `threads=${threads}`, ...(busy ? [] : ['idle'])];
      children.push(spawn(libc.loader, args, { stdio: ['pipe', 'ignore', 'ignore'] }));
    }
    await waitStarted(children, libc.libc, threads);
    const pids = children.map((c) => c.pid!);
    const before = pids.map(privateKb);
    const m = new UserspaceManager({ stateDir: join(dir, `state-${n}`), helper: HELPER, pids, concurrency: 2 });
    const t0 = performance.now();
    const applied = await m.apply(bundle);
    const applySec = (performance.now() - t0) / 1000;
    const after = pids.map(privateKb);
    const gained = after.map((a, i) => a - before[i]!).sort((a, b) => a - b);
    const t1 = performance.now();
    const restored = await m.rollback();
    const rollbackSec = (performance.now() - t1) / 1000;
    const alive = pids.filter((p) => {
      try {
        readFileSync(`/proc/${p}/stat`);
        return true;
      } catch {
        return false;
      }
    }).length;
    return {
      processes: n,
      threadsPerProcess: threads + 1,
      busy,
      patched: applied.filter((o) => o.action === 'patched').length,
      refused: applied.filter((o) => o.action !== 'patched').map((o) => `${o.pid}: ${o.reason}`),
      restored: restored.filter((o) => o.action === 'restored').length,
      alive,
      applyTotalSec: Number(applySec.toFixed(3)),
      applyStop: stopStats(applied),
      rollbackTotalSec: Number(rollbackSec.toFixed(3)),
      rollbackStop: stopStats(restored),
      memoryGainedKb: { median: percentile(gained, 50), max: gained.at(-1) ?? 0 },
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

const dir = mkdtempSync(join(tmpdir(), 'lg-bench-userspace-'));
try {
  execFileSync('bash', [join(AGENT, 'native', 'build.sh')], { stdio: 'inherit' });
  const libc = ensureLibc();
  const program = compile(join(AGENT, 'test/userspace/fixtures/target.c'), join(dir, 'target'));
  const bundle = writeMarkerBundle(libc.libc, join(dir, 'bundle'));
  const threads = Number(values.threads);
  const single = await run(1, 4, true, dir, program, bundle);
  const many = await run(Number(values.processes), threads, values.busy, dir, program, bundle);
  console.log(
    JSON.stringify(
      {
        bench: 'userspace',
        library: 'libc6 2.36-9+deb12u7 (libc.so.6), abs() replaced',
        helper: values.helper === undefined ? 'built from this tree' : 'given with --helper',
        cpus: (await import('node:os')).cpus().length,
        loadavg: (await import('node:os')).loadavg().map((l) => Number(l.toFixed(2))),
        single,
        many,
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
