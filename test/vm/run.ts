// Runs the real-kernel scenarios and ends with one line "N passed, N failed".
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const dir = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.ts') && (only.length === 0 || only.some((o) => f.includes(o))))
  .map((f) => join(dir, f));

let passed = 0;
let failed = 0;
const stream = run({ files, concurrency: 1, execArgv: ['--import', 'tsx'] });
stream.on('test:pass', (e) => {
  if (e.details.type !== 'suite') passed++;
});
stream.on('test:fail', (e) => {
  if (e.details.type !== 'suite') failed++;
});
stream.compose(spec).pipe(process.stdout);
stream.on('end', () => {
  // Leave the closing line for CI to read after the reporter's own summary.
  setImmediate(() => {
    console.log(`\nvm: ${passed} passed, ${failed} failed`);
    process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
  });
});
