import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir, listAvailableBuilds, pickTestRelease } from '../../../packages/builder/src/kernel/index.ts';
import { spawnRunner } from '../../../packages/builder/src/runner.ts';
import { api } from './admin.ts';
import { execOk } from './exec.ts';
import { bootCatalogueGuest } from './factory-world.ts';
import type { Guest } from './guest.ts';
import { fetchKernelImage } from './kernel.ts';
import { agent } from './probe.ts';
import { rootPinArg } from './root-pin.ts';
import type { RunningServer } from './server.ts';
import { CACHE, REPO } from './world.ts';

const NODE = process.execPath;
const CLI = join(REPO, 'packages/cli/src/bin.ts');

/** Compares 6.1.176 with 6.1.187. */
function newer(a: string, b: string): boolean {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
}

/**
 * Kernel builds for the pipeline tests, from the archive: the older build the
 * factory tests use (6.1.0-50 while the archive has it) and the oldest build
 * whose upstream version is at least `fixedBy` (so it carries that fix).
 */
export async function pipelineReleases(fixedBy: string, count = 2): Promise<string[]> {
  const old = await pickTestRelease(spawnRunner);
  const builds = await listAvailableBuilds(spawnRunner);
  const carrying = builds.filter((b) => {
    const up = b.debianVersion.replace(/-[^-]*$/, '');
    return up === fixedBy || newer(up, fixedBy);
  });
  const out = [old, ...carrying.map((b) => b.release).filter((r) => r !== old)];
  if (out.length < count) throw new Error(`the archive offers only ${out.join(', ')}`);
  return out.slice(0, count);
}

export interface FleetGuest {
  release: string;
  guest: Guest;
  close(): Promise<void>;
}

/** Boots one host of the fleet on an exact Debian kernel build, with the given fixes' triggers. */
export async function bootFleetGuest(
  name: string,
  release: string,
  serverPort: number,
  fixDirs: string[],
): Promise<FleetGuest> {
  const cache = defaultCacheDir();
  const kernel = await fetchKernelImage(cache, release, join(cache, 'debs'));
  const dir = join(CACHE, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const guest = await bootCatalogueGuest(dir, kernel, serverPort, fixDirs);
  return { release, guest, close: () => guest.shutdown() };
}

/** Enrols a guest's agent with the server, pinning the server's TUF root by its fingerprint. */
export async function enrol(g: Guest, server: RunningServer): Promise<void> {
  const r = await agent(
    g,
    `enroll --server http://10.0.2.100 --key ${server.registrationKey} ${await rootPinArg(server)}`,
  );
  if (r.code !== 0) throw new Error(`enroll failed (${r.code}): ${r.stdout}\n${r.stderr}`);
}

/** Creates a worker token and writes it to a file (mode 0600). */
export async function workerTokenFile(server: RunningServer, dir: string): Promise<string> {
  const t = await api<{ token: string }>(server, 'POST', '/api/v1/tokens', { name: 'pipeline-worker', role: 'worker' });
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'worker.token');
  writeFileSync(file, `${t.token}\n`, { mode: 0o600 });
  return file;
}

/** Runs `livegraft <args>` against the server with the admin token; returns stdout, throws on failure. */
export async function cli(server: RunningServer, args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await execOk(
    NODE,
    ['--import', 'tsx', CLI, ...args, '--server', server.url, '--token', server.adminToken],
    {
      cwd: REPO,
      timeoutMs,
    },
  );
  return r.stdout;
}

/** Runs `livegraft worker --until-idle` to completion (bounded); returns its log. */
export async function runWorkerUntilIdle(server: RunningServer, tokenFile: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      NODE,
      [
        '--import',
        'tsx',
        CLI,
        'worker',
        '--server',
        server.url,
        '--token-file',
        tokenFile,
        '--until-idle',
        '--poll',
        '1',
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    const keep = (d: Buffer): void => {
      log = (log + d.toString()).slice(-200_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the worker did not finish within ${timeoutMs} ms:\n${log.slice(-5000)}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(log);
      else reject(new Error(`the worker exited ${code}:\n${log.slice(-5000)}`));
    });
  });
}
