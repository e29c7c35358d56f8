import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Updater } from 'tuf-js';
import {
  API_PREFIX,
  kernelIdFromProcVersion,
  moduleNameFor,
  targetCustomValidator,
  tufTargetPath,
  type PatchManifest,
} from '@livegraft/protocol';
import { elfWithModinfo } from '@livegraft/test-utils';

export const CLI_BIN = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
// The server is another app: tests talk to it only by running its program and over HTTP.
const SERVER_BIN = fileURLToPath(new URL('../../server/src/bin.ts', import.meta.url));
const START_TIMEOUT_MS = 30_000;

export const KERNEL_ID = kernelIdFromProcVersion(
  'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)',
);
export const OTHER_KERNEL_ID = createHash('sha256').update('another kernel').digest('hex');

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `livegraft-cli-${prefix}-`));
}

/** Runs the livegraft CLI; resolves with its exit code and output. */
export async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** Waits for a line matching re on a child's stdout. */
export function waitForLine(child: ChildProcess, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${re}`)), START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    if (child.stdout === null) return reject(new Error('no stdout'));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = re.exec(line);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

export interface RunningServer {
  url: string;
  dataDir: string;
  adminToken: string;
  stop(): Promise<void>;
}

const ADMIN_TOKEN = 'cli-test-admin-token-0123456789';

/** A real livegraft-server process on 127.0.0.1, random port, over a data dir the test may have prepared. */
export async function startServerProcess(dataDir: string): Promise<RunningServer> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', SERVER_BIN, '--data-dir', dataDir, '--port', '0', '--log-level', 'info'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LIVEGRAFT_ADMIN_TOKEN: ADMIN_TOKEN } },
  );
  try {
    const m = await waitForLine(child, /listening at (http:\/\/[0-9.:]+)/);
    return {
      url: m[1] as string,
      dataDir,
      adminToken: ADMIN_TOKEN,
      async stop() {
        if (child.exitCode === null) {
          child.kill('SIGTERM');
          await once(child, 'exit');
        }
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

export interface Patch {
  bytes: Buffer;
  sha256: string;
  manifest: PatchManifest;
}

export function buildPatch(kernelId: string, level: number): Patch {
  const name = moduleNameFor(kernelId, level);
  const bytes = elfWithModinfo([
    'license=GPL',
    `livegraft_level=${level}`,
    `livegraft_kernel_id=${kernelId}`,
    'vermagic=6.1.0-18-amd64 SMP preempt mod_unload modversions ',
    `name=${name}`,
    'livepatch=Y',
  ]);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return {
    bytes,
    sha256,
    manifest: {
      schema: 1,
      name,
      level,
      replace: true,
      kernel: {
        id: kernelId,
        release: '6.1.0-18-amd64',
        vermagic: '6.1.0-18-amd64 SMP preempt mod_unload modversions',
      },
      fixes: [{ id: `fix-${level}`, title: `fix ${level}`, cves: ['CVE-2024-1086'], functions: [] }],
      cves: ['CVE-2024-1086'],
      module: { file: `${name}.ko`, sha256, size: bytes.length },
      builtAt: '2026-01-02T03:04:05.000Z',
      builder: 'livegraft-builder/0.1.0',
    },
  };
}

/** Uploads and publishes a patch through the admin API. */
export async function publish(s: RunningServer, p: Patch): Promise<void> {
  const auth = { authorization: `Bearer ${s.adminToken}` };
  const up = await fetch(`${s.url}${API_PREFIX}/modules/${p.sha256}`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream' },
    body: p.bytes,
  });
  if (!up.ok) throw new Error(`upload: ${up.status} ${await up.text()}`);
  const rec = await fetch(`${s.url}${API_PREFIX}/patches`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ manifest: p.manifest, publish: true }),
  });
  if (!rec.ok) throw new Error(`publish: ${rec.status} ${await rec.text()}`);
}

/** A tuf-js client pinned to `rootJson`, reading metadata and targets from `base` (server, mirror or bundle). */
export async function fetchWithTuf(
  base: string,
  rootJson: string,
  kernelId: string,
  level: number,
): Promise<{ bytes: Buffer; manifest: PatchManifest } | undefined> {
  const dir = await tempDir('client');
  try {
    await mkdir(join(dir, 'metadata'));
    await mkdir(join(dir, 'targets'));
    await writeFile(join(dir, 'metadata', 'root.json'), rootJson);
    const u = new Updater({
      metadataDir: join(dir, 'metadata'),
      metadataBaseUrl: `${base}/tuf/metadata`,
      targetDir: join(dir, 'targets'),
      targetBaseUrl: `${base}/tuf/targets`,
      config: { fetchRetry: 0 },
    });
    await u.refresh();
    const info = await u.getTargetInfo(tufTargetPath(kernelId, level, moduleNameFor(kernelId, level)));
    if (info === undefined) return undefined;
    const out = await u.downloadTarget(info, join(dir, 'targets', 'module.ko'));
    return { bytes: await readFile(out), manifest: targetCustomValidator.parse(info.custom).livegraft.manifest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
