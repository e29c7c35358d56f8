import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiError, EnrollResponse } from '@livegraft/protocol';
import { buildPatch, KERNEL_ID, kernelIdentity, startHarness, type Harness } from './helpers.ts';

describe('authorization', () => {
  let h: Harness;
  let hostToken: string;
  const p = buildPatch({ level: 1 });
  before(async () => {
    h = await startHarness();
    const res = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: { registrationKey: h.registrationKey, hostname: 'a', kernel: kernelIdentity(), agentVersion: '1' },
    });
    hostToken = (res.json as EnrollResponse).token;
    assert.equal((await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes })).status, 201);
    assert.equal((await h.call('POST', '/patches', { json: { manifest: p.manifest, publish: true } })).status, 201);
  });
  after(async () => h.stop());

  const adminOnly: [string, string, () => object][] = [
    ['PUT', `/modules/${p.sha256}`, () => ({ body: p.bytes })],
    ['POST', '/patches', () => ({ json: { manifest: p.manifest } })],
    ['POST', `/kernels/${KERNEL_ID}/levels/1/publish`, () => ({})],
    ['GET', '/patches', () => ({})],
    ['GET', '/hosts', () => ({})],
    ['GET', '/hosts/x', () => ({})],
  ];
  const hostOrAdmin: [string, string][] = [
    ['GET', `/kernels/${KERNEL_ID}/latest`],
    ['GET', `/kernels/${KERNEL_ID}/levels/1`],
    ['GET', `/modules/${p.sha256}`],
  ];

  it('creates the secrets with mode 0600', async () => {
    for (const f of ['admin-token', 'registration-key']) {
      assert.equal((await stat(join(h.dataDir, f))).mode & 0o777, 0o600, f);
    }
  });

  it('every protected route wants a token: 401 AUTH_REQUIRED without, AUTH_INVALID with a bad one', async () => {
    for (const [method, path, init] of adminOnly) {
      const none = await h.call(method, path, { ...init(), token: null });
      assert.equal(none.status, 401, `${method} ${path}`);
      assert.equal((none.json as ApiError).code, 'AUTH_REQUIRED');
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      const bad = await h.call(method, path, { ...init(), token: 'not-a-real-token' });
      assert.equal((bad.json as ApiError).code, 'AUTH_INVALID', `${method} ${path}`);
    }
    for (const [method, path] of hostOrAdmin) {
      assert.equal((await h.call(method, path, { token: null })).status, 401, `${method} ${path}`);
    }
    const checkin = await h.call('POST', '/hosts/checkin', { token: null, json: {} });
    assert.equal(checkin.status, 401, 'auth is checked before the body');
  });

  it('a host token is forbidden on admin routes', async () => {
    for (const [method, path, init] of adminOnly) {
      const res = await h.call(method, path, { ...init(), token: hostToken });
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal((res.json as ApiError).code, 'FORBIDDEN');
    }
  });

  it('a host token and the admin token both read patches and modules', async () => {
    for (const token of [hostToken, h.adminToken]) {
      for (const [method, path] of hostOrAdmin) {
        assert.equal((await h.call(method, path, { token })).status, 200, `${method} ${path}`);
      }
    }
  });

  it('check-in takes a host token only', async () => {
    const res = await h.call('POST', '/hosts/checkin', {
      json: { kernel: kernelIdentity(), appliedLevel: 0, state: 'unpatched', agentVersion: '1', uptimeSec: 1 },
    });
    assert.equal(res.status, 403);
    assert.equal((res.json as ApiError).code, 'FORBIDDEN');
  });

  it('refuses a malformed Authorization header', async () => {
    const res = await fetch(`${h.server.url}/api/v1/patches`, { headers: { authorization: `Basic ${h.adminToken}` } });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as ApiError).code, 'AUTH_INVALID');
  });
});
