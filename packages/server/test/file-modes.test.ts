// Every file the server keeps state in is owner-only, whatever the umask.
import assert from 'node:assert/strict';
import { chmod, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildPatch, startHarness, uploadAndRecord, type Harness } from './helpers.ts';

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(p, ...(await walk(p)));
    else out.push(p);
  }
  return out;
}

async function looseFiles(dir: string): Promise<string[]> {
  const loose: string[] = [];
  for (const p of await walk(dir)) {
    const mode = (await stat(p)).mode & 0o777;
    if ((mode & 0o077) !== 0) loose.push(`${relative(dir, p)} ${mode.toString(8)}`);
  }
  return loose;
}

describe('state file modes', () => {
  let h: Harness;
  let umask: number;
  before(async () => {
    // The usual distribution umask: without explicit modes, files come out 0644.
    umask = process.umask(0o022);
    h = await startHarness();
  });
  after(async () => {
    await h.stop();
    process.umask(umask);
  });

  it('creates the database, its WAL files, modules, keys and secrets 0600 (directories 0700)', async () => {
    const p = buildPatch();
    const { record } = await uploadAndRecord(h, p, true);
    assert.equal(record.status, 201);
    const files = await walk(h.dataDir);
    for (const name of ['livegraft.db', 'livegraft.db-wal', 'livegraft.db-shm', join('modules', `${p.sha256}.ko`)]) {
      assert.ok(files.includes(join(h.dataDir, name)), `${name} exists`);
    }
    assert.deepEqual(await looseFiles(h.dataDir), []);
  });

  it('tightens a database an older version left 0644', async () => {
    for (const f of ['livegraft.db', 'livegraft.db-wal', 'livegraft.db-shm']) {
      await chmod(join(h.dataDir, f), 0o644).catch(() => undefined);
    }
    await h.restart();
    assert.equal((await stat(join(h.dataDir, 'livegraft.db'))).mode & 0o777, 0o600);
    assert.deepEqual(await looseFiles(h.dataDir), []);
  });
});
