import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ComplianceReport, FeedRecord, FleetExposure, HostRecord, TokenCreated } from '@livegraft/protocol';
import type {
  CvePage,
  DashboardActivity,
  DashboardCompliance,
  DashboardOverview,
  DashboardRollouts,
  HostHistory,
  HostPage,
  SessionProbe,
} from '@livegraft/protocol/dashboard';
import {
  countHostStatuses,
  HOST_STATUSES,
  hostStatus,
  mayRead,
  type ReadSection,
} from '@livegraft/protocol/dashboard-rules';
import type { ApiRole } from '@livegraft/protocol';
import { CHECKIN_INTERVAL_SEC, hostByName, startDashboardWorld, type DashboardWorld } from './dashboard-world.ts';
import { pgSkip, startPostgres, type PgCluster } from './pg-harness.ts';

/**
 * The dashboard's summary endpoints (/api/v1/dashboard/...) against a real
 * server seeded through its API: each number is the one the full API gives.
 */

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'none', 'not rated'] as const;

let cluster: Promise<PgCluster> | undefined;
after(async () => {
  if (cluster !== undefined) await (await cluster).stop();
});

const backends: [string, () => Promise<string | undefined>, string | false][] = [
  ['SQLite', () => Promise.resolve(undefined), false],
  [
    'PostgreSQL',
    async () => {
      cluster ??= startPostgres();
      return (await cluster).createDatabase();
    },
    pgSkip,
  ],
];

for (const [backend, makeDatabase, skip] of backends)
  describe(`dashboard summary endpoints (${backend})`, { skip }, () => {
    let world: DashboardWorld;
    let dir: string;
    let worker: TokenCreated;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-api-'));
      const database = await makeDatabase();
      // No built dashboard needed: only the API is asked.
      world = await startDashboardWorld(dir, database === undefined ? {} : { database });
      worker = await world.ok<TokenCreated>('POST', '/tokens', { name: 'builder-1', role: 'worker' });
    });

    after(async () => {
      await world?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    test('overview: host statuses and exposure severities each add up to their total', async () => {
      const o = await world.ok<DashboardOverview>('GET', '/dashboard/overview', undefined, world.viewer.token);
      const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
      assert.equal(o.hosts.total, hosts.length);
      assert.equal(
        HOST_STATUSES.reduce((n, s) => n + o.hosts[s], 0),
        o.hosts.total,
      );
      const expected = countHostStatuses(hosts, CHECKIN_INTERVAL_SEC);
      for (const s of HOST_STATUSES) assert.equal(o.hosts[s], expected[s], s);
      for (const s of ['stale', 'failed', 'attention', 'behind'] as const) assert.ok(o.hosts[s] > 0, s);

      const full = await world.ok<FleetExposure>('GET', '/exposure');
      assert.ok(o.exposure !== null, 'a viewer may read compliance data');
      assert.deepEqual(o.exposure.counts, full.counts);
      assert.equal(
        SEVERITIES.reduce((n, s) => n + (o.exposure?.counts[s] ?? 0), 0),
        o.exposure.counts.total,
      );
      assert.ok(o.exposure.counts['not rated'] > 0, 'the seeded fleet has not-rated exposures');
      assert.equal(o.exposure.mitigated, full.mitigated);
      assert.ok(JSON.stringify(o).length < 4096, 'the overview is a summary');
    });

    test('host page: every host once across pages, in the overview buckets, searched, filtered and sorted', async () => {
      const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
      const full = await world.ok<FleetExposure>('GET', '/exposure');
      const first = await world.ok<HostPage>('GET', '/dashboard/hosts?limit=3', undefined, world.viewer.token);
      assert.equal(first.total, hosts.length);
      assert.equal(first.matching, hosts.length);
      assert.equal(first.items.length, 3);
      assert.equal(first.exposure, true);
      assert.deepEqual(first.facets.feeds, [...new Set(hosts.map((h) => h.feed ?? ''))].sort());
      assert.deepEqual(first.facets.kernels, [...new Set(hosts.map((h) => h.release))].sort());
      const rows: HostPage['items'] = [];
      for (let offset = 0; offset < first.total; offset += 3)
        rows.push(...(await world.ok<HostPage>('GET', `/dashboard/hosts?limit=3&offset=${offset}`)).items);
      assert.deepEqual(rows.map((r) => r.id).sort(), hosts.map((h) => h.id).sort(), 'every host once');
      // Sorted by status (the overview's order of buckets), then hostname.
      const order = rows.map((r) => HOST_STATUSES.indexOf(r.status as (typeof HOST_STATUSES)[number]));
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
      );
      for (const r of rows) {
        const h = hosts.find((x) => x.id === r.id)!;
        assert.equal(r.status, hostStatus(h, CHECKIN_INTERVAL_SEC), r.hostname);
        assert.equal(r.appliedLevel, h.appliedLevel);
        const e = full.perHost.find((x) => x.hostId === r.id);
        assert.deepEqual(
          r.exposure,
          e === undefined ? null : { critical: e.counts.critical, high: e.counts.high, total: e.counts.total },
        );
      }
      const o = await world.ok<DashboardOverview>('GET', '/dashboard/overview');
      for (const status of HOST_STATUSES) {
        const p = await world.ok<HostPage>('GET', `/dashboard/hosts?status=${status}&limit=200`);
        assert.equal(p.matching, o.hosts[status], status);
        assert.ok(p.items.every((r) => r.status === status));
      }

      const found = await world.ok<HostPage>('GET', '/dashboard/hosts?q=CANARY');
      assert.deepEqual(
        found.items.map((r) => r.hostname).sort(),
        hosts
          .filter((h) => h.hostname.includes('canary'))
          .map((h) => h.hostname)
          .sort(),
      );
      const one = hosts[0]!;
      assert.deepEqual(
        (await world.ok<HostPage>('GET', `/dashboard/hosts?q=${one.id.slice(0, 8)}`)).items.map((r) => r.id),
        [one.id],
      );
      const prod = await world.ok<HostPage>('GET', '/dashboard/hosts?feed=production&level=1&limit=200');
      assert.equal(prod.matching, hosts.filter((h) => h.feed === 'production' && h.appliedLevel === 1).length);
      assert.ok(prod.matching > 0);
      const byName = await world.ok<HostPage>('GET', '/dashboard/hosts?sort=hostname&order=desc&limit=200');
      assert.deepEqual(
        byName.items.map((r) => r.hostname),
        hosts
          .map((h) => h.hostname)
          .sort()
          .reverse(),
      );
      for (const bad of ['limit=201', 'limit=0', 'status=lost', 'sort=ram', 'order=up', 'extra=1'])
        assert.equal((await world.call('GET', `/dashboard/hosts?${bad}`)).status, 400, bad);
    });

    test('rollouts: per feed and kernel, the hosts on its level, failed and held, as the full host list says', async () => {
      const hosts = (await world.ok<HostRecord[]>('GET', '/hosts')).filter((h) => (h.revokedAt ?? null) === null);
      const feeds = await world.ok<FeedRecord[]>('GET', '/feeds');
      const r = await world.ok<DashboardRollouts>('GET', '/dashboard/rollouts', undefined, world.viewer.token);
      const keys = new Set(hosts.map((h) => `${h.feed} ${h.kernelId}`));
      assert.deepEqual(new Set(r.groups.map((g) => `${g.feed} ${g.kernelId}`)), keys);
      for (const g of r.groups) {
        const level = feeds.find((f) => f.name === g.feed)?.levels.find((l) => l.kernelId === g.kernelId)?.level ?? 0;
        const mine = hosts.filter((h) => h.feed === g.feed && h.kernelId === g.kernelId);
        const held = mine.filter(
          (h) => h.appliedLevel < level && h.state !== 'error' && (h.desired?.ignoredFixes ?? []).length > 0,
        );
        assert.deepEqual(
          { ...g, held: g.held.map((x) => x.hostname) },
          {
            feed: g.feed,
            kernelId: g.kernelId,
            level,
            total: mine.length,
            applied: mine.filter((h) => h.appliedLevel >= level && h.state !== 'error').length,
            failed: mine.filter((h) => h.state === 'error').length,
            heldCount: held.length,
            held: held.map((h) => h.hostname),
          },
        );
      }
      assert.ok(r.groups.some((g) => g.applied > 0 && g.level > 0));
      assert.ok(r.groups.some((g) => g.failed > 0));
    });

    test('compliance summary is the report summary, with a history ending at the open windows', async () => {
      const c = await world.ok<DashboardCompliance>('GET', '/dashboard/compliance', undefined, world.viewer.token);
      const report = await world.ok<ComplianceReport>('GET', '/reports/compliance?format=json');
      assert.deepEqual(c.summary, { ...report.summary });
      assert.equal(c.historyDays, 60);
      const now = (label: string): number => c.history.find((s) => s.label === label)?.points.at(-1)?.v ?? -1;
      const open = [...report.breaches, ...report.upcoming].filter((w) => w.end === null);
      assert.equal(now('critical (open)'), open.filter((w) => w.severity === 'critical').length);
      assert.equal(now('high (open)'), open.filter((w) => w.severity === 'high').length);
      for (const s of c.history) assert.equal(s.points.length, 61);
    });

    test('CVE page: total, search and pages cover every CVE with an open SLA window', async () => {
      const report = await world.ok<ComplianceReport>('GET', '/reports/compliance?format=json');
      const open = new Set([...report.breaches, ...report.upcoming].filter((w) => w.end === null).map((w) => w.cve));
      assert.ok(open.size > 10, 'enough open CVEs to page');
      const first = await world.ok<CvePage>('GET', '/dashboard/cves?limit=7', undefined, world.viewer.token);
      assert.equal(first.total, open.size);
      assert.equal(first.matching, open.size);
      assert.equal(first.items.length, 7);
      const seen: string[] = [];
      for (let offset = 0; offset < first.total; offset += 7) {
        const p = await world.ok<CvePage>('GET', `/dashboard/cves?limit=7&offset=${offset}`);
        seen.push(...p.items.map((c) => c.id));
      }
      assert.deepEqual(new Set(seen), open);
      assert.equal(seen.length, open.size, 'no CVE on two pages');

      const some = [...open][0] ?? '';
      const part = some.slice(4).toLowerCase();
      const found = await world.ok<CvePage>('GET', `/dashboard/cves?q=${part}`);
      assert.ok(found.items.some((c) => c.id === some));
      assert.ok(found.items.every((c) => c.id.toLowerCase().includes(part)));
      assert.equal(found.total, open.size);
      const bad = await world.call('GET', '/dashboard/cves?q=%3Cscript%3E');
      assert.equal(bad.status, 400);
    });

    test('activity: applies, tripwire hits and readable token names, newest first', async () => {
      const a = await world.ok<DashboardActivity>(
        'GET',
        '/dashboard/activity?limit=100',
        undefined,
        world.viewer.token,
      );
      const kinds = new Set(a.items.map((i) => i.kind));
      assert.ok(kinds.has('apply'), 'applies');
      assert.ok(kinds.has('tripwire'), 'tripwire hits');
      assert.ok(kinds.has('audit'), 'audit entries');
      const sorted = [...a.items].sort((x, y) => (x.at < y.at ? 1 : -1));
      assert.deepEqual(
        a.items.map((i) => i.at),
        sorted.map((i) => i.at),
      );
      const token = a.items.find((i) => i.kind === 'audit' && i.entry.action === 'token.create');
      assert.ok(token?.kind === 'audit');
      assert.ok(['ops-alice', 'audit-bob', 'builder-1'].includes(token.targetName ?? ''), token.targetName ?? 'null');
      assert.ok(!a.items.some((i) => i.kind === 'audit' && i.entry.action === 'session.create'));
    });

    test('host history: every apply (levels 1 and 2) and the tag changes', async () => {
      const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
      const canary = hostByName(hosts, 'web-canary-1');
      const h = await world.ok<HostHistory>(
        'GET',
        `/dashboard/hosts/${canary.id}/history`,
        undefined,
        world.viewer.token,
      );
      assert.deepEqual(
        h.applies.map((x) => [x.fromLevel, x.toLevel, x.ok]),
        [
          [1, 2, true],
          [0, 1, true],
        ],
      );
      assert.equal(h.applies[0]?.hostname, 'web-canary-1');
      const tags = h.changes.find((e) => e.action === 'host.update');
      assert.deepEqual(tags?.details, { tags: ['web', 'eu-west'] });
      assert.equal((await world.call('GET', '/dashboard/hosts/no-such-host/history')).status, 404);
    });

    test('session probe: signed out is an answer, not a 401', async () => {
      const res = await fetch(`${world.url}/api/v1/dashboard/session`);
      assert.equal(res.status, 200);
      assert.deepEqual((await res.json()) as SessionProbe, { session: null });
      const bad = await world.call<SessionProbe>('GET', '/dashboard/session', undefined, 'not-a-token-of-this-server');
      assert.deepEqual(bad, { status: 200, json: { session: null } });
      const me = await world.ok<SessionProbe>('GET', '/dashboard/session', undefined, world.viewer.token);
      assert.equal(me.session?.name, 'audit-bob');
      assert.equal(me.session?.role, 'viewer');
    });

    test('roles: a worker token reads none of the summaries; no token gets 401', async () => {
      for (const path of [
        '/dashboard/overview',
        '/dashboard/compliance',
        '/dashboard/cves',
        '/dashboard/activity',
        '/dashboard/hosts',
        '/dashboard/rollouts',
      ]) {
        assert.equal((await world.call('GET', path, undefined, worker.token)).status, 403, path);
        assert.equal((await fetch(`${world.url}/api/v1${path}`)).status, 401, path);
      }
    });

    test('the read rules the dashboard follows are the ones the server enforces', async () => {
      const endpoints: [ReadSection, string][] = [
        ['fleet', '/hosts'],
        ['fleet', '/audit?limit=1'],
        ['compliance', '/exposure'],
        ['compliance', '/compliance/policy'],
        ['compliance', '/tripwires?limit=1'],
        ['pipeline', '/fixes'],
        ['tokens', '/tokens'],
        ['tokens', '/registration-keys'],
      ];
      const tokens: [ApiRole, string][] = [
        ['admin', world.admin],
        ['operator', world.operator.token],
        ['viewer', world.viewer.token],
        ['worker', worker.token],
      ];
      for (const [role, token] of tokens) {
        for (const [section, path] of endpoints) {
          const { status } = await world.call('GET', path, undefined, token);
          assert.equal(status, mayRead(role, section) ? 200 : 403, `${role} GET ${path}`);
        }
      }
    });
  });
