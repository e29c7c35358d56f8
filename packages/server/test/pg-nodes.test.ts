import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KERNEL_ID } from './helpers.ts';
import { SseClient, startFleetHarness, type FleetHarness } from './fleet-helpers.ts';
import { pgSkip, startPostgres, type PgCluster } from './pg-harness.ts';

const HOSTS = 8;

describe('two server nodes on one PostgreSQL', { skip: pgSkip }, () => {
  let cluster: PgCluster;
  let a: FleetHarness;
  let b: FleetHarness;
  const streams: SseClient[] = [];
  const hosts: { hostId: string; token: string }[] = [];

  before(async () => {
    cluster = await startPostgres();
    const database = await cluster.createDatabase();
    a = await startFleetHarness({ database });
    // One deployment: the same secrets and TUF keys on every node.
    b = await startFleetHarness({
      database,
      adminToken: a.adminToken,
      registrationKey: a.registrationKey,
      config: { tufKeysDir: join(a.dataDir, 'keys') },
    });
    for (let i = 0; i < HOSTS; i++) hosts.push(await (i % 2 === 0 ? a : b).enroll(`node-host-${i}`));
    // Streams spread across both nodes, each host on the node it did not enrol on.
    for (let i = 0; i < HOSTS; i++) {
      const node = i % 2 === 0 ? b : a;
      const s = await SseClient.open(node.server.url, hosts[i]?.token ?? '');
      assert.equal(s.status, 200);
      await s.waitFor(() => true);
      streams.push(s);
    }
  });
  after(async () => {
    for (const s of streams) await s.close();
    await b?.stop();
    await a?.stop();
    await cluster?.stop();
  });

  it('a publish on one node reaches the streams on both nodes (LISTEN/NOTIFY)', async () => {
    assert.equal(a.server.fleet.push.size, HOSTS / 2);
    assert.equal(b.server.fleet.push.size, HOSTS / 2);
    await a.publish(1);
    const events = await Promise.all(streams.map((s) => s.waitFor((e) => e.desired?.level === 1, 3000)));
    for (const e of events)
      assert.deepEqual(e.desired, { level: 1, reason: 'feed', allowDowngrade: false, feed: 'production' });
  });

  it('a rollback made on the other node reaches every stream too', async () => {
    await a.publish(2);
    await Promise.all(streams.map((s) => s.waitFor((e) => e.desired?.level === 2, 3000)));
    await b.ok('POST', '/rollback', { json: { feed: 'production', kernelId: KERNEL_ID, level: 1 } });
    const events = await Promise.all(streams.map((s) => s.waitFor((e) => e.desired?.reason === 'rollback', 3000)));
    for (const e of events)
      assert.deepEqual(e.desired, { level: 1, reason: 'rollback', allowDowngrade: true, feed: 'production' });
  });

  it('revoking on one node closes the stream held by the other', async () => {
    const victim = hosts[0];
    assert.ok(victim !== undefined);
    await a.ok('POST', `/hosts/${victim.hostId}/revoke`); // its stream is on node b
    await streams[0]?.waitClosed(3000);
    assert.equal(streams[1]?.closed, false);
  });
});
