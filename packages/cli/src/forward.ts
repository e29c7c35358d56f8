import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * `livegraft build`, `livegraft worker` and `livegraft server` run the builder's and the server's
 * own entry points as child processes: the apps stay separate programs that
 * share nothing but the protocol.
 */
const ENTRY = {
  build: '../../builder/bin/livegraft-build.mjs',
  worker: '../../builder/bin/livegraft-worker.mjs',
  server: '../../server/bin/livegraft-server.mjs',
} as const;

export function forward(tool: keyof typeof ENTRY, args: string[]): Promise<number> {
  const entry = fileURLToPath(new URL(ENTRY[tool], import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], { stdio: 'inherit' });
    const relay = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    process.on('SIGINT', relay);
    process.on('SIGTERM', relay);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      process.off('SIGINT', relay);
      process.off('SIGTERM', relay);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}
