import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { moduleNameFor } from '@livegraft/protocol';
import { exportBundle } from '../src/export.ts';
import { serveMirror, syncMirror } from '../src/mirror.ts';
import {
  buildPatch,
  CLI_BIN,
  fetchWithTuf,
  KERNEL_ID,
  OTHER_KERNEL_ID,
  publish,
  startServerProcess,
  tempDir,
  waitForLine,
  type RunningServer,
} from './helpers.ts';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('livegraft mirror and export', () => {
  let upstream: RunningServer;
  let pinned: string;
  const a1 = buildPatch(KERNEL_ID, 1);
  const b1 = buildPatch(OTHER_KERNEL_ID, 1);

  before(async () => {
    upstream = await startServerProcess(await tempDir('data'));
    await publish(upstream, a1);
    await publish(upstream, b1);
    pinned = await (await fetch(`${upstream.url}/tuf/metadata/1.root.json`)).text();
  });
  after(async () => {
    await upstream.stop();
    await rm(upstream.dataDir, { recursive: true, force: true });
  });

  it('syncs metadata and targets, serves them, and a tuf-js client verifies everything through the mirror', async () => {
    const dir = await tempDir('mirror');
    const server = serveMirror(dir);
    try {
      const r = await syncMirror({ upstream: upstream.url, dir });
      assert.equal(r.targets, 2);
      assert.equal(r.downloaded, 2);
      const base = await listen(server);
      const got = await fetchWithTuf(base, pinned, KERNEL_ID, 1);
      assert.ok(got);
      assert.deepEqual(got.bytes, a1.bytes);
      assert.deepEqual(got.manifest, a1.manifest);

      // A new publish upstream reaches the mirror on the next sync; unchanged modules are not fetched again.
      const a2 = buildPatch(KERNEL_ID, 2);
      await publish(upstream, a2);
      const r2 = await syncMirror({ upstream: upstream.url, dir });
      assert.equal(r2.targets, 3);
      assert.equal(r2.downloaded, 1);
      const got2 = await fetchWithTuf(base, pinned, KERNEL_ID, 2);
      assert.deepEqual(got2?.bytes, a2.bytes);
      assert.equal((await fetch(`${base}/tuf/../../etc/passwd`)).status, 404);
      assert.equal((await fetch(`${base}/tuf/metadata/%2e%2e%2f%2e%2e%2fREADME.txt`)).status, 404);
    } finally {
      await close(server);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a tampered module or metadata file on the mirror is refused by the client, and by a mirror syncing from it', async () => {
    const dir = await tempDir('mirror');
    const server = serveMirror(dir);
    try {
      await syncMirror({ upstream: upstream.url, dir });
      const base = await listen(server);
      const name = moduleNameFor(KERNEL_ID, 1);
      const modulePath = join(dir, 'tuf', 'targets', KERNEL_ID, '1', `${a1.sha256}.${name}.ko`);
      const evil = Buffer.from(a1.bytes);
      evil.write('EVIL', 100, 'latin1');
      await writeFile(modulePath, evil);
      await assert.rejects(fetchWithTuf(base, pinned, KERNEL_ID, 1), /Expected hash/);

      // A downstream mirror does not take the forged module either.
      const downstream = await tempDir('mirror2');
      try {
        await assert.rejects(syncMirror({ upstream: base, dir: downstream }), /sha256 is not the signed one/);
      } finally {
        await rm(downstream, { recursive: true, force: true });
      }
      await writeFile(modulePath, a1.bytes);
      assert.ok(await fetchWithTuf(base, pinned, KERNEL_ID, 1), 'restored, it verifies again');

      // Edit the targets metadata (claim level 1 is something else) without a valid signature.
      const metaDir = join(dir, 'tuf', 'metadata');
      const targetsFile = (await readdir(metaDir))
        .filter((f) => f.endsWith('.targets.json'))
        .sort()
        .pop() as string;
      const original = await readFile(join(metaDir, targetsFile), 'utf8');
      await writeFile(join(metaDir, targetsFile), original.replace('"fix 1"', '"fix X"'));
      await assert.rejects(fetchWithTuf(base, pinned, KERNEL_ID, 1), /Unable to load targets/);
    } finally {
      await close(server);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('export writes a bundle with one kernel’s modules and a README; `livegraft mirror --dir --serve` serves it to a client', async () => {
    const out = await tempDir('bundle');
    try {
      const r = await exportBundle({ server: upstream.url, token: upstream.adminToken, out, kernels: [KERNEL_ID] });
      assert.ok(r.targets >= 1);
      assert.deepEqual(await readdir(join(out, 'tuf', 'targets')), [KERNEL_ID], 'only the chosen kernel');
      const readme = await readFile(join(out, 'README.txt'), 'utf8');
      assert.match(readme, new RegExp(`expires at ${r.timestampExpires}`));
      assert.match(readme, /livegraft mirror --dir/);

      const child = spawn(
        process.execPath,
        ['--import', 'tsx', CLI_BIN, 'mirror', '--dir', out, '--serve', '--port', '0'],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      try {
        const m = await waitForLine(child, /serving .* at (http:\/\/127\.0\.0\.1:\d+)\/tuf\//);
        const base = m[1] as string;
        const got = await fetchWithTuf(base, pinned, KERNEL_ID, 1);
        assert.deepEqual(got?.bytes, a1.bytes);
        await assert.rejects(fetchWithTuf(base, pinned, OTHER_KERNEL_ID, 1), (err: Error & { statusCode?: number }) => {
          assert.equal(err.statusCode, 404, 'the other kernel is signed but its module is not in the bundle');
          return true;
        });
      } finally {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
