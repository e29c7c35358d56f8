import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { affectedIds, DAY, PROC_192, startWorld, T0, type World } from './compliance-world.ts';

/**
 * Compliance reads are for the read-only viewer role and above; changing the
 * SLA policy or the fleet is not. Host tokens reach none of them.
 */
describe('compliance roles', () => {
  let w: World;
  let hostId: string;
  let hostToken: string;
  let viewer: string;
  let operator: string;
  let cve: string;
  let reads: string[];

  const token = async (role: string): Promise<string> => {
    const r = await w.call('POST', '/tokens', { json: { name: `t-${role}`, role } });
    assert.equal(r.status, 201, r.text);
    return (r.json as { token: string }).token;
  };

  before(async () => {
    cve = [...(await affectedIds(PROC_192)).keys()][0] ?? '';
    w = await startWorld();
    const h = await w.enroll('web-1.example', PROC_192);
    hostId = h.hostId;
    hostToken = h.token;
    await w.publishLevel(PROC_192, 1, [cve]);
    w.setNow(T0 + DAY);
    await w.checkin(hostToken, PROC_192, 1);
    viewer = await token('viewer');
    operator = await token('operator');
    reads = [
      `/hosts/${hostId}/exposure`,
      '/exposure',
      '/exposure?tag=none',
      `/cves/${cve}`,
      `/hosts/${hostId}/vex`,
      '/vex',
      '/compliance/policy',
      `/hosts/${hostId}/windows`,
      '/reports/compliance',
      '/reports/compliance?format=csv',
      '/reports/compliance?format=csv&part=coverage',
      '/reports/compliance?format=pdf',
      '/tripwires',
      `/hosts/${hostId}/tripwires`,
      '/coverage',
    ];
  });
  after(async () => {
    await w?.stop();
  });

  it('a viewer reads exposure, VEX, the policy, windows, reports, tripwires, CVEs and coverage', async () => {
    for (const path of reads) {
      const r = await w.call('GET', path, { token: viewer });
      assert.equal(r.status, 200, `viewer GET ${path}: ${r.text.slice(0, 200)}`);
    }
    for (const path of reads) {
      assert.equal((await w.call('GET', path, { token: operator })).status, 200, `operator GET ${path}`);
    }
  });

  it('a viewer changes nothing: not the policy, not the fleet', async () => {
    const policy = (await w.call('GET', '/compliance/policy')).json;
    const writes: [string, string, unknown][] = [
      ['PUT', '/compliance/policy', policy],
      ['PATCH', `/hosts/${hostId}`, { tags: ['x'] }],
      ['POST', `/hosts/${hostId}/revoke`, undefined],
      ['POST', '/feeds/stable/promote', {}],
      ['POST', '/tokens', { name: 'n', role: 'viewer' }],
    ];
    for (const [method, path, json] of writes) {
      const r = await w.call(method, path, { token: viewer, ...(json === undefined ? {} : { json }) });
      assert.equal(r.status, 403, `viewer ${method} ${path}: ${r.text}`);
      assert.equal((r.json as { code: string }).code, 'FORBIDDEN');
    }
    // The policy stays an admin's: an operator runs rollouts, not the SLA.
    const op = await w.call('PUT', '/compliance/policy', { token: operator, json: policy });
    assert.equal(op.status, 403, op.text);
    assert.match((op.json as { message: string }).message, /needs the admin role/);
    assert.equal((await w.call('PUT', '/compliance/policy', { json: policy })).status, 200);
    assert.equal((await w.call('GET', `/hosts/${hostId}`)).status, 200, 'the host was not revoked');
  });

  it('a host token reads none of it', async () => {
    for (const path of reads) {
      const r = await w.call('GET', path, { token: hostToken });
      assert.equal(r.status, 403, `host GET ${path}: ${r.text.slice(0, 200)}`);
      assert.match((r.json as { message: string }).message, /host token was given/);
    }
  });
});
