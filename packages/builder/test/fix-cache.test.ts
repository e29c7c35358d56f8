import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fixKey, readCachedCompile, writeCachedCompile, type CachedCompile } from '../src/patch/fix-cache.ts';
import type { LoadedFix } from '../src/fixes.ts';

async function fixDir(patch: string): Promise<LoadedFix> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lg-fixcache-'));
  const spec = { id: 'CVE-2026-1111', title: 't', cves: ['CVE-2026-1111'], patches: ['a.patch'] };
  await writeFile(path.join(dir, 'fix.json'), JSON.stringify(spec));
  await writeFile(path.join(dir, 'a.patch'), patch);
  return { dir, shownDir: dir, spec, sources: [], headers: [], patches: ['a.patch'] };
}

const kernel = { release: '6.1.0-50-amd64', debianVersion: '6.1.176-1' };
const entry: CachedCompile = {
  status: 'built',
  commits: [{ id: 'cb481e59ea6c', subject: 'KEYS: fix' }],
  touched: ['security/keys/keyctl_pkey.c'],
  units: [
    {
      unit: 'security/keys/keyctl_pkey.c',
      target: 'vmlinux',
      afterEarlier: false,
      original: Buffer.from('orig'),
      patched: Buffer.from('patched'),
    },
  ],
};

describe('per-fix compile cache', () => {
  it('keys on the kernel build, the fix files and the earlier fixes', async () => {
    const a = await fixDir('--- a/x.c\n+++ b/x.c\n');
    const b = await fixDir('--- a/x.c\n+++ b/x.c\n ');
    const k = await fixKey(kernel, a, []);
    assert.equal(k, await fixKey(kernel, a, []));
    assert.notEqual(k, await fixKey(kernel, b, []));
    assert.notEqual(k, await fixKey({ ...kernel, debianVersion: '6.1.187-1' }, a, []));
    assert.notEqual(k, await fixKey(kernel, a, ['earlier']));
  });

  it('round-trips an entry, and a damaged one is a miss', async () => {
    const cache = await mkdtemp(path.join(tmpdir(), 'lg-cache-'));
    assert.equal(await readCachedCompile(cache, 'ab'.repeat(32)), undefined);
    await writeCachedCompile(cache, 'ab'.repeat(32), entry);
    const back = await readCachedCompile(cache, 'ab'.repeat(32));
    assert.deepEqual(back?.commits, entry.commits);
    assert.equal(back?.units[0]?.patched.toString(), 'patched');
    // No temporary directories are left beside the entry.
    assert.deepEqual(await readdir(path.join(cache, 'fix-objects', 'ab')), ['ab'.repeat(32)]);
    const dir = path.join(cache, 'fix-objects', 'ab', 'ab'.repeat(32));
    await writeFile(path.join(dir, 'entry.json'), '{not json');
    assert.equal(await readCachedCompile(cache, 'ab'.repeat(32)), undefined);
    await mkdir(dir, { recursive: true });
    await writeFile(
      path.join(dir, 'entry.json'),
      JSON.stringify({ ...entry, units: [{ ...entry.units[0], original: 'gone.o', patched: 'gone.o' }] }),
    );
    assert.equal(await readCachedCompile(cache, 'ab'.repeat(32)), undefined);
  });
});
