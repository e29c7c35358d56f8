import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  API_PREFIX,
  kernelIdFromProcVersion,
  moduleNameFor,
  type KernelIdentity,
  type PatchManifest,
} from '@livegraft/protocol';
import { elfWithModinfo } from '@livegraft/test-utils';
import { parseConfig, startServer, type RunningServer, type ServerDeps } from '../src/index.ts';

export const PROC_VERSION =
  'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)';
export const KERNEL_ID = kernelIdFromProcVersion(PROC_VERSION);
export const OTHER_KERNEL_ID = kernelIdFromProcVersion(PROC_VERSION.replace('6.1.76-1', '6.1.77-1'));

export function kernelIdentity(procVersion = PROC_VERSION): KernelIdentity {
  return {
    id: kernelIdFromProcVersion(procVersion),
    release: '6.1.0-18-amd64',
    version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)',
    machine: 'x86_64',
    procVersion,
  };
}

export interface ModuleOptions {
  kernelId?: string;
  level?: number;
  livepatch?: boolean;
  /** Overrides the modinfo kernel id or level (to make a module that disagrees with its manifest). */
  modinfoKernelId?: string;
  modinfoLevel?: string;
  modinfoVermagic?: string;
  salt?: string;
}

/** A livepatch module as the builder would make it, plus its manifest. */
export function buildPatch(opts: ModuleOptions = {}): { bytes: Buffer; sha256: string; manifest: PatchManifest } {
  const kernelId = opts.kernelId ?? KERNEL_ID;
  const level = opts.level ?? 1;
  const name = moduleNameFor(kernelId, level);
  const entries = [
    'license=GPL',
    `livegraft_level=${opts.modinfoLevel ?? String(level)}`,
    `livegraft_kernel_id=${opts.modinfoKernelId ?? kernelId}`,
    `salt=${opts.salt ?? ''}`,
    `vermagic=${opts.modinfoVermagic ?? '6.1.0-18-amd64 SMP preempt mod_unload modversions '}`,
    `name=${name}`,
  ];
  if (opts.livepatch !== false) entries.push('livepatch=Y');
  const bytes = elfWithModinfo(entries);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const manifest: PatchManifest = {
    schema: 1,
    name,
    level,
    replace: true,
    kernel: { id: kernelId, release: '6.1.0-18-amd64', vermagic: '6.1.0-18-amd64 SMP preempt mod_unload modversions' },
    fixes: [
      {
        id: `fix-${level}`,
        title: `fix number ${level}`,
        cves: ['CVE-2024-1086'],
        functions: [{ name: 'nft_verdict_init', object: 'nf_tables' }],
      },
    ],
    cves: ['CVE-2024-1086'],
    module: { file: `${name}.ko`, sha256, size: bytes.length },
    builtAt: '2026-01-02T03:04:05.000Z',
    builder: 'livegraft-builder/0.1.0',
  };
  return { bytes, sha256, manifest };
}

/** A clock that moves one second forward on every reading, from a fixed start. */
export function steppingClock(start = Date.parse('2026-03-01T10:00:00.000Z')): () => Date {
  let t = start;
  return () => {
    const now = new Date(t);
    t += 1000;
    return now;
  };
}

export interface Harness {
  server: RunningServer;
  dataDir: string;
  adminToken: string;
  registrationKey: string;
  call: (method: string, path: string, init?: CallInit) => Promise<Answer>;
  restart: () => Promise<void>;
  stop: () => Promise<void>;
}

export interface CallInit {
  token?: string | null;
  json?: unknown;
  body?: Uint8Array;
  contentType?: string;
}

export interface Answer {
  status: number;
  headers: Headers;
  json: unknown;
  bytes: Buffer;
}

/** A real server on 127.0.0.1, random port, fresh temp data dir. `token` defaults to the admin token. */
export async function startHarness(deps: ServerDeps = {}, dataDir?: string): Promise<Harness> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'livegraft-server-test-')));
  const config = parseConfig({ dataDir: dir, port: 0, checkinIntervalSec: 600, logLevel: 'silent' });
  const logger = pino({ level: 'silent' });
  const h: Harness = {
    server: await startServer(config, { logger, ...deps }),
    dataDir: dir,
    adminToken: (await readFile(join(dir, 'admin-token'), 'utf8')).trim(),
    registrationKey: (await readFile(join(dir, 'registration-key'), 'utf8')).trim(),
    async call(method, path, init = {}) {
      const headers: Record<string, string> = {};
      const token = init.token === undefined ? h.adminToken : init.token;
      if (token !== null) headers['authorization'] = `Bearer ${token}`;
      let body: NonNullable<Parameters<typeof fetch>[1]>['body'];
      if (init.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(init.json);
      } else if (init.body !== undefined) {
        headers['content-type'] = init.contentType ?? 'application/octet-stream';
        body = init.body;
      }
      const url = path.startsWith('/healthz') ? `${h.server.url}${path}` : `${h.server.url}${API_PREFIX}${path}`;
      const res = await fetch(url, { method, headers, body });
      const bytes = Buffer.from(await res.arrayBuffer());
      const isJson = (res.headers.get('content-type') ?? '').includes('application/json');
      return {
        status: res.status,
        headers: res.headers,
        bytes,
        json: isJson ? JSON.parse(bytes.toString('utf8')) : undefined,
      };
    },
    async restart() {
      await h.server.close();
      h.server = await startServer(config, { logger, ...deps });
    },
    async stop() {
      await h.server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return h;
}

/** Uploads a module and records its manifest; asserts nothing, returns both answers. */
export async function uploadAndRecord(
  h: Harness,
  patch: ReturnType<typeof buildPatch>,
  publish: boolean,
): Promise<{ upload: Answer; record: Answer }> {
  const upload = await h.call('PUT', `/modules/${patch.sha256}`, { body: patch.bytes });
  const record = await h.call('POST', '/patches', { json: { manifest: patch.manifest, publish } });
  return { upload, record };
}
