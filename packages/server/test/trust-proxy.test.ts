// Behind a trusted reverse proxy the server keys its limits on the real client,
// and an original https scheme brings a Secure __Host- cookie and HSTS. From any
// other peer the X-Forwarded-* headers mean nothing.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { API_PREFIX } from '@livegraft/protocol';
import { parseConfig } from '../src/config.ts';
import { startServer, type RunningServer } from '../src/server.ts';
import { kernelIdentity } from './helpers.ts';

const ATTACKER = '203.0.113.66';
const OPERATOR = '198.51.100.7';

interface World {
  server: RunningServer;
  dir: string;
  adminToken: string;
  registrationKey: string;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
}

async function world(trustProxy: string[] | undefined): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-proxy-test-'));
  const config = parseConfig({
    dataDir: dir,
    port: 0,
    logLevel: 'silent',
    enrollBurst: 3,
    enrollPerMinute: 1,
    trustProxy,
  });
  const server = await startServer(config, { logger: pino({ level: 'silent' }) });
  return {
    server,
    dir,
    adminToken: (await readFile(join(dir, 'admin-token'), 'utf8')).trim(),
    registrationKey: (await readFile(join(dir, 'registration-key'), 'utf8')).trim(),
    post: (path, body, headers = {}) =>
      fetch(`${server.url}${API_PREFIX}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      }),
  };
}

function enrolment(key: string): unknown {
  return { registrationKey: key, hostname: 'web-1', kernel: kernelIdentity(), agentVersion: '0.1.0' };
}

describe('behind a trusted reverse proxy', () => {
  let w: World;
  before(async () => {
    w = await world(['127.0.0.1/8', '::1']);
  });
  after(async () => {
    await w.server.close();
    await rm(w.dir, { recursive: true, force: true });
  });

  it('an attacker flooding enrolment empties only their own bucket', async () => {
    let limited = 0;
    for (let i = 0; i < 20; i++) {
      const res = await w.post('/hosts/enroll', enrolment('wrong-key-0123456789'), { 'x-forwarded-for': ATTACKER });
      if (res.status === 429) limited++;
    }
    assert.ok(limited > 0, 'the attacker is limited');
    const real = await w.post('/hosts/enroll', enrolment(w.registrationKey), { 'x-forwarded-for': OPERATOR });
    assert.equal(real.status, 201, await real.text());
  });

  it('an attacker flooding sign-in does not lock out a real viewer token', async () => {
    const created = await fetch(`${w.server.url}${API_PREFIX}/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${w.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'viewer', role: 'viewer' }),
    });
    const { token } = (await created.json()) as { token: string };
    let limited = 0;
    for (let i = 0; i < 40; i++) {
      const res = await w.post('/session', { token: 'not-a-token-0123456789' }, { 'x-forwarded-for': ATTACKER });
      if (res.status === 429) limited++;
    }
    assert.ok(limited > 0);
    const real = await w.post('/session', { token }, { 'x-forwarded-for': OPERATOR });
    assert.equal(real.status, 200, await real.text());
  });

  it('an original https scheme gives a Secure __Host- session cookie and HSTS', async () => {
    const res = await w.post(
      '/session',
      { token: w.adminToken },
      { 'x-forwarded-for': OPERATOR, 'x-forwarded-proto': 'https' },
    );
    assert.equal(res.status, 200, await res.clone().text());
    const cookie = res.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^__Host-lg_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; .*Secure/);
    assert.doesNotMatch(cookie, /Domain=/i);
    assert.match(res.headers.get('strict-transport-security') ?? '', /^max-age=\d+/);
    const me = await fetch(`${w.server.url}${API_PREFIX}/session`, {
      headers: { cookie: cookie.split(';')[0] ?? '', 'x-forwarded-proto': 'https' },
    });
    assert.equal(me.status, 200, 'the prefixed cookie signs in');
    const page = await fetch(`${w.server.url}/healthz`, { headers: { 'x-forwarded-proto': 'https' } });
    assert.match(page.headers.get('strict-transport-security') ?? '', /^max-age=/);
  });
});

describe('without --trust-proxy', () => {
  let w: World;
  before(async () => {
    w = await world(undefined);
  });
  after(async () => {
    await w.server.close();
    await rm(w.dir, { recursive: true, force: true });
  });

  it('X-Forwarded-Proto from a client is not believed', async () => {
    const res = await w.post('/session', { token: w.adminToken }, { 'x-forwarded-proto': 'https' });
    assert.equal(res.status, 200);
    const cookie = res.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^lg_session=/);
    assert.doesNotMatch(cookie, /Secure/);
    assert.equal(res.headers.get('strict-transport-security'), null);
  });

  it('refuses a --trust-proxy value that is not an address or CIDR', () => {
    assert.throws(() => parseConfig({ trustProxy: ['10.0.0.0/33'] }), /--trust-proxy 10\.0\.0\.0\/33: not an IP/);
    assert.throws(() => parseConfig({ trustProxy: ['proxy.example'] }), /not an IP address or CIDR/);
    assert.equal(parseConfig({ trustProxy: ['10.0.0.5', 'fd00::/8', 'loopback'] }).trustProxy?.length, 3);
  });
});
