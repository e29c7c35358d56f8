/**
 * The Prometheus alert rules and the Grafana dashboard in deploy/monitoring:
 * promtool checks the rules and runs their unit tests, and every Livegraft
 * metric they use is one a real server exports at /metrics.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { REPO } from '../agent-deb.ts';
import { run } from '../debian-root.ts';
import { parseConfig } from '../../packages/server/src/config.ts';
import { startServer, type RunningServer } from '../../packages/server/src/server.ts';

const DIR = join(REPO, 'deploy/monitoring');
const RULES = join(DIR, 'livegraft-alerts.yml');

interface Dashboard {
  uid: string;
  panels: { id: number; title: string; datasource: { uid: string }; targets: { expr: string }[] }[];
}

const metricNames = (expr: string): string[] =>
  [...expr.matchAll(/\b(livegraft_[a-z_]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1] ?? '');

describe('monitoring: alert rules and dashboard', () => {
  let dir: string;
  let server: RunningServer;
  let exported: Set<string>;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lg-mon-'));
    server = await startServer(
      parseConfig({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0, logLevel: 'silent' }),
    );
    const token = readFileSync(join(dir, 'server/admin-token'), 'utf8').trim();
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const text = await res.text();
    exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? ''));
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('promtool accepts the rules and their unit tests pass; a broken rule is rejected', async () => {
    const check = await run('promtool', ['check', 'rules', RULES]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 8 rules found/);
    const test = await run('promtool', ['test', 'rules', join(DIR, 'livegraft-alerts.test.yml')]);
    assert.equal(test.code, 0, test.stdout + test.stderr);
    const broken = join(dir, 'broken.yml');
    writeFileSync(broken, readFileSync(RULES, 'utf8').replace('expr: up{job="livegraft"} == 0', 'expr: up{job= == 0'));
    const bad = await run('promtool', ['check', 'rules', broken]);
    assert.notEqual(bad.code, 0);
  });

  it('alerts cover a down server, failed and stalled applies, halted rollouts, stale hosts, wrong clocks, SLA breaches, tripwires', () => {
    const rules = (
      parse(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }
    ).groups.flatMap((g) => g.rules);
    assert.deepEqual(
      rules.map((r) => r.alert),
      [
        'LivegraftServerDown',
        'LivegraftApplyFailures',
        'LivegraftAppliesStalled',
        'LivegraftRolloutHalted',
        'LivegraftHostsStale',
        'LivegraftHostClockSkewed',
        'LivegraftSlaBreached',
        'LivegraftTripwireHit',
      ],
    );
    for (const r of rules) {
      for (const m of metricNames(r.expr)) assert.ok(exported.has(m), `${r.alert}: the server exports no ${m}`);
    }
  });

  it('the Grafana dashboard uses only metrics the server exports, through one data source input', () => {
    const d = JSON.parse(readFileSync(join(DIR, 'livegraft-dashboard.json'), 'utf8')) as Dashboard;
    assert.equal(d.uid, 'livegraft-server');
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const used = new Set<string>();
    for (const p of d.panels) {
      assert.equal(p.datasource.uid, '${DS_PROMETHEUS}', p.title);
      assert.ok(p.targets.length > 0, p.title);
      for (const t of p.targets) for (const m of metricNames(t.expr)) used.add(m);
    }
    for (const m of used) assert.ok(exported.has(m), `the server exports no ${m}`);
    for (const m of [
      'livegraft_hosts',
      'livegraft_feed_level',
      'livegraft_checkin_duration_seconds',
      'livegraft_push_latency_seconds',
      'livegraft_apply_results_total',
      'livegraft_tripwire_events_total',
      'livegraft_sla_open_breaches',
      'livegraft_hosts_stale',
    ]) {
      assert.ok(used.has(m), `the dashboard shows ${m}`);
    }
  });
});
