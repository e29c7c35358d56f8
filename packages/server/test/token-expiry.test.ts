// API tokens may expire: the expiry is stored and listed, an expired token is refused
// with a message that says so, and a metric counts tokens close to expiry.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiError, TokenCreated, TokenRecord } from '@livegraft/protocol';
import { startHarness, type Harness } from './helpers.ts';

const DAY_MS = 86_400_000;

describe('API token expiry', () => {
  let h: Harness;
  let now = Date.parse('2026-06-01T00:00:00.000Z');
  const start = now;

  async function expiringMetric(): Promise<number> {
    const res = await fetch(`${h.server.url}/metrics`, { headers: { authorization: `Bearer ${h.adminToken}` } });
    const line = (await res.text()).split('\n').find((l) => l.startsWith('livegraft_api_tokens_expiring '));
    assert.ok(line, 'the metric is exported');
    return Number(line.split(' ')[1]);
  }

  before(async () => {
    h = await startHarness({ clock: () => new Date(now) });
  });
  after(async () => h.stop());

  it('stores and lists the expiry; the token works until then', async () => {
    const res = await h.call('POST', '/tokens', { json: { name: 'ci', role: 'viewer', expiresInSec: 90 * 86400 } });
    assert.equal(res.status, 201);
    const created = res.json as TokenCreated;
    assert.equal(created.expiresAt, new Date(start + 90 * DAY_MS).toISOString());
    const forever = (await h.call('POST', '/tokens', { json: { name: 'ops', role: 'viewer' } })).json as TokenCreated;
    assert.equal(forever.expiresAt, null);
    const list = (await h.call('GET', '/tokens')).json as TokenRecord[];
    assert.equal(list.find((t) => t.name === 'ci')?.expiresAt, created.expiresAt);
    assert.equal((await h.call('GET', '/hosts', { token: created.token })).status, 200);
    assert.equal(await expiringMetric(), 0);

    now = start + 80 * DAY_MS;
    assert.equal(await expiringMetric(), 1, 'ten days left counts as close to expiry');
    assert.equal((await h.call('GET', '/hosts', { token: created.token })).status, 200);

    now = start + 90 * DAY_MS + 1000;
    const refused = await h.call('GET', '/hosts', { token: created.token });
    assert.equal(refused.status, 401);
    assert.match((refused.json as ApiError).message, /API token "ci" expired at 2026-08-30T00:00:00\.000Z/);
    assert.equal(await expiringMetric(), 0, 'an expired token is no longer "close to expiry"');
    assert.equal((await h.call('GET', '/hosts', { token: forever.token })).status, 200);
  });

  it('refuses an expiry below a minute', async () => {
    const res = await h.call('POST', '/tokens', { json: { name: 'x', role: 'viewer', expiresInSec: 5 } });
    assert.equal(res.status, 400);
  });
});
