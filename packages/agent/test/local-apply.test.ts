import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { moduleNameFor } from '@livegraft/protocol';
import { TestHost } from './helpers/cli.ts';
import { makePatch, type PatchTweaks, type TestPatch } from './helpers/patches.ts';

describe('apply <manifest> (local, no server)', () => {
  let host: TestHost;
  before(() => {
    host = new TestHost();
  });
  after(() => host.cleanup());

  const place = (label: string, patch: TestPatch): string => {
    const dir = join(host.root, 'fixtures', label);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, patch.manifest.module.file), patch.bytes);
    const path = join(dir, `${patch.manifest.name}.json`);
    writeFileSync(path, JSON.stringify(patch.manifest));
    return path;
  };
  const bad = (label: string, level: number, tweaks: PatchTweaks): string =>
    place(label, makePatch(host.kernel, level, tweaks));

  it('applies level 2 from a manifest and the module beside it, without any config', async () => {
    const r = await host.cli(['apply', place('l2', makePatch(host.kernel, 2))]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 2)), true);
    assert.equal((await host.cli(['uname'])).stdout, '6.1.0-99-amd64+lg2\n');
  });

  it('verifies the given file even when a good copy of that level is cached', async () => {
    const good = makePatch(host.kernel, 2);
    const corrupt = { manifest: good.manifest, bytes: Buffer.from(good.bytes) };
    corrupt.bytes[80] = (corrupt.bytes[80] ?? 0) ^ 0xff;
    const loads = host.kernel.loads().length;
    const r = await host.cli(['apply', place('corrupt', corrupt)]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[MODULE_HASH_MISMATCH\]/);
    assert.equal(host.kernel.loads().length, loads);
  });

  it('refuses other kernels and non-livepatch modules, before any load', async () => {
    const loads = host.kernel.loads().length;
    const other = 'e'.repeat(64);
    const r1 = await host.cli([
      'apply',
      bad('other', 3, {
        manifest: (m) => {
          m.kernel.id = other;
          m.name = moduleNameFor(other, 3);
          m.module.file = `${m.name}.ko`;
        },
      }),
    ]);
    assert.match(r1.stderr, /^error \[KERNEL_MISMATCH\]/);
    const r2 = await host.cli(['apply', bad('plain', 3, { modinfo: { livepatch: undefined } })]);
    assert.match(r2.stderr, /^error \[MODULE_NOT_LIVEPATCH\]/);
    const r3 = await host.cli(['apply', join(host.root, 'nope.json')]);
    assert.match(r3.stderr, /^error \[MANIFEST_UNREADABLE\]/);
    assert.equal(host.kernel.loads().length, loads);
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 2)), true);
  });

  it('refuses a lower level unless --allow-downgrade', async () => {
    const path = place('l1', makePatch(host.kernel, 1));
    const r = await host.cli(['apply', path]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[DOWNGRADE_REFUSED\]/);
    const ok = await host.cli(['apply', '--allow-downgrade', path]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)), true);
    assert.equal(host.kernel.moduleLoaded(moduleNameFor(host.kernel.id, 2)), false);
  });
});
