// User-space levels in feeds, like kernel levels (per library build-id): a
// published level lands in the feeds with autoPublish only; a feed that has
// not promoted a level does not offer it to its hosts; promotion by hand and
// by the feed's rule (hosts that run the level in every process); a halted
// level is neither offered nor promoted; a feed's level set below the
// current one rolls its hosts back. The fixture is a real level built from
// Debian's glibc 2.36-9+deb12u7 source package.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  userspaceTargetPath,
  type AuditEntry,
  type CheckinRequest,
  type CheckinResponse,
  type EnrollResponse,
  type RegistrationKeyCreated,
  type UserspaceFeedLevel,
  type UserspaceLibraryStatus,
  type UserspaceManifest,
  type UserspacePromotion,
} from '@livegraft/protocol';
import { kernelIdentity, startHarness, type Answer, type CallInit } from './helpers.ts';
import { startFleetHarness } from './fleet-helpers.ts';
import { pgSkip, startPostgres, type PgCluster } from './pg-harness.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'userspace');
const manifest = JSON.parse(
  readFileSync(join(FIXTURES, 'lg-libc-so-6-58254ca97202-1.json'), 'utf8'),
) as UserspaceManifest;
const object = readFileSync(join(FIXTURES, manifest.code.file));
const buildId = manifest.library.buildId;
const target = userspaceTargetPath(buildId, 1, manifest.code.file);

interface Served {
  registrationKey: string;
  call: (method: string, path: string, init?: CallInit) => Promise<Answer>;
  stop: () => Promise<void>;
}

let cluster: Promise<PgCluster> | undefined;
after(async () => {
  if (cluster !== undefined) await (await cluster).stop();
});

feedsSuite('SQLite', () => startHarness(), false);
feedsSuite(
  'PostgreSQL',
  async () => {
    cluster ??= startPostgres();
    return startFleetHarness({ database: await (await cluster).createDatabase() });
  },
  pgSkip,
);

function feedsSuite(name: string, start: () => Promise<Served>, skip: string | false): void {
  describe(`user-space levels in feeds (${name})`, { skip }, () => {
    let h: Served;
    const hosts: Record<string, EnrollResponse> = {};

    const ok = async (method: string, path: string, init?: CallInit): Promise<unknown> => {
      const res = await h.call(method, path, init);
      assert.ok(res.status >= 200 && res.status < 300, `${method} ${path}: ${res.status} ${res.bytes.toString()}`);
      return res.json;
    };
    const enrol = async (hostname: string, feed?: string): Promise<void> => {
      let key = h.registrationKey;
      if (feed !== undefined) {
        const created = (await ok('POST', '/registration-keys', {
          json: { name: `${hostname}-key`, feed, tags: [] },
        })) as RegistrationKeyCreated;
        key = created.key;
      }
      hosts[hostname] = (await ok('POST', '/hosts/enroll', {
        token: null,
        json: { registrationKey: key, hostname, kernel: kernelIdentity(), agentVersion: '0.1.0' },
      })) as EnrollResponse;
    };
    const lib = (over: Partial<UserspaceLibraryStatus> = {}): UserspaceLibraryStatus => ({
      buildId,
      soname: 'libc.so.6',
      level: 0,
      cves: [],
      patched: 0,
      unpatched: 2,
      refused: 0,
      ...over,
    });
    /** What the host is offered for the fixture's build (undefined: nothing). */
    const offered = async (hostname: string, libs: UserspaceLibraryStatus[] = [lib()]) => {
      const body: CheckinRequest = {
        kernel: kernelIdentity(),
        appliedLevel: 0,
        state: 'unpatched',
        agentVersion: '0.1.0',
        uptimeSec: 1,
        userspace: libs,
      };
      const a = (await ok('POST', '/hosts/checkin', { token: hosts[hostname]!.token, json: body })) as CheckinResponse;
      return a.userspace?.find((d) => d.buildId === buildId);
    };
    const auditOf = async (action: string, target: string) =>
      ((await ok('GET', `/audit?action=${action}`)) as AuditEntry[]).filter((e) => e.target === target);
    const feedLevel = async (feed: string) =>
      ((await ok('GET', `/userspace/feeds?feed=${feed}&buildId=${buildId}`)) as UserspaceFeedLevel[])[0]?.level;

    before(async () => {
      h = await start();
      // A ring whose rule counts hosts: one host running the level in every process promotes it.
      await ok('POST', '/feeds', {
        json: { name: 'ring1', autoPublish: false, requireValidated: false },
      });
      await ok('POST', '/feeds', {
        json: {
          name: 'ring0',
          autoPublish: true,
          promotesTo: 'ring1',
          promotion: { minHosts: 1 },
          requireValidated: false,
        },
      });
      await enrol('prod1');
      await enrol('stage1', 'staging');
      await enrol('ring0-host', 'ring0');
      await enrol('ring1-host', 'ring1');
      await ok('POST', '/userspace/levels', {
        json: { manifest, object: object.toString('base64'), publish: true },
      });
    });
    after(async () => {
      await h?.stop();
    });

    it('a published level lands in the feeds with autoPublish; a feed without it offers nothing', async () => {
      assert.equal(await feedLevel('production'), 1);
      assert.equal(await feedLevel('canary'), 1);
      assert.equal(await feedLevel('staging'), undefined);
      assert.deepEqual(await offered('prod1'), { buildId, level: 1, reason: 'feed', allowDowngrade: false, target });
      assert.equal(await offered('stage1'), undefined, 'staging has not promoted the level');
    });

    it('a halted level is neither offered nor promoted; lifted, an operator promotes it', async () => {
      await ok('POST', `/userspace/levels/${buildId}/1/halt`, { json: { reason: 'test' } });
      assert.deepEqual(await offered('prod1'), { buildId, level: 0, reason: 'halt', allowDowngrade: true });
      assert.deepEqual(await ok('POST', '/userspace/feeds/canary/promote', { json: {} }), []);
      assert.equal(await offered('stage1'), undefined);

      await ok('DELETE', `/userspace/levels/${buildId}/1/halt`);
      const moved = (await ok('POST', '/userspace/feeds/canary/promote', { json: {} })) as UserspacePromotion[];
      assert.deepEqual(moved, [{ from: 'canary', to: 'staging', buildId, level: 1, previous: 0 }]);
      assert.deepEqual(await offered('stage1'), { buildId, level: 1, reason: 'feed', allowDowngrade: false, target });
      assert.deepEqual(await ok('POST', '/userspace/feeds/canary/promote', { json: {} }), [], 'promoted once');
    });

    it("a feed's rule promotes once its hosts run the level in every process", async () => {
      assert.equal(await feedLevel('ring0'), 1);
      assert.equal(await offered('ring1-host'), undefined);
      // Reported with a process still unpatched: the rule does not hold.
      await offered('ring0-host', [lib({ level: 1, patched: 1, unpatched: 1 })]);
      assert.equal(await feedLevel('ring1'), undefined);
      assert.equal(await offered('ring1-host'), undefined);
      assert.deepEqual(await auditOf('userspace.promote', 'ring1'), []);
      // Every process runs it: the next check-in of the feed's host promotes it.
      await offered('ring0-host', [lib({ level: 1, patched: 2, unpatched: 0 })]);
      assert.equal(await feedLevel('ring1'), 1);
      // Audited like the kernel's rule-driven promotions: by the system, with what moved.
      const audit = await auditOf('userspace.promote', 'ring1');
      assert.equal(audit.length, 1);
      assert.deepEqual(audit[0]!.actor, { id: 'system', name: 'livegraft-server', role: 'system' });
      assert.deepEqual(audit[0]!.details, { from: 'ring0', to: 'ring1', buildId, level: 1, previous: 0, rule: true });
      await offered('ring0-host', [lib({ level: 1, patched: 2, unpatched: 0 })]);
      assert.equal((await auditOf('userspace.promote', 'ring1')).length, 1, 'a level moves, and is audited, once');
      assert.deepEqual(await offered('ring1-host'), {
        buildId,
        level: 1,
        reason: 'feed',
        allowDowngrade: false,
        target,
      });
    });

    it("a host's crash-loop guard halts the level fleet-wide, audited once by the system", async () => {
      await offered('ring1-host', [lib({ level: 1, patched: 1, unpatched: 0, halted: true })]);
      await offered('ring1-host', [lib({ level: 1, patched: 1, unpatched: 0, halted: true })]);
      // The operator's halt earlier in this suite is audited under the operator's name.
      const audit = (await auditOf('userspace.halt', buildId)).filter((e) => e.actor.id === 'system');
      assert.equal(audit.length, 1);
      assert.deepEqual(audit[0]!.details, {
        level: 1,
        reason: `the crash-loop guard of host ${hosts['ring1-host']!.hostId} halted it`,
        hostId: hosts['ring1-host']!.hostId,
      });
      assert.deepEqual(await offered('prod1'), { buildId, level: 0, reason: 'halt', allowDowngrade: true });
      await ok('DELETE', `/userspace/levels/${buildId}/1/halt`);
    });

    it('a feed level set below the current one rolls its hosts back; set again, it rolls out', async () => {
      const set = (await ok('PUT', `/userspace/feeds/staging/levels/${buildId}`, {
        json: { level: 0 },
      })) as UserspaceFeedLevel;
      assert.equal(set.source, 'rollback');
      assert.deepEqual(await offered('stage1'), { buildId, level: 0, reason: 'rollback', allowDowngrade: true });
      await ok('PUT', `/userspace/feeds/staging/levels/${buildId}`, { json: { level: 1 } });
      assert.deepEqual(await offered('stage1'), { buildId, level: 1, reason: 'feed', allowDowngrade: false, target });
      const bad = await h.call('PUT', `/userspace/feeds/staging/levels/${buildId}`, { json: { level: 7 } });
      assert.equal(bad.status, 404);
      const noFeed = await h.call('PUT', `/userspace/feeds/nowhere/levels/${buildId}`, { json: { level: 1 } });
      assert.equal(noFeed.status, 404);
    });
  });
}
