import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { generateTufKey, type TufKeyFile } from '@livegraft/protocol';
import { parseConfig, startServer } from '../src/index.ts';
import { buildRoot, parseTargets, serialize, signWith } from '../src/tuf/metadata.ts';
import { buildPatch, KERNEL_ID, startHarness, uploadAndRecord } from './helpers.ts';
import { enrolRoot, latestMetadata, TestClient, withDb } from './tuf-helpers.ts';

const YEAR_MS = 365 * 24 * 3600_000;

interface KeySet {
  root: TufKeyFile;
  targets: TufKeyFile;
  snapshot: TufKeyFile;
  timestamp: TufKeyFile;
}

function newKeys(): KeySet {
  const now = new Date();
  return {
    root: generateTufKey('root', now),
    targets: generateTufKey('targets', now),
    snapshot: generateTufKey('snapshot', now),
    timestamp: generateTufKey('timestamp', now),
  };
}

/** Root `version` naming `keys`, signed by `signers` (as `livegraft keys` would write it). */
function rootFile(keys: KeySet, version: number, signers: TufKeyFile[]): string {
  const md = buildRoot(
    {
      root: [keys.root],
      rootThreshold: 1,
      targets: [keys.targets],
      snapshot: [keys.snapshot],
      timestamp: [keys.timestamp],
    },
    version,
    new Date(Date.now() + YEAR_MS),
  );
  signWith(md, signers);
  return serialize(md).json;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${typeof value === 'string' ? value : JSON.stringify(value)}\n`, { mode: 0o600 });
}

/** A data dir prepared as an admin would with an offline root key: online keys and 1.root.json only. */
async function offlineDataDir(keys: KeySet): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-tuf-offline-'));
  await mkdir(join(dir, 'keys'), { mode: 0o700 });
  await mkdir(join(dir, 'tuf', 'roots'), { recursive: true });
  for (const role of ['targets', 'snapshot', 'timestamp'] as const) {
    await writeJson(join(dir, 'keys', `${role}.json`), keys[role]);
  }
  await writeJson(join(dir, 'tuf', 'roots', '1.root.json'), rootFile(keys, 1, [keys.root]));
  return dir;
}

function signerOf(json: string): string[] {
  return Object.keys(parseTargets(json).signatures);
}

const silent = pino({ level: 'silent' });

describe('TUF with an offline root and key rotation', () => {
  it('uses an admin-made root, follows targets and root key rotations, refuses a root signed only by a new key', async () => {
    const k1 = newKeys();
    const dir = await offlineDataDir(k1);
    const h = await startHarness({}, dir);
    const p = buildPatch({ level: 1 });
    let client: TestClient | undefined;
    try {
      await assert.rejects(stat(join(dir, 'keys', 'root.json')), /ENOENT/, 'no root key is generated');
      const pinned = await enrolRoot(h);
      const adminRoot = JSON.parse(await readFile(join(dir, 'tuf', 'roots', '1.root.json'), 'utf8')) as unknown;
      assert.deepEqual(pinned, adminRoot, 'the enrol answer is the admin-made root');
      client = await TestClient.create(h.server.url, pinned);
      await uploadAndRecord(h, p, true);
      assert.ok(await client.fetchLevel(KERNEL_ID, 1, p.manifest.name));
      assert.deepEqual(signerOf(latestMetadata(h, 'targets').json), [k1.targets.keyid]);

      // Targets key rotation: root 2 names a new targets key and is signed by the (unchanged) root key.
      const k2: KeySet = { ...k1, targets: generateTufKey('targets', new Date()) };
      await writeJson(join(dir, 'tuf', 'roots', '2.root.json'), rootFile(k2, 2, [k1.root]));
      await h.restart().then(
        () => assert.fail('a server whose targets key is not in the new root must not start'),
        (err: Error) => assert.match(err.message, /targets key .* is not a targets key of TUF root version 2/),
      );
      await rm(join(dir, 'keys', 'targets.json'));
      await writeJson(join(dir, 'keys', 'targets.json'), k2.targets);
      await h.restart();
      assert.deepEqual(
        signerOf(latestMetadata(h, 'targets').json),
        [k2.targets.keyid],
        'targets re-signed with the new key',
      );
      client.base = h.server.url;
      const got = await client.fetchLevel(KERNEL_ID, 1, p.manifest.name);
      assert.ok(got);
      assert.deepEqual(got.bytes, p.bytes);
      assert.equal(await client.trustedRootVersion(), 2, 'the client followed the rotation');

      // Root key rotation: root 3 has a new root key, signed by the old AND the new root key.
      const k3: KeySet = { ...k2, root: generateTufKey('root', new Date()) };
      await writeJson(join(dir, 'tuf', 'roots', '3.root.json'), rootFile(k3, 3, [k2.root, k3.root]));
      await h.restart();
      client.base = h.server.url;
      assert.ok(await client.fetchLevel(KERNEL_ID, 1, p.manifest.name));
      assert.equal(await client.trustedRootVersion(), 3);

      // Root 4 swaps the root key again but is signed only by the newest key: the server refuses to import it...
      const k4: KeySet = { ...k3, root: generateTufKey('root', new Date()) };
      const bad = rootFile(k4, 4, [k4.root]);
      await writeJson(join(dir, 'tuf', 'roots', '4.root.json'), bad);
      await h.restart().then(
        () => assert.fail('a root not signed by the previous root keys must not be imported'),
        (err: Error) => assert.match(err.message, /not signed by a threshold of root version 3's root keys/),
      );
      await rm(join(dir, 'tuf', 'roots', '4.root.json'));
      await h.restart();
      client.base = h.server.url;
      // ...and a client refuses it too, when an attacker puts it in the database directly.
      withDb(h, (db) =>
        db
          .prepare("INSERT INTO tuf_metadata (role, version, json, created_at) VALUES ('root', 4, ?, ?)")
          .run(bad, new Date().toISOString()),
      );
      await assert.rejects(client.fetchLevel(KERNEL_ID, 1, p.manifest.name), /root was signed by 0\/1 keys/);
      assert.equal(await client.trustedRootVersion(), 3, 'the client keeps its last good root');
    } finally {
      await client?.remove();
      await h.stop();
    }
  });

  it('refuses to start with keys but no root, and names what to do', async () => {
    const k = newKeys();
    const dir = await offlineDataDir(k);
    try {
      await rm(join(dir, 'tuf', 'roots', '1.root.json'));
      const config = parseConfig({ dataDir: dir, port: 0, logLevel: 'silent' });
      await assert.rejects(startServer(config, { logger: silent }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'TUF_ROOT_MISSING');
        assert.match(err.message, /tuf\/roots or pass --tuf-root/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('imports a root given with --tuf-root and keeps online keys in --tuf-keys-dir', async () => {
    const k = newKeys();
    const dir = await offlineDataDir(k);
    const keysDir = await mkdtemp(join(tmpdir(), 'livegraft-tuf-keys-'));
    try {
      const rootPath = join(keysDir, '1.root.json');
      await writeJson(rootPath, rootFile(k, 1, [k.root]));
      await rm(join(dir, 'tuf', 'roots', '1.root.json'));
      for (const role of ['targets', 'snapshot', 'timestamp'] as const) {
        await rm(join(dir, 'keys', `${role}.json`));
        await writeJson(join(keysDir, `${role}.json`), k[role]);
      }
      const config = parseConfig({
        dataDir: dir,
        port: 0,
        logLevel: 'silent',
        tufKeysDir: keysDir,
        tufRoots: [rootPath],
      });
      const server = await startServer(config, { logger: silent });
      try {
        const res = await fetch(`${server.url}/tuf/metadata/1.root.json`);
        assert.equal(res.status, 200);
        const served = (await res.json()) as { signed: { keys: Record<string, unknown> } };
        assert.ok(served.signed.keys[k.root.keyid]);
      } finally {
        await server.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(keysDir, { recursive: true, force: true });
    }
  });

  it('refuses a self-signed first root whose file name and version disagree', async () => {
    const k = newKeys();
    const dir = await offlineDataDir(k);
    try {
      await rm(join(dir, 'tuf', 'roots', '1.root.json'));
      await writeJson(join(dir, 'tuf', 'roots', '2.root.json'), rootFile(k, 1, [k.root]));
      const config = parseConfig({ dataDir: dir, port: 0, logLevel: 'silent' });
      await assert.rejects(startServer(config, { logger: silent }), /file name says version 2/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
