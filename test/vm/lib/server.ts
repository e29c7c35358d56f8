import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SERVER_BIN = fileURLToPath(new URL('../../../packages/server/src/bin.ts', import.meta.url));
const START_TIMEOUT_MS = 30_000;

export interface RunningServer {
  url: string;
  port: number;
  adminToken: string;
  registrationKey: string;
  /** Every request line the server logged, in order (method and URL). */
  requests: string[];
  stop(): Promise<void>;
}

/** Starts the real patch server (its own entry point) on a random loopback port. */
export async function startServer(dataDir: string, extraArgs: string[] = []): Promise<RunningServer> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      SERVER_BIN,
      '--data-dir',
      dataDir,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--log-level',
      'debug',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const requests: string[] = [];
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms:\n${log}`)),
      START_TIMEOUT_MS,
    );
    let pending = '';
    const onData = (d: Buffer): void => {
      pending += d.toString();
      log = (log + d.toString()).slice(-20_000);
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const listening = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (listening?.[1]) {
          clearTimeout(timer);
          resolve(listening[1]);
        }
        try {
          const rec = JSON.parse(line) as { method?: string; url?: string; msg?: string };
          if (rec.msg === 'request completed' && rec.method && rec.url) requests.push(`${rec.method} ${rec.url}`);
        } catch {
          /* not a JSON log line */
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${log}`));
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    adminToken: readFileSync(`${dataDir}/admin-token`, 'utf8').trim(),
    registrationKey: readFileSync(`${dataDir}/registration-key`, 'utf8').trim(),
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('close', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }),
  };
}
