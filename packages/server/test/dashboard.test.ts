import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { API_PREFIX, type AuditEntry, type TokenCreated } from '@livegraft/protocol';
import { startFleetHarness, type FleetHarness } from './fleet-helpers.ts';
import { KERNEL_ID } from './helpers.ts';

/** How long a test waits for an activity event before failing. */
const EVENT_TIMEOUT_MS = 5000;
const INDEX_HTML = '<!doctype html><title>Livegraft</title><div id="app"></div>';
const BIG_JS = `console.log(${JSON.stringify('x'.repeat(5000))});\n`;

async function fakeBuild(): Promise<string> {
  // dist/ inside a temp parent that also holds a file a traversal would reach.
  const parent = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-'));
  const dir = join(parent, 'dist');
  await mkdir(join(dir, 'assets'), { recursive: true });
  await writeFile(join(dir, 'index.html'), INDEX_HTML);
  await writeFile(join(dir, 'assets', 'index-abc123.js'), BIG_JS);
  await writeFile(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  await writeFile(join(parent, 'livegraft-outside-secret.txt'), 'outside');
  await symlink('/etc/hostname', join(dir, 'assets', 'escape.txt'));
  return dir;
}

async function get(h: FleetHarness, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${h.server.url}${path}`, { headers });
}

interface Jar {
  cookie: string;
  csrf: string;
}

async function signIn(h: FleetHarness, token: string): Promise<Jar> {
  const res = await fetch(`${h.server.url}${API_PREFIX}/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const setCookie = res.headers.get('set-cookie') ?? '';
  const body = (await res.json()) as { csrfToken: string };
  return { cookie: setCookie.split(';')[0] ?? '', csrf: body.csrfToken };
}

async function withCookie(
  h: FleetHarness,
  method: string,
  path: string,
  jar: Jar,
  o: { csrf?: string | null; json?: unknown } = {},
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const headers: Record<string, string> = { cookie: jar.cookie };
  const csrf = o.csrf === undefined ? jar.csrf : o.csrf;
  if (csrf !== null) headers['x-csrf-token'] = csrf;
  if (o.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${h.server.url}${API_PREFIX}${path}`, {
    method,
    headers,
    body: o.json === undefined ? undefined : JSON.stringify(o.json),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown), headers: res.headers };
}

describe('dashboard serving', () => {
  let h: FleetHarness;
  let dist: string;
  before(async () => {
    dist = await fakeBuild();
    h = await startFleetHarness({ deps: { dashboardDir: dist } });
  });
  after(async () => {
    await h.stop();
    await rm(join(dist, '..'), { recursive: true, force: true });
  });

  test('/ and client routes answer index.html with the security headers', async () => {
    for (const path of ['/', '/hosts', '/hosts/5d1c', '/rollouts?feed=canary']) {
      const res = await get(h, path);
      assert.equal(res.status, 200, path);
      assert.equal(await res.text(), INDEX_HTML);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
    }
  });

  test('hashed assets are cached for a year, gzipped on request, with ETags', async () => {
    const res = await get(h, '/assets/index-abc123.js', { 'accept-encoding': 'gzip' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    // fetch decompresses; the header says it travelled compressed.
    assert.equal(res.headers.get('content-encoding'), 'gzip');
    assert.equal(await res.text(), BIG_JS);
    const etag = res.headers.get('etag') ?? '';
    assert.notEqual(etag, '');
    const again = await get(h, '/assets/index-abc123.js', { 'if-none-match': etag });
    assert.equal(again.status, 304);
    const svg = await get(h, '/favicon.svg');
    assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
    assert.equal(svg.headers.get('cache-control'), 'no-cache');
    // Raw bytes through node:http to see the compressed body itself.
    const { request } = await import('node:http');
    const raw = await new Promise<Buffer>((resolve, reject) => {
      const req = request(`${h.server.url}/assets/index-abc123.js`, { headers: { 'accept-encoding': 'gzip' } }, (r) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () => resolve(Buffer.concat(parts)));
      });
      req.on('error', reject);
      req.end();
    });
    assert.ok(raw.length < BIG_JS.length / 4, `compressed ${raw.length} bytes`);
    assert.equal(gunzipSync(raw).toString(), BIG_JS);
  });

  test('traversal, encoded traversal and symlinks out of the build are not served', async () => {
    for (const path of ['/assets/escape.txt', '/assets/missing.js', '/nothing.css']) {
      const res = await get(h, path);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(await res.text(), /outside|localhost/);
    }
    for (const path of [
      '/..%2flivegraft-outside-secret.txt',
      '/assets/..%2f..%2flivegraft-outside-secret.txt',
      '/%E0%A4%A',
    ]) {
      const res = await get(h, path);
      assert.equal(res.status, 400, path);
      assert.doesNotMatch(await res.text(), /outside/);
    }
  });

  test('API answers keep their JSON 404s and carry no dashboard headers', async () => {
    const missing = await get(h, `${API_PREFIX}/no-such-thing`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { code: string }).code, 'NOT_FOUND');
    const hosts = await h.call('GET', '/hosts');
    assert.equal(hosts.status, 200);
    assert.equal(hosts.headers.get('content-security-policy'), null);
    assert.equal(hosts.headers.get('x-frame-options'), null);
    const openapi = await get(h, '/openapi.json');
    assert.equal(openapi.status, 200);
    assert.equal(openapi.headers.get('content-security-policy'), null);
  });
});

describe('dashboard not built', () => {
  test('/ answers 503 saying how to build it; the API still works', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-empty-'));
    const h = await startFleetHarness({ deps: { dashboardDir: join(empty, 'dist') } });
    try {
      for (const path of ['/', '/hosts']) {
        const res = await get(h, path);
        assert.equal(res.status, 503);
        assert.match(await res.text(), /dashboard not built: run npm run build/);
        assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
      }
      assert.equal((await h.call('GET', '/feeds')).status, 200);
    } finally {
      await h.stop();
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe('dashboard sessions', () => {
  let h: FleetHarness;
  before(async () => {
    h = await startFleetHarness();
  });
  after(() => h.stop());

  test('a bad token, a host token and an empty body are refused', async () => {
    const bad = await h.call('POST', '/session', { token: null, json: { token: 'not-a-real-token-at-all' } });
    assert.equal(bad.status, 401);
    assert.equal((bad.json as { code: string }).code, 'AUTH_INVALID');
    assert.equal(bad.headers.get('set-cookie'), null);
    const host = await h.enroll('web-1');
    const asHost = await h.call('POST', '/session', { token: null, json: { token: host.token } });
    assert.equal(asHost.status, 403);
    const empty = await h.call('POST', '/session', { token: null, json: {} });
    assert.equal(empty.status, 400);
  });

  test('sign-in sets a strict HttpOnly cookie; changes through it need the CSRF header', async () => {
    const res = await fetch(`${h.server.url}${API_PREFIX}/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: h.adminToken }),
    });
    assert.equal(res.status, 200);
    const setCookie = res.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^lg_session=[A-Za-z0-9_-]{43}; /);
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Strict/);
    assert.match(setCookie, /; Path=\//);
    assert.doesNotMatch(setCookie, /Secure/, 'plain HTTP: no Secure flag');
    const info = (await res.json()) as { role: string; csrfToken: string; checkinIntervalSec: number };
    assert.equal(info.role, 'admin');
    assert.equal(info.checkinIntervalSec, 600);
    const jar: Jar = { cookie: setCookie.split(';')[0] ?? '', csrf: info.csrfToken };
    assert.ok(!setCookie.includes(h.adminToken), 'the cookie is not the token');

    const me = await withCookie(h, 'GET', '/session', jar, { csrf: null });
    assert.equal(me.status, 200);
    assert.equal((me.json as { csrfToken: string }).csrfToken, jar.csrf, 'a reloaded page gets the CSRF token back');
    assert.equal((await withCookie(h, 'GET', '/feeds', jar, { csrf: null })).status, 200);

    const feed = { name: 'dash-test', description: 'made through the cookie' };
    const noCsrf = await withCookie(h, 'POST', '/feeds', jar, { csrf: null, json: feed });
    assert.equal(noCsrf.status, 403);
    assert.equal((noCsrf.json as { code: string }).code, 'CSRF_INVALID');
    const wrong = await withCookie(h, 'POST', '/feeds', jar, { csrf: 'x'.repeat(43), json: feed });
    assert.equal((wrong.json as { code: string }).code, 'CSRF_INVALID');
    assert.equal((await h.call('GET', '/feeds/dash-test')).status, 404, 'nothing was created');
    const made = await withCookie(h, 'POST', '/feeds', jar, { json: feed });
    assert.equal(made.status, 201);
    // Bearer clients are unaffected: no CSRF header needed.
    assert.equal((await h.call('PATCH', '/feeds/dash-test', { json: { description: 'bearer' } })).status, 200);

    const audit = await h.ok<AuditEntry[]>('GET', '/audit?action=session.create');
    assert.equal(audit[0]?.actor.name, 'bootstrap admin');

    const out = await withCookie(h, 'DELETE', '/session', jar);
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie') ?? '', /^lg_session=; .*Max-Age=0/);
    assert.equal((await withCookie(h, 'GET', '/feeds', jar, { csrf: null })).status, 401, 'signed out');
  });

  test('signing out needs the CSRF header too', async () => {
    const jar = await signIn(h, h.adminToken);
    assert.equal((await withCookie(h, 'DELETE', '/session', jar, { csrf: null })).status, 403);
    assert.equal((await withCookie(h, 'GET', '/session', jar, { csrf: null })).status, 200, 'still signed in');
  });

  test('a viewer session reads but cannot change; revoking its token ends the session', async () => {
    const viewer = await h.ok<TokenCreated>('POST', '/tokens', { json: { name: 'dash viewer', role: 'viewer' } });
    const jar = await signIn(h, viewer.token);
    const me = await withCookie(h, 'GET', '/session', jar, { csrf: null });
    assert.equal((me.json as { role: string }).role, 'viewer');
    assert.equal((await withCookie(h, 'GET', '/hosts', jar, { csrf: null })).status, 200);
    const promote = await withCookie(h, 'POST', '/feeds/canary/promote', jar, { json: {} });
    assert.equal(promote.status, 403);
    assert.equal((promote.json as { code: string }).code, 'FORBIDDEN');
    await h.ok('POST', `/tokens/${viewer.id}/revoke`);
    const after = await withCookie(h, 'GET', '/hosts', jar, { csrf: null });
    assert.equal(after.status, 401);
    assert.match((after.json as { message: string }).message, /revoked/);
  });

  test('a forged or unknown session cookie is not a sign-in', async () => {
    const jar: Jar = { cookie: `lg_session=${'A'.repeat(43)}`, csrf: 'x' };
    assert.equal((await withCookie(h, 'GET', '/hosts', jar, { csrf: null })).status, 401);
    const junk: Jar = { cookie: 'lg_session=../../etc; other=1', csrf: 'x' };
    assert.equal((await withCookie(h, 'GET', '/hosts', junk, { csrf: null })).status, 401);
  });
});

describe('manual halt', () => {
  test('an operator halts a published level; again is a conflict; a viewer is refused', async () => {
    const h = await startFleetHarness();
    try {
      await h.publish(1);
      const viewer = await h.ok<TokenCreated>('POST', '/tokens', { json: { name: 'v', role: 'viewer' } });
      const operator = await h.ok<TokenCreated>('POST', '/tokens', { json: { name: 'op', role: 'operator' } });
      const body = { kernelId: KERNEL_ID, level: 1, reason: 'looks wrong on canary' };
      assert.equal((await h.call('POST', '/halts', { token: viewer.token, json: body })).status, 403);
      const missing = await h.call('POST', '/halts', { token: operator.token, json: { ...body, level: 7 } });
      assert.equal((missing.json as { code: string }).code, 'LEVEL_NOT_FOUND');
      const made = await h.call('POST', '/halts', { token: operator.token, json: body });
      assert.equal(made.status, 201);
      const halts = await h.ok<{ level: number; reason: string }[]>('GET', '/halts');
      assert.deepEqual(
        halts.map((x) => [x.level, x.reason]),
        [[1, 'looks wrong on canary']],
      );
      const again = await h.call('POST', '/halts', { token: operator.token, json: body });
      assert.equal(again.status, 409);
      const audit = await h.ok<AuditEntry[]>('GET', '/audit?action=rollout.halt');
      assert.equal(audit[0]?.actor.name, 'op');
    } finally {
      await h.stop();
    }
  });
});

/** Reads `event:`/`data:` frames from an activity stream. */
class ActivityClient {
  readonly events: { event: string; data: unknown }[] = [];
  readonly #abort = new AbortController();
  #wake: (() => void) | undefined;

  static async open(url: string, headers: Record<string, string>): Promise<{ status: number; client: ActivityClient }> {
    const c = new ActivityClient();
    const res = await fetch(`${url}${API_PREFIX}/activity/stream`, { headers, signal: c.#abort.signal });
    if (res.status === 200 && res.body !== null) void c.#read(res.body);
    else await res.arrayBuffer();
    return { status: res.status, client: c };
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const lines = buf.slice(0, end).split('\n');
          buf = buf.slice(end + 2);
          const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
          const data = lines.find((l) => l.startsWith('data: '))?.slice(6);
          if (event !== undefined && data !== undefined) this.events.push({ event, data: JSON.parse(data) });
          this.#wake?.();
        }
      }
    } catch {
      /* closed */
    }
  }

  async waitFor(pred: (e: { event: string; data: unknown }) => boolean): Promise<{ event: string; data: unknown }> {
    const deadline = Date.now() + EVENT_TIMEOUT_MS;
    for (;;) {
      const found = this.events.find(pred);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such event within ${EVENT_TIMEOUT_MS} ms; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, Math.min(left, 100));
      });
    }
  }

  close(): void {
    this.#abort.abort();
  }
}

describe('activity stream', () => {
  test('publishes, check-ins with applies and tripwire hits arrive live; a host token is refused', async () => {
    const h = await startFleetHarness();
    try {
      const host = await h.enroll('db-7');
      const refused = await ActivityClient.open(h.server.url, { authorization: `Bearer ${host.token}` });
      assert.equal(refused.status, 403);
      const { status, client } = await ActivityClient.open(h.server.url, { authorization: `Bearer ${h.adminToken}` });
      assert.equal(status, 200);
      await client.waitFor((e) => e.event === 'ready');
      await h.publish(1);
      const published = await client.waitFor(
        (e) => e.event === 'audit' && (e.data as AuditEntry).action === 'feed.publish',
      );
      assert.equal((published.data as AuditEntry).target, KERNEL_ID);
      await h.checkin(host.token, {
        appliedLevel: 1,
        state: 'patched',
        lastApply: {
          action: 'apply',
          fromLevel: 0,
          toLevel: 1,
          ok: true,
          durationMs: 800,
          at: new Date().toISOString(),
        },
      });
      const checkin = await client.waitFor((e) => e.event === 'checkin');
      const data = checkin.data as { hostname: string; appliedLevel: number; apply: { toLevel: number } | null };
      assert.equal(data.hostname, 'db-7');
      assert.equal(data.appliedLevel, 1);
      assert.equal(data.apply?.toLevel, 1);
      await h.ok('POST', '/hosts/tripwire', {
        token: host.token,
        json: {
          events: [{ cve: 'CVE-2024-1086', pid: 4242, uid: 1000, comm: 'exploit', at: new Date().toISOString() }],
        },
      });
      const trip = await client.waitFor((e) => e.event === 'tripwire');
      assert.equal((trip.data as { events: { comm: string }[] }).events[0]?.comm, 'exploit');
      client.close();
    } finally {
      await h.stop();
    }
  });
});
