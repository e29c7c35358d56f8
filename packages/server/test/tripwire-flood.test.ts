// One host token cannot flood the tripwire store or the alert channel: events for
// CVEs the host does not run are refused as suspicious, reports are rate limited per
// host, stored events are capped per host and expire, and alerts are deduplicated.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TripwireEvent, TripwireRecord } from '@livegraft/protocol';
import { DAY, PROC_192, startWorld, T0, type World } from './compliance-world.ts';

const CARRIED = 'CVE-2024-1086';
const NOT_CARRIED = 'CVE-2099-0002';
const CAP = 150;

function events(n: number, cve: string, from: number): TripwireEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    cve,
    pid: from + i,
    uid: 1000,
    comm: 'exploit',
    at: new Date(T0 + from + i).toISOString(),
  }));
}

describe('tripwire flood limits', () => {
  let w: World;
  let hook: Server;
  const alerts: Array<{ host: { hostname: string }; events: TripwireRecord[] }> = [];
  const hosts: Record<string, string> = {};

  const report = (name: string, evs: TripwireEvent[]) =>
    w.call('POST', '/hosts/tripwire', { token: hosts[name] ?? '', json: { events: evs } });
  const refusedMetric = async (reason: string): Promise<number> => {
    const text = (await w.call('GET', '/metrics')).text;
    const m = new RegExp(`^livegraft_tripwire_refused_events_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
    return Number(m?.[1] ?? 0);
  };

  before(async () => {
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        alerts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as (typeof alerts)[number]);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    w = await startWorld({
      alertWebhook: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
      tripwireLimits: { reportsBurst: 3, reportsPerMinute: 1, maxEventsPerHost: CAP, retentionDays: 30 },
    });
    await w.publishLevel(PROC_192, 1, [CARRIED]);
    for (const name of ['forger', 'flooder', 'marker']) {
      hosts[name] = (await w.enroll(name, PROC_192)).token;
      assert.equal((await w.checkin(hosts[name] ?? '', PROC_192, 1)).status, 200);
    }
  });
  after(async () => {
    await w?.stop();
    await new Promise<void>((r) => hook.close(() => r()));
  });

  it('refuses events for CVEs the host’s applied level does not carry, and counts them', async () => {
    const r = await report('forger', [...events(10, NOT_CARRIED, 0), ...events(1, CARRIED, 100)]);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { accepted: 1 });
    assert.equal(await refusedMetric('not_applied'), 10);
    const stored = (await w.call('GET', '/tripwires?cve=CVE-2099-0002')).json as TripwireRecord[];
    assert.deepEqual(stored, []);
  });

  it('rate limits reports per host with 429, without touching other hosts', async () => {
    assert.equal((await report('forger', events(1, CARRIED, 200))).status, 200);
    assert.equal((await report('forger', events(1, CARRIED, 300))).status, 200);
    const limited = await report('forger', events(1, CARRIED, 400));
    assert.equal(limited.status, 429);
    assert.equal((limited.json as { code: string }).code, 'RATE_LIMITED');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.equal((await report('flooder', events(1, CARRIED, 0))).status, 200);
  });

  it('caps the events stored per host and alerts once per host and CVE', async () => {
    const first = await report('flooder', events(100, CARRIED, 1000));
    assert.deepEqual(first.json, { accepted: 100 });
    const second = await report('flooder', events(100, CARRIED, 2000));
    assert.deepEqual(second.json, { accepted: CAP - 101 }, 'only up to the cap (one event was stored before)');
    assert.equal(await refusedMetric('host_cap'), 51);
    const stored = (await w.call('GET', '/tripwires?limit=1000')).json as TripwireRecord[];
    assert.equal(stored.filter((e) => e.hostname === 'flooder').length, CAP);

    // A marker alert from another host comes after every earlier one (alerts are delivered in order).
    assert.deepEqual((await report('marker', events(1, CARRIED, 0))).json, { accepted: 1 });
    for (let i = 0; i < 500 && !alerts.some((a) => a.host.hostname === 'marker'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(
      alerts.some((a) => a.host.hostname === 'marker'),
      'the marker alert arrived',
    );
    assert.equal(alerts.filter((a) => a.host.hostname === 'flooder').length, 1, 'three reports, one alert');
  });

  it('deletes events older than the retention period', async () => {
    w.setNow(T0 + 31 * DAY);
    await w.checkin(hosts['marker'] ?? '', PROC_192, 1);
    assert.deepEqual((await report('marker', events(1, CARRIED, 9000))).json, { accepted: 1 });
    const left = (await w.call('GET', '/tripwires?limit=1000')).json as TripwireRecord[];
    assert.deepEqual(
      left.map((e) => [e.hostname, e.pid]),
      [['marker', 9000]],
    );
  });
});
