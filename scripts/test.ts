// Runs every test: the unit and integration suites (in parallel files), then
// the real-kernel VM suites (one at a time), and ends with one closing line
// "all: N passed, N failed" that counts both.
//
//   node --import tsx scripts/test.ts [unit|vm ...] [-- name filters for vm files]
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { globSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GROUPS = {
  unit: { patterns: ['packages/*/test/**/*.test.ts', 'packaging/test/*.test.ts'], concurrency: true },
  vm: { patterns: ['test/vm/*.test.ts'], concurrency: 1 },
} as const;
type Group = keyof typeof GROUPS;

const args = process.argv.slice(2);
const dash = args.indexOf('--');
const wanted = (dash < 0 ? args : args.slice(0, dash)).filter((a): a is Group => a in GROUPS);
const filters = dash < 0 ? [] : args.slice(dash + 1);
const groups: Group[] = wanted.length > 0 ? wanted : ['unit', 'vm'];

async function runGroup(group: Group): Promise<{ passed: number; failed: number }> {
  const g = GROUPS[group];
  const files = g.patterns
    .flatMap((p) => globSync(p, { cwd: ROOT }))
    .filter((f) => group !== 'vm' || filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort()
    .map((f) => `${ROOT}${f}`);
  let passed = 0;
  let failed = 0;
  const stream = run({ files, concurrency: g.concurrency, execArgv: ['--import', 'tsx'], cwd: ROOT });
  stream.on('test:pass', (e) => {
    if (e.details.type !== 'suite') passed++;
  });
  stream.on('test:fail', (e) => {
    if (e.details.type !== 'suite') failed++;
  });
  await new Promise<void>((resolve) => {
    stream.compose(spec).on('end', resolve).pipe(process.stdout, { end: false });
  });
  if (files.length === 0) failed++;
  console.log(`\n${group}: ${passed} passed, ${failed} failed`);
  return { passed, failed };
}

let passed = 0;
let failed = 0;
for (const group of groups) {
  const r = await runGroup(group);
  passed += r.passed;
  failed += r.failed;
}
console.log(`\nall: ${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
