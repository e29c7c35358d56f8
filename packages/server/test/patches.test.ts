import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseModinfo, type LatestResponse, type PatchRecord } from '@livegraft/protocol';
import { buildPatch, KERNEL_ID, OTHER_KERNEL_ID, startHarness, steppingClock, type Harness } from './helpers.ts';

describe('modules and patches', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock: steppingClock() });
  });
  after(async () => h.stop());

  it('answers the health check without auth', async () => {
    const res = await h.call('GET', '/healthz', { token: null });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { ok: true });
  });

  it('the test module is a module parseModinfo accepts', () => {
    const info = parseModinfo(buildPatch().bytes);
    assert.deepEqual(info.get('livepatch'), ['Y']);
  });

  it('stores a module, records and publishes its manifest, and serves both back', async () => {
    const p = buildPatch({ level: 1, salt: 'roundtrip' });
    const up = await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    assert.equal(up.status, 201);
    assert.deepEqual(up.json, { sha256: p.sha256, size: p.bytes.length, created: true });

    const again = await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    assert.equal(again.status, 200, 'uploading the same bytes twice is idempotent');
    assert.equal((again.json as { created: boolean }).created, false);

    const rec = await h.call('POST', '/patches', { json: { manifest: p.manifest } });
    assert.equal(rec.status, 201);
    const record = rec.json as PatchRecord;
    assert.equal(record.kernelId, KERNEL_ID);
    assert.equal(record.level, 1);
    assert.equal(record.published, false);
    assert.equal(record.publishedAt, null);
    assert.deepEqual(record.cves, ['CVE-2024-1086']);
    assert.deepEqual(record.fixIds, ['fix-1']);
    assert.equal(record.moduleSha256, p.sha256);
    assert.equal(record.size, p.bytes.length);

    const hidden = await h.call('GET', `/kernels/${KERNEL_ID}/latest`);
    assert.equal(hidden.status, 404, 'an unpublished level is not the latest');

    const pub = await h.call('POST', `/kernels/${KERNEL_ID}/levels/1/publish`);
    assert.equal(pub.status, 200);
    const published = pub.json as PatchRecord;
    assert.equal(published.published, true);
    assert.match(published.publishedAt ?? '', /^2026-03-01T10:00:\d\d\.000Z$/);
    const repub = await h.call('POST', `/kernels/${KERNEL_ID}/levels/1/publish`);
    assert.equal((repub.json as PatchRecord).publishedAt, published.publishedAt, 'publishing again keeps the time');

    const latest = await h.call('GET', `/kernels/${KERNEL_ID}/latest`);
    assert.equal(latest.status, 200);
    assert.deepEqual(latest.json, { kernelId: KERNEL_ID, level: 1, manifest: p.manifest } satisfies LatestResponse);

    const mod = await h.call('GET', `/modules/${p.sha256}`);
    assert.equal(mod.status, 200);
    assert.equal(mod.headers.get('content-type'), 'application/octet-stream');
    assert.equal(mod.headers.get('content-length'), String(p.bytes.length));
    assert.ok(mod.bytes.equals(p.bytes), 'module bytes come back unchanged');

    const files = await readdir(join(h.dataDir, 'modules'));
    assert.ok(files.includes(`${p.sha256}.ko`));
  });

  it('records the same manifest again as a no-op, and refuses a different one for the level', async () => {
    const p = buildPatch({ level: 2, salt: 'idem' });
    const { record } = await uploadAndPublish(p);
    assert.equal(record.status, 201);
    // Same manifest with keys in another order: still the same manifest.
    const reordered = Object.fromEntries(Object.entries(p.manifest).reverse());
    const same = await h.call('POST', '/patches', { json: { manifest: reordered, publish: true } });
    assert.equal(same.status, 200);
    assert.equal((same.json as PatchRecord).moduleSha256, p.sha256);

    const other = buildPatch({ level: 2, salt: 'different bytes' });
    await h.call('PUT', `/modules/${other.sha256}`, { body: other.bytes });
    const clash = await h.call('POST', '/patches', { json: { manifest: other.manifest } });
    assert.equal(clash.status, 409);
    assert.equal((clash.json as { code: string }).code, 'LEVEL_EXISTS');
    const level = await h.call('GET', `/kernels/${KERNEL_ID}/levels/2`);
    assert.equal((level.json as LatestResponse).manifest.module.sha256, p.sha256, 'the first manifest stays');
  });

  it('latest is the highest published level; unpublished levels are invisible to hosts', async () => {
    const p3 = buildPatch({ level: 3 });
    const p4 = buildPatch({ level: 4 });
    assert.equal((await uploadAndPublish(p3)).record.status, 201);
    const r4 = await h.call('PUT', `/modules/${p4.sha256}`, { body: p4.bytes });
    assert.equal(r4.status, 201);
    assert.equal((await h.call('POST', '/patches', { json: { manifest: p4.manifest } })).status, 201);

    const latest = await h.call('GET', `/kernels/${KERNEL_ID}/latest`);
    assert.equal((latest.json as LatestResponse).level, 3);
    const l4 = await h.call('GET', `/kernels/${KERNEL_ID}/levels/4`);
    assert.equal(l4.status, 404);
    assert.equal((l4.json as { code: string }).code, 'LEVEL_NOT_FOUND');

    const list = await h.call('GET', `/patches?kernelId=${KERNEL_ID}`);
    const records = list.json as PatchRecord[];
    assert.deepEqual(
      records.map((r) => [r.level, r.published]),
      [
        [1, true],
        [2, true],
        [3, true],
        [4, false],
      ],
    );
    const none = await h.call('GET', `/patches?kernelId=${OTHER_KERNEL_ID}`);
    assert.deepEqual(none.json, []);
  });

  it('answers 404 KERNEL_UNSUPPORTED for a kernel without published patches', async () => {
    const res = await h.call('GET', `/kernels/${OTHER_KERNEL_ID}/latest`);
    assert.equal(res.status, 404);
    assert.equal((res.json as { code: string }).code, 'KERNEL_UNSUPPORTED');
  });

  it('publishing an unknown level is 404 LEVEL_NOT_FOUND', async () => {
    const res = await h.call('POST', `/kernels/${KERNEL_ID}/levels/99/publish`);
    assert.equal(res.status, 404);
    assert.equal((res.json as { code: string }).code, 'LEVEL_NOT_FOUND');
  });

  it('an unknown module is 404', async () => {
    const res = await h.call('GET', `/modules/${'a'.repeat(64)}`);
    assert.equal(res.status, 404);
    assert.equal((res.json as { code: string }).code, 'MODULE_NOT_FOUND');
  });

  async function uploadAndPublish(p: ReturnType<typeof buildPatch>): Promise<{ record: { status: number } }> {
    const up = await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    assert.ok(up.status === 201 || up.status === 200, `upload: ${up.status} ${up.bytes.toString()}`);
    return { record: await h.call('POST', '/patches', { json: { manifest: p.manifest, publish: true } }) };
  }
});
