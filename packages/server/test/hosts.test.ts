import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiError, CheckinRequest, CheckinResponse, EnrollResponse, HostRecord } from '@livegraft/protocol';
import { buildPatch, kernelIdentity, PROC_VERSION, startHarness, steppingClock, type Harness } from './helpers.ts';

describe('hosts', () => {
  let h: Harness;
  let ids = 0;
  before(async () => {
    h = await startHarness({ clock: steppingClock(), randomId: () => `host-${++ids}` });
  });
  after(async () => h.stop());

  async function enroll(hostname: string, procVersion = PROC_VERSION): Promise<EnrollResponse> {
    const res = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: {
        registrationKey: h.registrationKey,
        hostname,
        kernel: kernelIdentity(procVersion),
        agentVersion: '0.1.0',
      },
    });
    assert.equal(res.status, 201, res.bytes.toString());
    return res.json as EnrollResponse;
  }

  function checkinBody(over: Partial<CheckinRequest> = {}): CheckinRequest {
    return {
      kernel: kernelIdentity(),
      appliedLevel: 0,
      state: 'unpatched',
      agentVersion: '0.1.0',
      uptimeSec: 12.5,
      ...over,
    };
  }

  it('enrols with the registration key and refuses a wrong one', async () => {
    const bad = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: { registrationKey: 'wrong-key-wrong', hostname: 'web1', kernel: kernelIdentity(), agentVersion: '0.1.0' },
    });
    assert.equal(bad.status, 403);
    assert.equal((bad.json as ApiError).code, 'REGISTRATION_KEY_INVALID');
    assert.deepEqual((await h.call('GET', '/hosts')).json, [], 'a refused enrolment records no host');

    const ok = await enroll('web1');
    assert.equal(ok.hostId, 'host-1');
    assert.ok(ok.token.length >= 32);
    const host = (await h.call('GET', `/hosts/${ok.hostId}`)).json as HostRecord;
    assert.equal(host.hostname, 'web1');
    assert.equal(host.release, '6.1.0-18-amd64');
    assert.equal(host.effectiveRelease, '6.1.0-18-amd64');
    assert.equal(host.state, 'unpatched');
    assert.equal(host.lastCheckinAt, null);
  });

  it('refuses an enrolment with a malformed body', async () => {
    const res = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: { registrationKey: h.registrationKey, hostname: '' },
    });
    assert.equal(res.status, 400);
    assert.equal((res.json as ApiError).code, 'VALIDATION_FAILED');
    assert.match((res.json as ApiError).message, /hostname/);
  });

  it('a check-in updates the host and answers with the latest published level', async () => {
    const { hostId, token } = await enroll('db1');
    const first = await h.call('POST', '/hosts/checkin', { token, json: checkinBody() });
    assert.equal(first.status, 200, first.bytes.toString());
    assert.deepEqual(first.json, {
      kernelSupported: false,
      latest: null,
      checkinIntervalSec: 600,
    } satisfies CheckinResponse);

    const p = buildPatch({ level: 1 });
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    await h.call('POST', '/patches', { json: { manifest: p.manifest, publish: true } });

    const lastApply = {
      action: 'apply' as const,
      fromLevel: 0,
      toLevel: 1,
      ok: true,
      durationMs: 812,
      at: '2026-03-01T10:05:00.000Z',
    };
    const second = await h.call('POST', '/hosts/checkin', {
      token,
      json: checkinBody({ appliedLevel: 1, state: 'patched', lastApply, uptimeSec: 99 }),
    });
    const answer = second.json as CheckinResponse;
    assert.equal(answer.kernelSupported, true);
    assert.equal(answer.latest?.level, 1);
    assert.deepEqual(answer.latest?.manifest, p.manifest);

    const host = (await h.call('GET', `/hosts/${hostId}`)).json as HostRecord;
    assert.equal(host.appliedLevel, 1);
    assert.equal(host.state, 'patched');
    assert.equal(host.effectiveRelease, '6.1.0-18-amd64+lg1');
    assert.deepEqual(host.lastApply, lastApply);
    assert.equal(host.lastError, null);
    assert.match(host.lastCheckinAt ?? '', /^2026-03-01T10:00:\d\d\.000Z$/);

    // An error report keeps the last apply result and records the error.
    await h.call('POST', '/hosts/checkin', {
      token,
      json: checkinBody({ appliedLevel: 1, state: 'error', lastError: 'transition stalled' }),
    });
    const after = (await h.call('GET', `/hosts/${hostId}`)).json as HostRecord;
    assert.equal(after.state, 'error');
    assert.equal(after.lastError, 'transition stalled');
    assert.deepEqual(after.lastApply, lastApply);
    assert.ok((after.lastCheckinAt ?? '') > (host.lastCheckinAt ?? ''), 'the check-in time moves forward');
  });

  it('a check-in reporting a new kernel moves the host to it', async () => {
    const other = PROC_VERSION.replace('6.1.76-1', '6.1.80-1');
    const { hostId, token } = await enroll('moved');
    const res = await h.call('POST', '/hosts/checkin', { token, json: checkinBody({ kernel: kernelIdentity(other) }) });
    assert.equal((res.json as CheckinResponse).kernelSupported, false);
    const host = (await h.call('GET', `/hosts/${hostId}`)).json as HostRecord;
    assert.equal(host.kernelId, kernelIdentity(other).id);
  });

  it('refuses an unknown field in a check-in', async () => {
    const { token } = await enroll('strict');
    const res = await h.call('POST', '/hosts/checkin', { token, json: { ...checkinBody(), rootShell: true } });
    assert.equal(res.status, 400);
    assert.match((res.json as ApiError).message, /unknown field "rootShell"/);
  });

  it('lists hosts with their effective release; re-enrolling a hostname makes a new host', async () => {
    const a = await enroll('web9');
    const b = await enroll('web9');
    assert.notEqual(a.hostId, b.hostId);
    assert.notEqual(a.token, b.token);
    const hosts = (await h.call('GET', '/hosts')).json as HostRecord[];
    assert.equal(hosts.filter((x) => x.hostname === 'web9').length, 2);
    const db1 = hosts.find((x) => x.hostname === 'db1');
    assert.equal(db1?.effectiveRelease, '6.1.0-18-amd64+lg1');
    const unknown = await h.call('GET', '/hosts/nope');
    assert.equal(unknown.status, 404);
    assert.equal((unknown.json as ApiError).code, 'HOST_NOT_FOUND');
  });
});
