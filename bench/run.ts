// npm run bench -- <name> [options]: runs one benchmark, which prints JSON.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [name, ...rest] = process.argv.slice(2);
const file = name ? fileURLToPath(new URL(`./${name}.ts`, import.meta.url)) : '';
if (!name || !existsSync(file)) {
  console.error('usage: npm run bench -- <apply-latency|inspect|...> [options]');
  process.exit(64);
}
const child = spawn(process.execPath, ['--import', 'tsx', file, ...rest], { stdio: 'inherit' });
child.on('close', (code) => {
  process.exitCode = code ?? 1;
});
