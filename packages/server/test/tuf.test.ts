import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Metadata, Timestamp, MetaFile } from '@tufjs/models';
import { tufTargetPath } from '@livegraft/protocol';
import { parseTimestamp, serialize, signWith, SPEC_VERSION, tufExpires } from '../src/tuf/metadata.ts';
import { buildPatch, KERNEL_ID, startHarness, uploadAndRecord, type Harness } from './helpers.ts';
import { adjustableClock, enrolRoot, latestMetadata, readKey, TestClient, withDb } from './tuf-helpers.ts';

describe('TUF signed delivery', () => {
  let h: Harness;
  let client: TestClient;
  const clock = adjustableClock();
  const p1 = buildPatch({ level: 1 });
  const p2 = buildPatch({ level: 2 });

  before(async () => {
    h = await startHarness({ clock: clock.clock });
    client = await TestClient.create(h.server.url, await enrolRoot(h));
  });
  after(async () => {
    await client.remove();
    await h.stop();
  });

  it('creates a key set on a zero-config first start, private keys mode 0600', async () => {
    for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
      const st = await stat(join(h.dataDir, 'keys', `${role}.json`));
      assert.equal(st.mode & 0o777, 0o600, `${role}.json mode`);
      await readKey(h, role);
    }
    const root = latestMetadata(h, 'root');
    assert.equal(root.version, 1);
  });

  it('serves a published level that a tuf-js client verifies: bytes and the manifest in custom', async () => {
    const { record } = await uploadAndRecord(h, p1, true);
    assert.equal(record.status, 201);
    const got = await client.fetchLevel(KERNEL_ID, 1, p1.manifest.name);
    assert.ok(got, 'level 1 is a target');
    assert.deepEqual(got.bytes, p1.bytes);
    assert.deepEqual(got.manifest, p1.manifest);
  });

  it('does not make unpublished levels targets, and does not serve their bytes', async () => {
    const p3 = buildPatch({ level: 3 });
    await uploadAndRecord(h, p3, false);
    assert.equal(await client.fetchLevel(KERNEL_ID, 3, p3.manifest.name), undefined);
    const res = await fetch(`${h.server.url}/tuf/targets/${KERNEL_ID}/3/${p3.sha256}.${p3.manifest.name}.ko`);
    assert.equal(res.status, 404);
    // A published level under a wrong hash or name is not served either.
    const wrong = await fetch(`${h.server.url}/tuf/targets/${KERNEL_ID}/1/${p2.sha256}.${p1.manifest.name}.ko`);
    assert.equal(wrong.status, 404);
  });

  it('after a second publish (via the publish route) the client sees the new target, each role one version up', async () => {
    const before = {
      targets: latestMetadata(h, 'targets').version,
      snapshot: latestMetadata(h, 'snapshot').version,
      timestamp: latestMetadata(h, 'timestamp').version,
    };
    await uploadAndRecord(h, p2, false);
    const res = await h.call('POST', `/kernels/${KERNEL_ID}/levels/2/publish`);
    assert.equal(res.status, 200);
    assert.deepEqual(
      {
        targets: latestMetadata(h, 'targets').version,
        snapshot: latestMetadata(h, 'snapshot').version,
        timestamp: latestMetadata(h, 'timestamp').version,
      },
      { targets: before.targets + 1, snapshot: before.snapshot + 1, timestamp: before.timestamp + 1 },
    );
    const got = await client.fetchLevel(KERNEL_ID, 2, p2.manifest.name);
    assert.ok(got);
    assert.deepEqual(got.bytes, p2.bytes);
    assert.equal(got.manifest.level, 2);
    assert.ok(await client.fetchLevel(KERNEL_ID, 1, p1.manifest.name), 'level 1 stays a target');
  });

  it('publishing again is idempotent: no new metadata versions', async () => {
    const v = latestMetadata(h, 'timestamp').version;
    await h.call('POST', `/kernels/${KERNEL_ID}/levels/2/publish`);
    await h.server.tuf.sync();
    assert.equal(latestMetadata(h, 'timestamp').version, v);
  });

  it('serves versioned metadata files and 404 for unknown ones', async () => {
    const ts = await fetch(`${h.server.url}/tuf/metadata/timestamp.json`);
    assert.equal(ts.status, 200);
    assert.equal(ts.headers.get('cache-control'), 'no-cache');
    const root = await fetch(`${h.server.url}/tuf/metadata/1.root.json`);
    assert.equal(root.status, 200);
    assert.equal((await fetch(`${h.server.url}/tuf/metadata/2.root.json`)).status, 404);
    assert.equal((await fetch(`${h.server.url}/tuf/metadata/999.targets.json`)).status, 404);
    assert.equal((await fetch(`${h.server.url}/tuf/metadata/root.json`)).status, 404);
  });

  it('a timestamp that points at a snapshot whose hash does not match (signed with the real key) is refused', async () => {
    const key = await readKey(h, 'timestamp');
    const cur = latestMetadata(h, 'timestamp');
    const snap = latestMetadata(h, 'snapshot');
    const forged = new Metadata(
      new Timestamp({
        version: cur.version + 1,
        specVersion: SPEC_VERSION,
        expires: tufExpires(new Date(Date.now() + 3600_000)),
        snapshotMeta: new MetaFile({
          version: snap.version,
          length: snap.json.length,
          hashes: { sha256: '0'.repeat(64) },
        }),
      }),
    );
    signWith(forged, [key]);
    withDb(h, (db) =>
      db
        .prepare("INSERT INTO tuf_metadata (role, version, json, created_at) VALUES ('timestamp', ?, ?, ?)")
        .run(cur.version + 1, serialize(forged).json, new Date().toISOString()),
    );
    const fresh = await TestClient.create(h.server.url, JSON.parse(latestMetadata(h, 'root').json));
    try {
      await assert.rejects(
        fresh.fetchLevel(KERNEL_ID, 1, p1.manifest.name),
        /snapshot metadata error.*Expected hash 0{64}/,
      );
    } finally {
      await fresh.remove();
      withDb(h, (db) =>
        db.prepare("DELETE FROM tuf_metadata WHERE role = 'timestamp' AND version = ?").run(cur.version + 1),
      );
    }
  });

  it('a stored targets file edited without re-signing is refused', async () => {
    const t = latestMetadata(h, 'targets');
    const edited = t.json.replace('"level":1', '"level":7');
    assert.notEqual(edited, t.json);
    withDb(h, (db) =>
      db.prepare("UPDATE tuf_metadata SET json = ? WHERE role = 'targets' AND version = ?").run(edited, t.version),
    );
    const fresh = await TestClient.create(h.server.url, JSON.parse(latestMetadata(h, 'root').json));
    try {
      await assert.rejects(fresh.fetchLevel(KERNEL_ID, 1, p1.manifest.name), /Unable to load targets.*Expected hash/);
    } finally {
      await fresh.remove();
      withDb(h, (db) =>
        db.prepare("UPDATE tuf_metadata SET json = ? WHERE role = 'targets' AND version = ?").run(t.json, t.version),
      );
    }
    assert.ok(await client.fetchLevel(KERNEL_ID, 1, p1.manifest.name), 'restored, the client is fine again');
  });

  it('a rolled-back timestamp (an older signed version served again) is refused by a client that saw the newer one', async () => {
    assert.ok(await client.fetchLevel(KERNEL_ID, 2, p2.manifest.name));
    const cur = latestMetadata(h, 'timestamp');
    withDb(h, (db) =>
      db
        .prepare("UPDATE tuf_metadata SET version = -version WHERE role = 'timestamp' AND version = ?")
        .run(cur.version),
    );
    try {
      await assert.rejects(client.fetchLevel(KERNEL_ID, 2, p2.manifest.name), /less than current version/);
    } finally {
      withDb(h, (db) =>
        db
          .prepare("UPDATE tuf_metadata SET version = -version WHERE role = 'timestamp' AND version = ?")
          .run(-cur.version),
      );
    }
  });

  it('tampered target bytes are refused by the client', async () => {
    // Damaged before the server first serves it (a module it has served and checked is held in memory).
    const p4 = buildPatch({ level: 4 });
    await uploadAndRecord(h, p4, true);
    const path = join(h.dataDir, 'modules', `${p4.sha256}.ko`);
    const tampered = Buffer.from(p4.bytes);
    const last = tampered.length - 1;
    tampered.writeUInt8(tampered.readUInt8(last) ^ 0xff, last);
    await writeFile(path, tampered);
    try {
      await assert.rejects(client.fetchLevel(KERNEL_ID, 4, p4.manifest.name), /Expected hash/);
      await writeFile(path, Buffer.concat([p4.bytes, Buffer.from('more')]));
      await assert.rejects(client.fetchLevel(KERNEL_ID, 4, p4.manifest.name), /Max length reached/);
    } finally {
      await writeFile(path, p4.bytes);
    }
    assert.ok(await client.fetchLevel(KERNEL_ID, 4, p4.manifest.name));
  });

  it('the enrol answer carries the current root', async () => {
    const root = (await enrolRoot(h)) as { signed: { version: number; _type: string } };
    assert.equal(root.signed._type, 'root');
    assert.equal(root.signed.version, latestMetadata(h, 'root').version);
  });
});

describe('TUF expiry refresh job', () => {
  it('re-signs an expired timestamp on its own, and the client then accepts it', async () => {
    const clock = adjustableClock();
    const DAY = 24 * 3600_000;
    clock.set(-2 * DAY);
    const h = await startHarness({
      clock: clock.clock,
      tuf: { refreshIntervalMs: 1000, expirySec: { timestamp: 3600 } },
    });
    const client = await TestClient.create(h.server.url, await enrolRoot(h));
    try {
      const p = buildPatch({ level: 1 });
      await uploadAndRecord(h, p, true);
      // Signed "two days ago" with a one-hour lifetime: expired for a client living in real time.
      await assert.rejects(client.fetchLevel(KERNEL_ID, 1, p.manifest.name), /timestamp\.json is expired/);
      const expiredVersion = latestMetadata(h, 'timestamp').version;
      clock.set(0);
      const deadline = Date.now() + 10_000;
      while (latestMetadata(h, 'timestamp').version === expiredVersion) {
        if (Date.now() > deadline) assert.fail('the refresh job did not re-sign the timestamp within 10 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      const ts = parseTimestamp(latestMetadata(h, 'timestamp').json);
      assert.ok(Date.parse(ts.signed.expires) > Date.now(), 'the new timestamp is valid');
      const got = await client.fetchLevel(KERNEL_ID, 1, p.manifest.name);
      assert.ok(got);
      assert.deepEqual(got.bytes, p.bytes);
    } finally {
      await client.remove();
      await h.stop();
    }
  });

  it('leaves fresh metadata alone', async () => {
    const h = await startHarness({ clock: adjustableClock().clock });
    try {
      const before = latestMetadata(h, 'timestamp').version;
      await h.server.tuf.sync();
      await h.server.tuf.sync();
      assert.equal(latestMetadata(h, 'timestamp').version, before);
      assert.equal(before, 1);
    } finally {
      await h.stop();
    }
  });
});

describe('TUF target paths', () => {
  it('are <kernelId>/<level>/<name>.ko', () => {
    assert.equal(tufTargetPath('ab', 3, 'lg_x'), 'ab/3/lg_x.ko');
  });
});
