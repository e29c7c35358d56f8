// The mirror's in-memory copy of small files: served from memory while the
// file on disk is the same one, read again as soon as a sync replaces it.
import assert from 'node:assert/strict';
import { mkdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MirrorFiles } from '../src/mirror-files.ts';
import { serveMirror } from '../src/mirror.ts';
import { tempDir } from './helpers.ts';

const text = (l: Awaited<ReturnType<MirrorFiles['lookup']>>): string => {
  assert.equal(l.kind, 'bytes');
  return l.kind === 'bytes' ? l.bytes.toString() : '';
};

describe('MirrorFiles', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('lg-mirror-files-');
  });

  it('serves a file from memory while its inode, size and mtime are unchanged', async () => {
    const f = join(dir, 'same.json');
    const when = 1_700_000_000; // whole seconds: utimes keeps them exactly
    await writeFile(f, 'one');
    await utimes(f, when, when);
    const files = new MirrorFiles();
    assert.equal(text(await files.lookup(f)), 'one');
    // Same size, same mtime, same inode: the bytes changed behind the cache's back, and it does not read them.
    await writeFile(f, 'two');
    await utimes(f, when, when);
    assert.equal(text(await files.lookup(f)), 'one');
    assert.equal(files.cachedBytes, 3);
  });

  it('reads again a file a sync renamed in, or rewrote with another size or time', async () => {
    const f = join(dir, 'timestamp.json');
    await writeFile(f, 'v1');
    const files = new MirrorFiles();
    assert.equal(text(await files.lookup(f)), 'v1');
    await writeFile(`${f}.tmp`, 'v2');
    await rename(`${f}.tmp`, f);
    assert.equal(text(await files.lookup(f)), 'v2');
    await writeFile(f, 'v3, longer');
    assert.equal(text(await files.lookup(f)), 'v3, longer');
    assert.equal(files.cachedBytes, 'v3, longer'.length, 'the old copies are dropped');
  });

  it('many requests for a file not yet kept read it concurrently and keep one copy, counted once', async () => {
    const f = join(dir, 'raced.json');
    await writeFile(f, 'x'.repeat(100));
    const files = new MirrorFiles();
    const all = await Promise.all(Array.from({ length: 20 }, () => files.lookup(f)));
    assert.ok(all.every((l) => text(l) === 'x'.repeat(100)));
    assert.equal(files.cachedBytes, 100);
  });

  it('a removed file or a directory is missing, and its copy is dropped', async () => {
    const f = join(dir, 'gone.json');
    await writeFile(f, 'here');
    const files = new MirrorFiles();
    assert.equal(text(await files.lookup(f)), 'here');
    await rm(f);
    assert.deepEqual(await files.lookup(f), { kind: 'missing' });
    assert.equal(files.cachedBytes, 0);
    await mkdir(join(dir, 'sub.json'));
    assert.deepEqual(await files.lookup(join(dir, 'sub.json')), { kind: 'missing' });
  });

  it('streams files above the per-file cap and keeps the total under its cap, dropping the least recent', async () => {
    const files = new MirrorFiles({ maxFileBytes: 10, maxTotalBytes: 20 });
    await writeFile(join(dir, 'big.ko'), Buffer.alloc(11));
    assert.deepEqual(await files.lookup(join(dir, 'big.ko')), { kind: 'stream', size: 11 });
    assert.equal(files.cachedBytes, 0);
    for (const n of ['a', 'b', 'c']) await writeFile(join(dir, `${n}.json`), n.repeat(8));
    await files.lookup(join(dir, 'a.json'));
    await files.lookup(join(dir, 'b.json'));
    await files.lookup(join(dir, 'a.json')); // a is now the most recent
    await files.lookup(join(dir, 'c.json'));
    assert.equal(files.cachedBytes, 16, 'b went first');
    // b is read again from disk (its copy was dropped): change it and see the new bytes.
    await writeFile(join(dir, 'b.json'), 'B'.repeat(8));
    assert.equal(text(await files.lookup(join(dir, 'b.json'))), 'BBBBBBBB');
  });
});

describe('mirror --serve with the in-memory copy', () => {
  let dir: string;
  let base: string;
  let close: () => Promise<void>;
  before(async () => {
    dir = await tempDir('lg-mirror-files-serve-');
    await mkdir(join(dir, 'tuf/metadata'), { recursive: true });
    await mkdir(join(dir, 'tuf/targets'), { recursive: true });
    await writeFile(join(dir, 'tuf/metadata/timestamp.json'), '{"v":1}');
    await writeFile(join(dir, 'tuf/targets/m.ko'), Buffer.alloc(2 * 1024 * 1024, 7));
    const server = serveMirror(dir);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise((r) => server.close(() => r()));
  });
  after(() => close());

  it('serves the new timestamp as soon as a sync renames it in', async () => {
    const get = async (): Promise<string> => (await fetch(`${base}/tuf/metadata/timestamp.json`)).text();
    assert.equal(await get(), '{"v":1}');
    assert.equal(await get(), '{"v":1}');
    const f = join(dir, 'tuf/metadata/timestamp.json');
    await writeFile(`${f}.new`, '{"v":2}');
    await rename(`${f}.new`, f);
    assert.equal(await get(), '{"v":2}');
  });

  it('streams a module too big to keep, with its length, and answers HEAD without a body', async () => {
    const res = await fetch(`${base}/tuf/targets/m.ko`);
    assert.equal(res.headers.get('content-length'), String(2 * 1024 * 1024));
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, 2 * 1024 * 1024);
    assert.ok(body.every((b) => b === 7));
    const head = await fetch(`${base}/tuf/metadata/timestamp.json`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '7');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });
});
