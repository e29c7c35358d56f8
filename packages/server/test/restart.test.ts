import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CheckinResponse, EnrollResponse, HostRecord, LatestResponse, PatchRecord } from '@livegraft/protocol';
import { buildPatch, KERNEL_ID, kernelIdentity, startHarness } from './helpers.ts';

describe('restart on the same data dir', () => {
  it('keeps patches, publication state, modules, hosts, host tokens and secrets', async () => {
    const h = await startHarness();
    try {
      const p1 = buildPatch({ level: 1 });
      const p2 = buildPatch({ level: 2 });
      for (const [p, publish] of [
        [p1, true],
        [p2, false],
      ] as const) {
        assert.equal((await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes })).status, 201);
        assert.equal((await h.call('POST', '/patches', { json: { manifest: p.manifest, publish } })).status, 201);
      }
      const enrolled = await h.call('POST', '/hosts/enroll', {
        token: null,
        json: { registrationKey: h.registrationKey, hostname: 'keep', kernel: kernelIdentity(), agentVersion: '1' },
      });
      const { hostId, token } = enrolled.json as EnrollResponse;
      const checkin = { kernel: kernelIdentity(), appliedLevel: 1, state: 'patched', agentVersion: '1', uptimeSec: 5 };
      assert.equal((await h.call('POST', '/hosts/checkin', { token, json: checkin })).status, 200);
      const before = {
        patches: (await h.call('GET', '/patches')).json as PatchRecord[],
        host: (await h.call('GET', `/hosts/${hostId}`)).json as HostRecord,
      };
      const adminToken = h.adminToken;
      const oldUrl = h.server.url;

      await h.restart();
      assert.notEqual(h.server.url, '', 'listening again');
      assert.ok(oldUrl.startsWith('http://127.0.0.1:'));

      assert.deepEqual((await h.call('GET', '/patches', { token: adminToken })).json, before.patches);
      assert.deepEqual((await h.call('GET', `/hosts/${hostId}`)).json, before.host);
      const latest = (await h.call('GET', `/kernels/${KERNEL_ID}/latest`, { token })).json as LatestResponse;
      assert.equal(latest.level, 1, 'level 2 is still unpublished');
      const mod = await h.call('GET', `/modules/${p2.sha256}`, { token });
      assert.ok(mod.bytes.equals(p2.bytes));
      const answer = await h.call('POST', '/hosts/checkin', { token, json: checkin });
      assert.equal((answer.json as CheckinResponse).latest?.level, 1, 'the host token still works');
      // Enrolment still takes the same registration key.
      const again = await h.call('POST', '/hosts/enroll', {
        token: null,
        json: { registrationKey: h.registrationKey, hostname: 'later', kernel: kernelIdentity(), agentVersion: '1' },
      });
      assert.equal(again.status, 201);
    } finally {
      await h.stop();
    }
  });
});
