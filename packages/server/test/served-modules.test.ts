import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ServedModules } from '../src/served-modules.ts';
import { ModuleStore } from '../src/store.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('served modules (module bytes held in memory for downloads)', () => {
  let dir: string;
  let store: ModuleStore;
  const mods = [Buffer.alloc(400, 1), Buffer.alloc(400, 2), Buffer.alloc(400, 3), Buffer.alloc(2000, 4)];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'livegraft-served-'));
    store = new ModuleStore(dir);
    await store.init();
    for (const m of mods) await store.put(sha(m), m);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the stored bytes, and undefined for a module the store does not have', async () => {
    const served = new ServedModules(store);
    assert.deepEqual(await served.get(sha(mods[0] as Buffer)), mods[0]);
    assert.equal(await served.get('0'.repeat(64)), undefined);
    assert.equal(served.heldBytes, 400);
  });

  it('keeps held bytes within its total bound, dropping the least recently served first', async () => {
    const served = new ServedModules(store, { maxModuleBytes: 1000, maxTotalBytes: 900 });
    const [a, b, c] = mods as [Buffer, Buffer, Buffer];
    await served.get(sha(a));
    await served.get(sha(b));
    await served.get(sha(a)); // a is now the most recent
    await served.get(sha(c)); // b goes
    assert.equal(served.heldBytes, 800);
    // The store is still the source: removing b's file shows whether b is served from memory.
    await rm(join(dir, `${sha(b)}.ko`));
    assert.equal(await served.get(sha(b)), undefined);
    assert.deepEqual(await served.get(sha(a)), a);
    await store.put(sha(b), b);
  });

  it('streams a module above the per-module bound from the store instead of holding it', async () => {
    const served = new ServedModules(store, { maxModuleBytes: 1000, maxTotalBytes: 10_000 });
    assert.equal(await served.get(sha(mods[3] as Buffer)), 'stream');
    assert.equal(served.heldBytes, 0);
  });

  it('never holds a store file whose bytes do not match its hash (it is streamed, and clients refuse it)', async () => {
    const good = Buffer.alloc(300, 7);
    await store.put(sha(good), good);
    await writeFile(join(dir, `${sha(good)}.ko`), Buffer.alloc(300, 8));
    const served = new ServedModules(store);
    assert.equal(await served.get(sha(good)), 'stream');
    assert.equal(served.heldBytes, 0);
    await writeFile(join(dir, `${sha(good)}.ko`), good);
    assert.deepEqual(await served.get(sha(good)), good);
  });

  it('reads a module once for concurrent first requests', async () => {
    let reads = 0;
    const counting = Object.assign(Object.create(store) as ModuleStore, {
      read: (s: string) => {
        reads++;
        return store.read(s);
      },
      size: (s: string) => store.size(s),
    });
    const served = new ServedModules(counting);
    const got = await Promise.all(Array.from({ length: 8 }, () => served.get(sha(mods[2] as Buffer))));
    for (const g of got) assert.deepEqual(g, mods[2]);
    assert.equal(reads, 1);
  });
});
