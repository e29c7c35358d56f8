// npm run bench -- agent-startup [--runs N] [bundle.mjs ...]
//
// The bundled agent's size and start-up time: for each bundle (default: the
// built packages/agent/dist/livegraft-agent.mjs), its size in bytes and the
// median wall time of `--version` and of `status --json` against an empty state
// directory, as wall time and as the CPU time the process used (user + system,
// read by a preload at exit: less sensitive to other load than wall time).
// Several bundles are run interleaved (A, B, A, B, ...) so a busy machine's
// load falls on each of them alike. Prints JSON.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: { runs: { type: 'string', default: '20' } },
  allowPositionals: true,
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new Error('--runs must be an integer in 1..1000');
const bundles =
  positionals.length > 0
    ? positionals.map((p) => resolve(p))
    : [fileURLToPath(new URL('../packages/agent/dist/livegraft-agent.mjs', import.meta.url))];

const stateDir = mkdtempSync(join(tmpdir(), 'lg-agent-startup-'));
const env = {
  ...process.env,
  LIVEGRAFT_STATE_DIR: stateDir,
  LIVEGRAFT_CONFIG: join(stateDir, 'absent.json'),
};

/** Writes the process's own CPU time (µs) as the last line of stderr when it exits. */
const CPU_PRELOAD =
  'data:text/javascript,process.on("exit",()=>{const u=process.cpuUsage();process.stderr.write("\\ncpu "+(u.user+u.system)+"\\n")})';

function timeOnce(bundle: string, args: string[]): { wall: number; cpu: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['--import', CPU_PRELOAD, bundle, ...args], {
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) throw r.error;
  if (args[0] === '--version' && r.status !== 0) throw new Error(`${bundle} --version exited ${r.status}`);
  const cpu = /\ncpu (\d+)\n$/.exec(r.stderr);
  if (cpu === null) throw new Error(`${bundle} ${args.join(' ')}: no CPU time on stderr`);
  return { wall, cpu: Number(cpu[1]) / 1000 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const commands: Record<string, string[]> = { version: ['--version'], statusJson: ['status', '--json'] };
const empty = (): Record<string, number[]> => Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
const wall = bundles.map(empty);
const cpu = bundles.map(empty);
try {
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of Object.entries(commands)) {
      bundles.forEach((b, j) => {
        const t = timeOnce(b, args);
        wall[j]![name]!.push(t.wall);
        cpu[j]![name]!.push(t.cpu);
      });
    }
  }
} finally {
  rmSync(stateDir, { recursive: true, force: true });
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
console.log(
  JSON.stringify(
    {
      node: process.version,
      runs,
      bundles: bundles.map((b, j) => ({
        bundle: b,
        bytes: statSync(b).size,
        medianWallMs: Object.fromEntries(Object.entries(wall[j]!).map(([k, v]) => [k, round(median(v))])),
        medianCpuMs: Object.fromEntries(Object.entries(cpu[j]!).map(([k, v]) => [k, round(median(v))])),
        minWallMs: Object.fromEntries(Object.entries(wall[j]!).map(([k, v]) => [k, round(Math.min(...v))])),
      })),
    },
    null,
    2,
  ),
);
