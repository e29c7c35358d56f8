import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseTufKeyFile } from '@livegraft/protocol';
import { keysInit, keysRotate, keysSignRoot } from '../src/keys.ts';
import { parseRootJson, rootThreshold } from '../src/keys-root.ts';
import { buildPatch, fetchWithTuf, KERNEL_ID, publish, runCli, startServerProcess, tempDir } from './helpers.ts';

const now = new Date();

describe('livegraft keys', () => {
  it('init writes four 0600 key files and a self-signed 1.root.json that names them', async () => {
    const dir = await tempDir('keys');
    try {
      const r = await runCli(['keys', 'init', '--out', dir]);
      assert.equal(r.code, 0, r.stderr);
      const root = parseRootJson(await readFile(join(dir, '1.root.json'), 'utf8'), '1.root.json');
      assert.equal(root.signed.version, 1);
      assert.equal(root.signed.consistentSnapshot, true);
      for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
        const path = join(dir, `${role}.json`);
        assert.equal((await stat(path)).mode & 0o777, 0o600, `${role}.json mode`);
        const key = parseTufKeyFile(JSON.parse(await readFile(path, 'utf8')), path);
        assert.deepEqual(root.signed.roles[role]?.keyIDs, [key.keyid]);
      }
      assert.ok(rootThreshold(root, root, 'self').ok);
      const again = await runCli(['keys', 'init', '--out', dir]);
      assert.equal(again.code, 1, 'refuses to overwrite keys');
      assert.match(again.stderr, /already exists/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('init with several root keys and a threshold needs that many signatures', async () => {
    const dir = await tempDir('keys');
    try {
      await keysInit({ out: dir, rootKeys: 3, threshold: 2, expiresDays: 30, now });
      const root = parseRootJson(await readFile(join(dir, '1.root.json'), 'utf8'), 'root');
      assert.equal(root.signed.roles['root']?.threshold, 2);
      assert.equal(root.signed.roles['root']?.keyIDs.length, 3);
      // Rotating the targets key signed by one of the three root keys is not enough...
      const r = await keysRotate({
        role: 'targets',
        root: join(dir, '1.root.json'),
        signingKeys: [join(dir, 'root-1.json')],
        out: dir,
        expiresDays: 30,
        now,
      });
      assert.deepEqual(
        r.status.map((s) => [s.against, s.valid, s.threshold, s.ok]),
        [
          ['previous', 1, 2, false],
          ['self', 1, 2, false],
        ],
      );
      // ...until a second root key signs it.
      const status = await keysSignRoot({
        root: r.rootPath,
        keys: [join(dir, 'root-3.json')],
        previous: join(dir, '1.root.json'),
      });
      assert.ok(status.every((s) => s.ok));
      const signed = await runCli(['keys', 'sign-root', '--root', r.rootPath, '--previous', join(dir, '1.root.json')]);
      assert.equal(signed.code, 0, signed.stderr);
      assert.match(signed.stdout, /previous root keys: 2\/2 ok; its own root keys: 2\/2 ok/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a server started with keys-init output serves, and follows a targets rotation and a root rotation', async () => {
    const keys = await tempDir('keys');
    const data = await tempDir('data');
    let server = undefined as Awaited<ReturnType<typeof startServerProcess>> | undefined;
    try {
      await keysInit({ out: keys, rootKeys: 1, threshold: 1, expiresDays: 365, now });
      await mkdir(join(data, 'keys'), { recursive: true, mode: 0o700 });
      await mkdir(join(data, 'tuf', 'roots'), { recursive: true });
      for (const role of ['targets', 'snapshot', 'timestamp']) {
        await copyFile(join(keys, `${role}.json`), join(data, 'keys', `${role}.json`));
      }
      await copyFile(join(keys, '1.root.json'), join(data, 'tuf', 'roots', '1.root.json'));
      server = await startServerProcess(data);
      await assert.rejects(stat(join(data, 'keys', 'root.json')), /ENOENT/, 'the server has no root key');
      const p = buildPatch(KERNEL_ID, 1);
      await publish(server, p);
      const pinned = await readFile(join(keys, '1.root.json'), 'utf8');
      const got = await fetchWithTuf(server.url, pinned, KERNEL_ID, 1);
      assert.ok(got);
      assert.deepEqual(got.bytes, p.bytes);
      assert.deepEqual(got.manifest, p.manifest);

      // Rotate the targets key (signed by the offline root key), install, restart.
      const t = await keysRotate({
        role: 'targets',
        root: join(keys, '1.root.json'),
        signingKeys: [join(keys, 'root.json')],
        out: keys,
        expiresDays: 365,
        now,
      });
      assert.ok(t.status.every((s) => s.ok));
      // And the root key, signed by the old and (automatically) the new root key.
      const r = await keysRotate({
        role: 'root',
        root: t.rootPath,
        signingKeys: [join(keys, 'root.json')],
        out: keys,
        expiresDays: 365,
        now,
      });
      assert.ok(r.status.every((s) => s.ok));
      await server.stop();
      await rm(join(data, 'keys', 'targets.json'));
      await copyFile(t.keyPath, join(data, 'keys', 'targets.json'));
      await copyFile(t.rootPath, join(data, 'tuf', 'roots', '2.root.json'));
      await copyFile(r.rootPath, join(data, 'tuf', 'roots', '3.root.json'));
      server = await startServerProcess(data);
      const after = await fetchWithTuf(server.url, pinned, KERNEL_ID, 1);
      assert.ok(after, 'a client pinned to root 1 walks to root 3 and still gets the target');
      assert.deepEqual(after.bytes, p.bytes);
    } finally {
      await server?.stop();
      await rm(keys, { recursive: true, force: true });
      await rm(data, { recursive: true, force: true });
    }
  });
});
