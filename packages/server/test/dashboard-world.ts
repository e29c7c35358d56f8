import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { affected } from '@livegraft/inspector';
import {
  API_PREFIX,
  type CheckinRequest,
  type EnrollResponse,
  type HostRecord,
  type RegistrationKeyCreated,
  type TokenCreated,
} from '@livegraft/protocol';
import { parseConfig, startServer, type RunningServer } from '../src/index.ts';
import { dataset, identity, PROC_192, PROC_76 } from './compliance-world.ts';
import { buildPatch } from './helpers.ts';

/**
 * A small, believable fleet for the dashboard's browser tests and
 * screenshots, seeded only through the server's HTTP API. The server clock
 * is moved back in time while seeding (so exposure windows and SLA breaches
 * have a history), then follows the real clock.
 */

const DAY = 86_400_000;
export const CHECKIN_INTERVAL_SEC = 600;

export interface DashboardWorld {
  server: RunningServer;
  url: string;
  admin: string;
  operator: TokenCreated;
  viewer: TokenCreated;
  /** Host tokens by hostname. */
  hosts: Map<string, EnrollResponse & { procVersion: string }>;
  kernel192: string;
  kernel76: string;
  call<T = unknown>(method: string, path: string, json?: unknown, token?: string): Promise<{ status: number; json: T }>;
  ok<T = unknown>(method: string, path: string, json?: unknown, token?: string): Promise<T>;
  checkin(hostname: string, level: number, extra?: Partial<CheckinRequest>): Promise<void>;
  publishLevel(procVersion: string, level: number, cves: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** `database`: a PostgreSQL URL (SQLite in the data dir without it); `enrollBurst`: hosts enrolled at once. */
export async function startDashboardWorld(
  dashboardDir: string,
  o: { database?: string; enrollBurst?: number } = {},
): Promise<DashboardWorld> {
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-world-'));
  let fixed: number | undefined = Date.now() - 45 * DAY;
  const config = parseConfig({
    dataDir: dir,
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    checkinIntervalSec: CHECKIN_INTERVAL_SEC,
    pushSpreadSec: 0,
    ...(o.database === undefined ? {} : { database: o.database }),
    ...(o.enrollBurst === undefined ? {} : { enrollBurst: o.enrollBurst }),
  });
  const server = await startServer(config, {
    logger: pino({ level: 'silent' }),
    clock: () => new Date(fixed ?? Date.now()),
    compliance: { dataset: await dataset() },
    fleet: { promotionTimer: false },
    dashboardDir,
  });
  const admin = (await readFile(join(dir, 'admin-token'), 'utf8')).trim();
  const call = async <T>(method: string, path: string, json?: unknown, token = admin) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${server.url}${API_PREFIX}${path}`, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await res.text();
    return { status: res.status, json: (text === '' ? undefined : JSON.parse(text)) as T };
  };
  const ok = async <T>(method: string, path: string, json?: unknown, token?: string): Promise<T> => {
    const r = await call<T>(method, path, json, token);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  };
  const hosts = new Map<string, EnrollResponse & { procVersion: string }>();
  const w: DashboardWorld = {
    server,
    url: server.url,
    admin,
    operator: await ok<TokenCreated>('POST', '/tokens', { name: 'ops-alice', role: 'operator' }),
    viewer: await ok<TokenCreated>('POST', '/tokens', { name: 'audit-bob', role: 'viewer' }),
    hosts,
    kernel192: identity(PROC_192).id,
    kernel76: identity(PROC_76).id,
    call,
    ok,
    async checkin(hostname, level, extra = {}) {
      const h = hosts.get(hostname);
      if (h === undefined) throw new Error(`no host ${hostname}`);
      const body: CheckinRequest = {
        kernel: identity(h.procVersion),
        appliedLevel: level,
        state: level > 0 ? 'patched' : 'unpatched',
        agentVersion: '0.1.0',
        uptimeSec: 86400 * 12,
        ...extra,
      };
      await ok('POST', '/hosts/checkin', body, h.token);
    },
    async publishLevel(procVersion, level, cves) {
      const k = identity(procVersion);
      const vermagic = `${k.release} SMP preempt mod_unload modversions`;
      const patch = buildPatch({ kernelId: k.id, level, modinfoVermagic: `${vermagic} ` });
      patch.manifest.kernel.release = k.release;
      patch.manifest.kernel.vermagic = vermagic;
      patch.manifest.cves = [...cves].sort();
      patch.manifest.fixes = [
        {
          id: `LG-${k.release.split('-')[1] ?? 'X'}-${String(level).padStart(4, '0')}`,
          title: `cumulative fixes, level ${level}`,
          cves: patch.manifest.cves,
          functions: [{ name: 'nft_verdict_init', object: 'nf_tables' }],
          kind: 'patch',
          commits: [
            {
              id: createHash('sha1').update(`${k.release}/${level}`).digest('hex'),
              subject: `netfilter: nf_tables: reject invalid verdicts (level ${level})`,
            },
          ],
        },
      ];
      patch.manifest.skipped = [
        { id: `LG-SKIP-${level}`, cves: [], reason: `already fixed in this kernel build (${k.release})` },
      ];
      const up = await fetch(`${server.url}${API_PREFIX}/modules/${patch.sha256}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
        body: patch.bytes,
      });
      if (!up.ok) throw new Error(`upload failed: ${up.status} ${await up.text()}`);
      await ok('POST', '/patches', { manifest: patch.manifest, publish: true });
    },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };

  const at = (daysAgo: number): void => {
    fixed = Date.now() - daysAgo * DAY;
  };
  const keys = new Map<string, string>();
  for (const feed of ['canary', 'staging', 'production']) {
    const k = await ok<RegistrationKeyCreated>('POST', '/registration-keys', { name: `${feed} key`, feed, tags: [] });
    keys.set(feed, k.key);
  }
  const enroll = async (hostname: string, feed: string, procVersion: string, tags: string[]): Promise<void> => {
    const r = await ok<EnrollResponse>(
      'POST',
      '/hosts/enroll',
      { registrationKey: keys.get(feed), hostname, kernel: identity(procVersion), agentVersion: '0.1.0' },
      'none',
    );
    hosts.set(hostname, { ...r, procVersion });
    await ok('PATCH', `/hosts/${r.hostId}`, { tags });
  };

  // Staged rollout: canary gets new levels, staging and production by promotion.
  await ok('PATCH', '/feeds/production', { autoPublish: false });
  await ok('PATCH', '/feeds/staging', { promotion: { afterSec: 86400, minPercent: 50, healthySec: 3600 } });

  const cves192 = affected(await dataset(), PROC_192).affected.filter((f) => f.severity === 'critical');
  const cves76 = affected(await dataset(), PROC_76).affected.filter((f) => f.severity === 'critical');
  const ids = (xs: { id: string }[]): string[] => xs.map((x) => x.id);

  at(45);
  await enroll('web-canary-1', 'canary', PROC_192, ['web', 'eu-west']);
  await enroll('web-canary-2', 'canary', PROC_192, ['web', 'us-east']);
  await enroll('api-stg-1', 'staging', PROC_192, ['api', 'eu-west']);
  for (const [name, tags] of [
    ['web-1', ['web', 'eu-west']],
    ['web-2', ['web', 'us-east']],
    ['db-1', ['db', 'eu-west']],
    ['mail-1', ['mail', 'eu-west']],
    ['cache-1', ['cache', 'us-east']],
  ] as const) {
    await enroll(name, 'production', PROC_192, [...tags]);
  }
  await enroll('legacy-1', 'production', PROC_76, ['legacy', 'eu-west']);
  await enroll('batch-1', 'production', PROC_76, ['batch', 'us-east']);
  for (const h of hosts.keys()) await w.checkin(h, 0);

  const apply = (from: number, to: number, daysAgo: number): CheckinRequest['lastApply'] => ({
    action: 'apply',
    fromLevel: from,
    toLevel: to,
    ok: true,
    durationMs: 900 + to * 130,
    at: new Date(Date.now() - daysAgo * DAY).toISOString(),
  });

  // Level 1 (6.1.192): canary, then staging, then production.
  at(40);
  await w.publishLevel(PROC_192, 1, ids(cves192.slice(0, 4)));
  for (const h of ['web-canary-1', 'web-canary-2']) await w.checkin(h, 1, { lastApply: apply(0, 1, 40) });
  at(38);
  await ok('POST', '/feeds/canary/promote', { kernelId: w.kernel192 }, w.operator.token);
  await w.checkin('api-stg-1', 1, { lastApply: apply(0, 1, 38) });
  at(36);
  await ok('POST', '/feeds/staging/promote', { kernelId: w.kernel192 }, w.operator.token);
  for (const h of ['web-1', 'db-1', 'mail-1', 'cache-1']) await w.checkin(h, 1, { lastApply: apply(0, 1, 36) });

  // Level 1 for the old 6.1.76 build, straight to production by hand.
  at(20);
  await w.publishLevel(PROC_76, 1, ids(cves76.slice(0, 6)));
  await ok('PUT', `/feeds/production/levels/${w.kernel76}`, { level: 1 }, w.operator.token);
  await w.checkin('legacy-1', 1, { lastApply: apply(0, 1, 20) });
  await w.checkin('batch-1', 1, { lastApply: apply(0, 1, 20) });

  // Level 2 (6.1.192): canary and staging so far; production is behind a promotion.
  at(3);
  await w.publishLevel(PROC_192, 2, ids(cves192.slice(0, 8)));
  for (const h of ['web-canary-1', 'web-canary-2']) await w.checkin(h, 2, { lastApply: apply(1, 2, 3) });
  at(2);
  await ok('POST', '/feeds/canary/promote', { kernelId: w.kernel192 }, w.operator.token);
  await w.checkin('api-stg-1', 2, { lastApply: apply(1, 2, 2) });
  await w.checkin('batch-1', 1, { uptimeSec: 3 * 86400 });

  // Now: everybody but batch-1 (gone quiet) checks in; a few have something to say.
  fixed = undefined;
  for (const h of ['web-canary-1', 'web-canary-2', 'api-stg-1']) await w.checkin(h, 2);
  for (const h of ['web-1', 'db-1']) await w.checkin(h, 1);
  await w.checkin('web-2', 0);
  await w.checkin('mail-1', 1, {
    state: 'error',
    lastError: 'download failed: TUF timestamp expired (the server clock or the mirror is stale)',
  });
  await w.checkin('cache-1', 1, {
    state: 'needs-attention',
    lastError: 'quarantined: the kill switch file /etc/livegraft/disable is present',
  });
  await w.checkin('legacy-1', 1);
  const cve = cves76[0]?.id ?? 'CVE-2024-1086';
  await ok(
    'POST',
    '/hosts/tripwire',
    {
      events: [
        {
          cve,
          fixId: 'LG-18-0001',
          level: 1,
          pid: 31337,
          uid: 1000,
          comm: 'exploit',
          at: new Date(Date.now() - 3_600_000).toISOString(),
        },
        {
          cve,
          fixId: 'LG-18-0001',
          level: 1,
          pid: 31340,
          uid: 33,
          comm: 'php-fpm',
          at: new Date(Date.now() - 600_000).toISOString(),
        },
      ],
    },
    hosts.get('legacy-1')?.token,
  );
  return w;
}

export function hostByName(hosts: HostRecord[], name: string): HostRecord {
  const h = hosts.find((x) => x.hostname === name);
  if (h === undefined) throw new Error(`no host ${name}`);
  return h;
}
