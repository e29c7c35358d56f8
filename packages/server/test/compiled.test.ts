import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kysely, SqliteDialect } from 'kysely';
import { CompiledShapes, runSteps, type Steps } from '../src/db/compiled.ts';
import { openNodeSqlite, type WriteSync } from '../src/db/node-sqlite.ts';

interface Tables {
  t: { id: string; n: number; note: string | null };
}

describe('compiled statement shapes and synchronous SQLite transactions', () => {
  let dir: string;
  let db: Kysely<Tables>;
  let writeSync: WriteSync;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'livegraft-compiled-'));
    const database = openNodeSqlite(join(dir, 'db.sqlite'));
    writeSync = database.writeSync;
    db = new Kysely<Tables>({ dialect: new SqliteDialect({ database }) });
    await db.schema
      .createTable('t')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('n', 'integer', (c) => c.notNull())
      .addColumn('note', 'text')
      .execute();
  });
  after(async () => {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  // node:sqlite's rows have no prototype; spread them to compare with literals.
  const rows = async (): Promise<Tables['t'][]> =>
    (await db.selectFrom('t').selectAll().orderBy('id').execute()).map((r) => ({ ...r }));

  it('compiles a shape once and binds each call its own values', async () => {
    const shapes = new CompiledShapes();
    let builds = 0;
    const insert = (row: Tables['t']) =>
      shapes.of('insert', Object.values(row), () => {
        builds += 1;
        return db.insertInto('t').values(row);
      });
    for (const row of [
      { id: 'a', n: 1, note: null },
      { id: 'b', n: 2, note: 'two' },
    ]) {
      await db.executeQuery(insert(row));
    }
    assert.equal(builds, 1);
    assert.deepEqual(await rows(), [
      { id: 'a', n: 1, note: null },
      { id: 'b', n: 2, note: 'two' },
    ]);
  });

  it('refuses values listed in another order than the statement binds them', () => {
    const shapes = new CompiledShapes();
    assert.throws(
      () => shapes.of('update', ['x', 5], () => db.updateTable('t').set({ n: 5 }).where('id', '=', 'x')),
      /statement shape update: the listed values are not the ones it binds/,
    );
  });

  function* bump(id: string, by: number, fail = false): Steps<number> {
    const shapes = new CompiledShapes();
    const [row] = (yield shapes.of('read', [id], () => db.selectFrom('t').select('n').where('id', '=', id))) as {
      n: number;
    }[];
    const n = (row?.n ?? 0) + by;
    yield shapes.of('write', [n, id], () => db.updateTable('t').set({ n }).where('id', '=', id));
    if (fail) throw new Error('step failed');
    return n;
  }

  it('runs steps at once on SQLite, and rolls all of them back when one fails', async () => {
    assert.equal(await runSteps(db as unknown as Kysely<unknown>, writeSync, () => bump('a', 10)), 11);
    await assert.rejects(
      runSteps(db as unknown as Kysely<unknown>, writeSync, () => bump('a', 5, true)),
      /step failed/,
    );
    assert.equal((await rows())[0]?.n, 11);
  });

  it('waits for a transaction another caller holds open instead of writing inside it', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    let entered: () => void = () => {};
    const inside = new Promise<void>((r) => (entered = r));
    const other = db.transaction().execute(async (tx) => {
      await tx.updateTable('t').set({ note: 'held' }).where('id', '=', 'b').execute();
      entered();
      await held;
      throw new Error('the other caller rolls back');
    });
    await inside;
    assert.equal(
      writeSync(() => 'ran'),
      undefined,
    );
    const mine = runSteps(db as unknown as Kysely<unknown>, writeSync, () => bump('b', 1));
    release();
    await assert.rejects(other, /rolls back/);
    assert.equal(await mine, 3);
    assert.deepEqual((await rows())[1], { id: 'b', n: 3, note: 'two' });
  });
});
