import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { moduleNameFor, type LatestResponse } from '@livegraft/protocol';
import { buildPatch, KERNEL_ID, startHarness } from './helpers.ts';

const hasCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;

/** An object file from the system C compiler, with .modinfo laid out by the toolchain, not by us. */
async function compileModule(dir: string, entries: string[]): Promise<Buffer> {
  const src = entries
    .map(
      (e, i) =>
        `__attribute__((section(".modinfo"), used, aligned(1))) static const char info${i}[] = ${JSON.stringify(e)};`,
    )
    .join('\n');
  await writeFile(join(dir, 'm.c'), `${src}\nint livegraft_test_fn(void) { return 42; }\n`);
  execFileSync('cc', ['-c', '-O2', '-o', join(dir, 'm.ko'), join(dir, 'm.c')]);
  return readFile(join(dir, 'm.ko'));
}

describe('a module built by the C compiler', { skip: hasCc ? false : 'no C compiler' }, () => {
  it('is accepted, published and served back byte for byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'livegraft-server-cc-'));
    const h = await startHarness();
    try {
      const name = moduleNameFor(KERNEL_ID, 1);
      const bytes = await compileModule(dir, [
        'livepatch=Y',
        'license=GPL',
        'livegraft_level=1',
        `livegraft_kernel_id=${KERNEL_ID}`,
        // modpost always writes one; publish compares it with the manifest.
        'vermagic=6.1.0-18-amd64 SMP preempt mod_unload modversions ',
        `name=${name}`,
      ]);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const template = buildPatch({ level: 1 }).manifest;
      const manifest = { ...template, module: { file: `${name}.ko`, sha256, size: bytes.length } };
      assert.equal((await h.call('PUT', `/modules/${sha256}`, { body: bytes })).status, 201);
      const rec = await h.call('POST', '/patches', { json: { manifest, publish: true } });
      assert.equal(rec.status, 201, rec.bytes.toString());
      const latest = (await h.call('GET', `/kernels/${KERNEL_ID}/latest`)).json as LatestResponse;
      assert.equal(latest.manifest.module.sha256, sha256);
      assert.ok((await h.call('GET', `/modules/${sha256}`)).bytes.equals(bytes));

      const plain = await compileModule(dir, ['license=GPL', `name=${name}`]);
      const plainSha = createHash('sha256').update(plain).digest('hex');
      const refused = await h.call('PUT', `/modules/${plainSha}`, { body: plain });
      assert.equal(refused.status, 400);
      assert.equal((refused.json as { code: string }).code, 'MODULE_NOT_LIVEPATCH');
    } finally {
      await h.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
