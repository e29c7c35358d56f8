// A user-space level delivered through TUF: the agent's client refreshes the
// signed metadata, takes the manifest from the target's signed custom data,
// downloads the code object (length and hash checked) and leaves both where
// the user-space manager installs levels from. Forged or mismatched targets
// are refused. The level is a real one (Debian's glibc 2.36-9+deb12u7).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isLivegraftError, userspaceTargetPath, type UserspaceManifest } from '@livegraft/protocol';
import { silentLogger } from '../../src/lib/log.ts';
import { TufClient } from '../../src/delivery/tuf-client.ts';
import { DEFAULT_DELIVERY_LIMITS } from '../../src/delivery/tuf-fetcher.ts';
import { loadBundle } from '../../src/userspace/bundle.ts';
import { fetchUserspaceLevel } from '../../src/userspace/delivery.ts';
import { TestRepo } from '../helpers/tuf-repo.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'server', 'test', 'fixtures', 'userspace');
const manifest = JSON.parse(
  readFileSync(join(FIXTURES, 'lg-libc-so-6-58254ca97202-1.json'), 'utf8'),
) as UserspaceManifest;
const object = readFileSync(join(FIXTURES, manifest.code.file));
const path = userspaceTargetPath(manifest.library.buildId, 1, manifest.code.file);

/** Serves the repository's files the way the server lays them out. */
function fetchFrom(repo: TestRepo): typeof globalThis.fetch {
  return (input) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const m = /^\/tuf\/(metadata|targets)\/(.+)$/.exec(url.pathname);
    const key = m === null ? undefined : m[1] === 'metadata' ? m[2] : `targets/${m[2]}`;
    const bytes = key === undefined ? undefined : repo.files.get(decodeURIComponent(key));
    return Promise.resolve(bytes === undefined ? new Response('not found', { status: 404 }) : new Response(bytes));
  };
}

describe('user-space levels through TUF', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  function client(repo: TestRepo): TufClient {
    const stateDir = mkdtempSync(join(tmpdir(), 'lg-us-delivery-'));
    dirs.push(stateDir);
    TufClient.pinRoot(stateDir, repo.rootBytes(), 'test root');
    return new TufClient({
      stateDir,
      baseUrl: 'http://repo.test',
      limits: DEFAULT_DELIVERY_LIMITS,
      log: silentLogger,
      fetch: fetchFrom(repo),
    });
  }
  const desired = {
    buildId: manifest.library.buildId,
    level: 1,
    reason: 'feed',
    allowDowngrade: false,
    target: path,
  } as const;

  it('fetches the signed level and its code object beside its manifest', async () => {
    const repo = new TestRepo();
    repo.setCustomTarget(path, object, { livegraft: { userspace: manifest } });
    repo.publish();
    const c = client(repo);
    const out = mkdtempSync(join(tmpdir(), 'lg-us-levels-'));
    dirs.push(out);
    const session = await c.open();
    try {
      const file = await fetchUserspaceLevel(session, desired, out);
      const bundle = loadBundle(file);
      assert.deepEqual(bundle.manifest, manifest);
      assert.ok(bundle.object.equals(object));
      assert.equal(await fetchUserspaceLevel(session, desired, out), file, 'a level already there is reused');
    } finally {
      session.close();
    }
  });

  it('refuses a target whose signed manifest is for another level, and bytes that are not the signed ones', async () => {
    const repo = new TestRepo();
    repo.setCustomTarget(path, object, { livegraft: { userspace: { ...manifest, level: 2 } } });
    repo.publish();
    const out = mkdtempSync(join(tmpdir(), 'lg-us-levels-'));
    dirs.push(out);
    let session = await client(repo).open();
    await assert.rejects(
      fetchUserspaceLevel(session, desired, out),
      (e: unknown) => isLivegraftError(e) && e.code === 'USERSPACE_TARGET_MISMATCH',
    );
    session.close();

    repo.setCustomTarget(path, object, { livegraft: { userspace: manifest } });
    repo.publish();
    for (const [k, v] of repo.files)
      if (k.startsWith('targets/userspace/')) repo.files.set(k, Buffer.concat([v.subarray(1), Buffer.from([0])]));
    session = await client(repo).open();
    await assert.rejects(fetchUserspaceLevel(session, desired, out), (e: unknown) => isLivegraftError(e));
    session.close();
  });
});
