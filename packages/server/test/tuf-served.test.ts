import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { SERVED_TIMESTAMP_MS } from '../src/tuf/repository.ts';
import { buildPatch, startHarness, uploadAndRecord, type Harness } from './helpers.ts';
import { adjustableClock, latestMetadata } from './tuf-helpers.ts';

/** Writes the stored timestamp behind the server's back (no notice, no cache clearing). */
function storeTimestampText(h: Harness, version: number, json: string): void {
  const db = new DatabaseSync(join(h.dataDir, 'livegraft.db'));
  try {
    db.prepare("UPDATE tuf_metadata SET json = ? WHERE role = 'timestamp' AND version = ?").run(json, version);
  } finally {
    db.close();
  }
}

describe('TUF metadata served from memory', () => {
  let h: Harness;
  const clock = adjustableClock();
  const get = async (file: string): Promise<string> => {
    const res = await fetch(`${h.server.url}/tuf/metadata/${file}`);
    assert.equal(res.status, 200, file);
    return res.text();
  };

  before(async () => {
    h = await startHarness({ clock: clock.clock });
    await uploadAndRecord(h, buildPatch({ level: 1 }), true);
  });
  after(async () => h.stop());

  it('keeps timestamp.json at most its age limit, and shows a new signing at once', async () => {
    // latestMetadata goes through withDb, which makes the server forget: read it first.
    const stored = latestMetadata(h, 'timestamp');
    const served = await get('timestamp.json');
    assert.equal(served, stored.json);
    storeTimestampText(h, stored.version, `${stored.json} `);
    assert.equal(await get('timestamp.json'), served, 'within the age limit the copy in memory is served');
    clock.shift(SERVED_TIMESTAMP_MS);
    assert.equal(await get('timestamp.json'), `${stored.json} `, 'after it, the stored text');
    storeTimestampText(h, stored.version, stored.json);

    // Publishing signs a new timestamp on this node: served at once, whatever the age.
    await uploadAndRecord(h, buildPatch({ level: 2 }), true);
    const next = latestMetadata(h, 'timestamp');
    assert.ok(next.version > stored.version);
    assert.equal(await get('timestamp.json'), next.json);
    const snapshot = latestMetadata(h, 'snapshot');
    assert.equal(await get(`${snapshot.version}.snapshot.json`), snapshot.json);
  });

  it('serves a missing root as missing for at most the same bound, then the root stored since', async () => {
    const root = latestMetadata(h, 'root');
    const next = `${root.version + 1}.root.json`;
    const status = async (): Promise<number> => (await fetch(`${h.server.url}/tuf/metadata/${next}`)).status;
    assert.equal(await status(), 404);
    // A root stored behind the server's back (no notice): the miss stands within the bound, not after it.
    const db = new DatabaseSync(join(h.dataDir, 'livegraft.db'));
    try {
      db.prepare("INSERT INTO tuf_metadata (role, version, json, created_at) VALUES ('root', ?, ?, ?)").run(
        root.version + 1,
        root.json,
        new Date().toISOString(),
      );
    } finally {
      db.close();
    }
    assert.equal(await status(), 404, 'within the bound the miss is served from memory');
    clock.shift(SERVED_TIMESTAMP_MS);
    assert.equal(await get(next), root.json, 'after it, the stored root');
  });
});
