import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { MAX_MODULE_BYTES, type ApiError } from '@livegraft/protocol';
import { buildPatch, KERNEL_ID, OTHER_KERNEL_ID, startHarness, type Answer, type Harness } from './helpers.ts';

function assertError(res: Answer, status: number, code: string): ApiError {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${res.bytes.toString()}`);
  const body = res.json as ApiError;
  assert.equal(body.code, code);
  assert.equal(typeof body.message, 'string');
  assert.ok(body.message.length > 0);
  return body;
}

describe('refused uploads and manifests', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.stop());

  // Every case here must leave nothing behind.
  beforeEach(async () => {
    assert.deepEqual(await readdir(join(h.dataDir, 'modules')), []);
    assert.deepEqual((await h.call('GET', '/patches')).json, []);
  });

  it('refuses a module whose bytes do not hash to the URL', async () => {
    const p = buildPatch();
    const wrong = 'f'.repeat(64);
    const body = assertError(await h.call('PUT', `/modules/${wrong}`, { body: p.bytes }), 400, 'MODULE_HASH_MISMATCH');
    assert.deepEqual(body.details, { expected: wrong, actual: p.sha256 });
  });

  it('refuses a module without livepatch=Y', async () => {
    const p = buildPatch({ livepatch: false });
    assertError(await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes }), 400, 'MODULE_NOT_LIVEPATCH');
  });

  it('refuses bytes that are not an ELF module', async () => {
    const bytes = Buffer.from('#!/bin/sh\necho not a module\n'.repeat(4));
    const sha = createHash('sha256').update(bytes).digest('hex');
    const body = assertError(await h.call('PUT', `/modules/${sha}`, { body: bytes }), 400, 'MODULE_MALFORMED');
    assert.match(body.message, /ELF/);
  });

  it('refuses a truncated module', async () => {
    const full = buildPatch().bytes;
    const cut = full.subarray(0, full.length - 100);
    const sha = createHash('sha256').update(cut).digest('hex');
    assertError(await h.call('PUT', `/modules/${sha}`, { body: cut }), 400, 'MODULE_MALFORMED');
  });

  it('refuses a module upload that is not application/octet-stream', async () => {
    const p = buildPatch();
    const res = await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes, contentType: 'text/plain' });
    assertError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertError(await h.call('PUT', `/modules/${p.sha256}`), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses a bad sha256 in the URL, naming the field', async () => {
    const body = assertError(
      await h.call('PUT', '/modules/NOTAHASH', { body: buildPatch().bytes }),
      400,
      'VALIDATION_FAILED',
    );
    assert.match(body.message, /sha256/);
  });

  it('refuses a module larger than MAX_MODULE_BYTES with 413', async () => {
    const res = await h.call('PUT', `/modules/${'0'.repeat(64)}`, { body: Buffer.alloc(MAX_MODULE_BYTES + 1) });
    assertError(res, 413, 'BODY_TOO_LARGE');
  });

  it('refuses a manifest whose module was never uploaded', async () => {
    const p = buildPatch();
    assertError(await h.call('POST', '/patches', { json: { manifest: p.manifest } }), 409, 'MODULE_NOT_UPLOADED');
  });

  it('refuses a manifest whose size disagrees with the stored module', async () => {
    const p = buildPatch({ salt: 'size' });
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    const manifest = { ...p.manifest, module: { ...p.manifest.module, size: p.bytes.length + 1 } };
    const body = assertError(await h.call('POST', '/patches', { json: { manifest } }), 400, 'MODULE_SIZE_MISMATCH');
    assert.deepEqual(body.details, { manifest: p.bytes.length + 1, stored: p.bytes.length });
    await cleanModules();
  });

  it('refuses a manifest whose level disagrees with the module modinfo', async () => {
    const p = buildPatch({ level: 2, modinfoLevel: '3' });
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    const body = assertError(
      await h.call('POST', '/patches', { json: { manifest: p.manifest } }),
      400,
      'MANIFEST_MISMATCH',
    );
    assert.match(body.message, /livegraft_level is 3/);
    await cleanModules();
  });

  it('refuses to sign a module whose modinfo vermagic lies about its kernel', async () => {
    const p = buildPatch({ modinfoVermagic: '9.9.9-evil SMP preempt mod_unload modversions ' });
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    const body = assertError(
      await h.call('POST', '/patches', { json: { manifest: p.manifest, publish: true } }),
      400,
      'MANIFEST_MISMATCH',
    );
    assert.match(body.message, /vermagic is 9\.9\.9-evil/);
    assert.deepEqual((await h.call('GET', '/patches')).json, []);
    await cleanModules();
  });

  it('refuses a manifest whose release is not the one its vermagic names', async () => {
    const p = buildPatch();
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    const manifest = { ...p.manifest, kernel: { ...p.manifest.kernel, release: '6.1.0-19-amd64' } };
    const body = assertError(await h.call('POST', '/patches', { json: { manifest } }), 400, 'MANIFEST_MISMATCH');
    assert.match(body.message, /kernel\.release/);
    await cleanModules();
  });

  it('refuses a manifest whose kernel id disagrees with the module modinfo', async () => {
    const p = buildPatch({ modinfoKernelId: OTHER_KERNEL_ID });
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    assertError(await h.call('POST', '/patches', { json: { manifest: p.manifest } }), 400, 'MANIFEST_MISMATCH');
    await cleanModules();
  });

  it('refuses a manifest with the wrong module name or file name', async () => {
    const p = buildPatch({ salt: 'names' });
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    const badName = { ...p.manifest, name: 'livegraft_000000000000_l1' };
    assertError(await h.call('POST', '/patches', { json: { manifest: badName } }), 400, 'MANIFEST_MISMATCH');
    const badFile = { ...p.manifest, module: { ...p.manifest.module, file: 'other.ko' } };
    assertError(await h.call('POST', '/patches', { json: { manifest: badFile } }), 400, 'MANIFEST_MISMATCH');
    await cleanModules();
  });

  it('refuses an unknown field in the body, naming it', async () => {
    const p = buildPatch({ salt: 'unknown' });
    await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    const body = assertError(
      await h.call('POST', '/patches', { json: { manifest: p.manifest, publish: true, force: true } }),
      400,
      'VALIDATION_FAILED',
    );
    assert.match(body.message, /unknown field "force"/);
    const nested = { ...p.manifest, kernel: { ...p.manifest.kernel, extra: 1 } };
    const body2 = assertError(
      await h.call('POST', '/patches', { json: { manifest: nested } }),
      400,
      'VALIDATION_FAILED',
    );
    assert.match(body2.message, /\/manifest\/kernel\/extra/);
    await cleanModules();
  });

  it('refuses a body that is not JSON', async () => {
    const res = await h.call('POST', '/patches', { body: Buffer.from('{nope'), contentType: 'application/json' });
    assertError(res, 400, 'VALIDATION_FAILED');
  });

  it('refuses a bad level in the URL', async () => {
    const body = assertError(
      await h.call('POST', `/kernels/${KERNEL_ID}/levels/zero/publish`),
      400,
      'VALIDATION_FAILED',
    );
    assert.match(body.message, /level/);
    assertError(await h.call('GET', `/kernels/${KERNEL_ID}/levels/0`), 400, 'VALIDATION_FAILED');
  });

  it('answers unknown routes with the error shape', async () => {
    assertError(await h.call('GET', '/nope'), 404, 'NOT_FOUND');
  });

  // Refused manifests record nothing; uploaded modules are removed so beforeEach can check the store is empty.
  async function cleanModules(): Promise<void> {
    for (const f of await readdir(join(h.dataDir, 'modules'))) await rm(join(h.dataDir, 'modules', f));
  }
});
