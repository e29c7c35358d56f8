import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { affected, loadDefaultDataset, type CveDatabase } from '@livegraft/inspector';
import {
  API_PREFIX,
  kernelIdFromProcVersion,
  type CheckinRequest,
  type EnrollResponse,
  type KernelIdentity,
  type PatchManifest,
} from '@livegraft/protocol';
import type { TripwireLimits } from '../src/compliance/tripwire-guard.ts';
import { parseConfig, startServer, type RunningServer } from '../src/index.ts';
import { buildPatch } from './helpers.ts';

/** Real Debian /proc/version lines: the inspector maps them to upstream 6.1.192 and 6.1.76 with Debian's fixes. */
export const PROC_192 =
  'Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)';
export const PROC_76 =
  'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)';

export function identity(procVersion: string): KernelIdentity {
  const release = /^Linux version (\S+)/.exec(procVersion)?.[1] ?? 'unknown';
  return {
    id: kernelIdFromProcVersion(procVersion),
    release,
    version: procVersion.slice(procVersion.indexOf('#')),
    machine: 'x86_64',
    procVersion,
  };
}

export const DAY = 86_400_000;
/** After every CVE in the shipped dataset was published. */
export const T0 = Date.parse('2026-09-01T00:00:00.000Z');

let shared: Promise<CveDatabase> | undefined;
/** One copy of the shipped dataset per test process. */
export function dataset(): Promise<CveDatabase> {
  shared ??= loadDefaultDataset();
  return shared;
}

export async function affectedIds(kernel: string): Promise<Map<string, string>> {
  const r = affected(await dataset(), kernel);
  return new Map(r.affected.map((f) => [f.id, f.severity]));
}

export interface World {
  server: RunningServer;
  dir: string;
  admin: string;
  registrationKey: string;
  /** Moves the server's clock. */
  setNow(ms: number): void;
  call(method: string, path: string, init?: { token?: string | null; json?: unknown }): Promise<Reply>;
  enroll(hostname: string, procVersion: string): Promise<EnrollResponse>;
  checkin(token: string, procVersion: string, level: number, extra?: Partial<CheckinRequest>): Promise<Reply>;
  /** Uploads and publishes a level for the kernel fixing the given CVEs; `tweak` edits its manifest first. */
  publishLevel(procVersion: string, level: number, cves: string[], tweak?: (m: PatchManifest) => void): Promise<void>;
  /** Stops the server and starts a new one over the same data directory. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface Reply {
  status: number;
  headers: Headers;
  json: unknown;
  bytes: Buffer;
  text: string;
}

export async function startWorld(
  opts: {
    alertWebhook?: string;
    fetch?: typeof fetch;
    tripwireLimits?: Partial<TripwireLimits>;
    vexAuthor?: string;
  } = {},
): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-compliance-test-'));
  let now = T0;
  const config = parseConfig({
    dataDir: dir,
    port: 0,
    logLevel: 'silent',
    ...(opts.alertWebhook === undefined ? {} : { alertWebhook: opts.alertWebhook }),
    ...(opts.vexAuthor === undefined ? {} : { vexAuthor: opts.vexAuthor }),
  });
  const start = async (): Promise<RunningServer> =>
    startServer(config, {
      logger: pino({ level: 'silent' }),
      clock: () => new Date(now),
      compliance: {
        dataset: await dataset(),
        alertBackoffMs: () => 20,
        ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
        ...(opts.tripwireLimits === undefined ? {} : { tripwireLimits: opts.tripwireLimits }),
      },
    });
  let server = await start();
  const admin = (await readFile(join(dir, 'admin-token'), 'utf8')).trim();
  const registrationKey = (await readFile(join(dir, 'registration-key'), 'utf8')).trim();
  const w: World = {
    server,
    dir,
    admin,
    registrationKey,
    setNow(ms) {
      now = ms;
    },
    async call(method, path, init = {}) {
      const headers: Record<string, string> = {};
      const token = init.token === undefined ? admin : init.token;
      if (token !== null) headers['authorization'] = `Bearer ${token}`;
      if (init.json !== undefined) headers['content-type'] = 'application/json';
      const url = path.startsWith('/metrics') ? `${server.url}${path}` : `${server.url}${API_PREFIX}${path}`;
      const res = await fetch(url, {
        method,
        headers,
        ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
      });
      const bytes = Buffer.from(await res.arrayBuffer());
      const isJson = (res.headers.get('content-type') ?? '').includes('json');
      const text = bytes.toString('utf8');
      return { status: res.status, headers: res.headers, bytes, text, json: isJson ? JSON.parse(text) : undefined };
    },
    async enroll(hostname, procVersion) {
      const r = await w.call('POST', '/hosts/enroll', {
        token: null,
        json: { registrationKey, hostname, kernel: identity(procVersion), agentVersion: 'test/1' },
      });
      if (r.status !== 201) throw new Error(`enrol failed: ${r.status} ${r.text}`);
      return r.json as EnrollResponse;
    },
    async checkin(token, procVersion, level, extra = {}) {
      const body: CheckinRequest = {
        kernel: identity(procVersion),
        appliedLevel: level,
        state: level > 0 ? 'patched' : 'unpatched',
        agentVersion: 'test/1',
        uptimeSec: 3600,
        ...extra,
      };
      const r = await w.call('POST', '/hosts/checkin', { token, json: body });
      if (r.status !== 200) throw new Error(`check-in failed: ${r.status} ${r.text}`);
      return r;
    },
    async publishLevel(procVersion, level, cves, tweak) {
      const k = identity(procVersion);
      const patch = buildPatch({ kernelId: k.id, level });
      patch.manifest.cves = [...cves].sort();
      patch.manifest.fixes = [
        {
          id: `LG-TEST-${level}`,
          title: `fixes for level ${level}`,
          cves: patch.manifest.cves,
          functions: [{ name: 'nft_verdict_init', object: 'nf_tables' }],
        },
      ];
      tweak?.(patch.manifest);
      const upload = await fetch(`${server.url}${API_PREFIX}/modules/${patch.sha256}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
        body: patch.bytes,
      });
      if (!upload.ok) throw new Error(`upload failed: ${upload.status} ${await upload.text()}`);
      const rec = await w.call('POST', '/patches', { json: { manifest: patch.manifest, publish: true } });
      if (rec.status >= 300) throw new Error(`publish failed: ${rec.status} ${rec.text}`);
    },
    async restart() {
      await server.close();
      server = await start();
      w.server = server;
    },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return w;
}
