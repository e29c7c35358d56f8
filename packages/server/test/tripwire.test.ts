import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseTripwireLine, type TripwireEvent, type TripwireRecord } from '@livegraft/protocol';
import { PROC_192, startWorld, T0, type World } from './compliance-world.ts';

interface Received {
  body: unknown;
  headers: IncomingMessage['headers'];
}

/** A webhook receiver that fails the first `failures` deliveries with 503. */
async function receiver(
  failures: number,
): Promise<{ url: string; got: Received[]; attempts: () => number; close: () => Promise<void> }> {
  const got: Received[] = [];
  let attempts = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      attempts++;
      if (attempts <= failures) {
        res.writeHead(503).end();
        return;
      }
      got.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    attempts: () => attempts,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const LINE =
  '<4>[  812.004211] livegraft: tripwire cve=CVE-2099-0001 fix=LG-DEMO-0003 level=3 pid=4242 uid=1000 comm=sh';

describe('tripwire events', () => {
  let w: World;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let host: { hostId: string; token: string };
  let other: { hostId: string; token: string };

  before(async () => {
    hook = await receiver(2);
    w = await startWorld({ alertWebhook: hook.url });
    host = await w.enroll('db-1.example', PROC_192);
    other = await w.enroll('db-2.example', PROC_192);
    // Tripwire events count only for CVEs of the level a host runs.
    await w.publishLevel(PROC_192, 3, ['CVE-2099-0001', 'CVE-2024-1086']);
    for (const h of [host, other]) assert.equal((await w.checkin(h.token, PROC_192, 3)).status, 200);
  });
  after(async () => {
    await w?.stop();
    await hook?.close();
  });

  it('parses the kernel log line LG_TRIPWIRE writes', () => {
    assert.deepEqual(parseTripwireLine(LINE), {
      cve: 'CVE-2099-0001',
      fixId: 'LG-DEMO-0003',
      level: 3,
      pid: 4242,
      uid: 1000,
      comm: 'sh',
      message: LINE,
    });
    assert.equal(parseTripwireLine('livegraft: tripwire cve=CVE-2099-0001 fix=X level=1 pid=1 uid=0'), undefined);
    assert.equal(parseTripwireLine('random kernel line'), undefined);
  });

  it('records events, counts them by CVE and alerts the webhook with retries, without waiting for it', async () => {
    const parsed = parseTripwireLine(LINE);
    assert.ok(parsed !== undefined);
    const events: TripwireEvent[] = [
      { ...parsed, kernelTime: 812.004211, at: new Date(T0 + 1000).toISOString() },
      { ...parsed, pid: 4243, kernelTime: 813.5, at: new Date(T0 + 2000).toISOString() },
    ];
    const r = await w.call('POST', '/hosts/tripwire', { token: host.token, json: { events } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { accepted: 2 });
    // The answer came before the webhook (failing twice, with backoff between) accepted anything.
    assert.equal(hook.got.length, 0);
    // The same batch again (an agent retrying after a lost answer) is not counted twice.
    const again = await w.call('POST', '/hosts/tripwire', { token: host.token, json: { events } });
    assert.deepEqual(again.json, { accepted: 0 });
    await w.call('POST', '/hosts/tripwire', {
      token: other.token,
      json: { events: [{ cve: 'CVE-2024-1086', pid: 7, uid: 0, comm: 'x', at: new Date(T0 + 3000).toISOString() }] },
    });

    // Two 503s, then delivered (backoff is shortened for the test).
    for (let i = 0; i < 200 && hook.got.length < 2; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(hook.got.length, 2);
    assert.equal(hook.attempts(), 4);
    const first = hook.got[0]?.body as {
      type: string;
      text: string;
      host: { hostname: string };
      events: TripwireRecord[];
    };
    assert.equal(hook.got[0]?.headers['content-type'], 'application/json');
    assert.equal(first.type, 'livegraft.tripwire');
    assert.equal(first.host.hostname, 'db-1.example');
    assert.deepEqual(
      first.events.map((e) => e.pid),
      [4242, 4243],
    );
    assert.match(
      first.text,
      /exploit attempt blocked on db-1\.example: CVE-2099-0001 by pid 4242 uid 1000 comm sh \(2 events\)/,
    );

    const metrics = await w.call('GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^livegraft_tripwire_events_total\{cve="CVE-2099-0001"\} 2$/m);
    assert.match(metrics.text, /^livegraft_tripwire_events_total\{cve="CVE-2024-1086"\} 1$/m);
  });

  it('lists events newest first, by host and by CVE', async () => {
    const all = (await w.call('GET', '/tripwires')).json as TripwireRecord[];
    assert.deepEqual(
      all.map((e) => [e.hostname, e.cve, e.pid]),
      [
        ['db-2.example', 'CVE-2024-1086', 7],
        ['db-1.example', 'CVE-2099-0001', 4243],
        ['db-1.example', 'CVE-2099-0001', 4242],
      ],
    );
    const e = all[2];
    assert.equal(e?.fixId, 'LG-DEMO-0003');
    assert.equal(e?.level, 3);
    assert.equal(e?.kernelTime, 812.004211);
    const byCve = (await w.call('GET', '/tripwires?cve=CVE-2024-1086')).json as TripwireRecord[];
    assert.deepEqual(
      byCve.map((x) => x.hostname),
      ['db-2.example'],
    );
    const byHost = (await w.call('GET', `/hosts/${host.hostId}/tripwires?limit=1`)).json as TripwireRecord[];
    assert.deepEqual(
      byHost.map((x) => x.pid),
      [4243],
    );
  });

  it('refuses admin tokens, empty and oversized batches and malformed events', async () => {
    const ev = { cve: 'CVE-2099-0001', pid: 1, uid: 0, comm: 'a', at: new Date(T0).toISOString() };
    assert.equal((await w.call('POST', '/hosts/tripwire', { json: { events: [ev] } })).status, 403);
    assert.equal((await w.call('POST', '/hosts/tripwire', { token: host.token, json: { events: [] } })).status, 400);
    const many = Array.from({ length: 101 }, (_, i) => ({ ...ev, pid: i }));
    assert.equal((await w.call('POST', '/hosts/tripwire', { token: host.token, json: { events: many } })).status, 400);
    const bad = await w.call('POST', '/hosts/tripwire', {
      token: host.token,
      json: { events: [{ ...ev, cve: 'CVE-1' }] },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /cve/);
  });
});
