import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { installPatch, uninstallAll, type KernelOps } from '../src/kernel/install.ts';
import { readKernelIdentity } from '../src/kernel/identity.ts';
import { silentLogger } from '../src/lib/log.ts';
import { LivepatchSysfs } from '../src/kernel/sysfs.ts';
import { FakeKernel } from './helpers/fake-kernel.ts';
import { makePatch } from './helpers/patches.ts';

describe('installPatch', () => {
  let root: string;
  let k: FakeKernel;
  let ops: KernelOps;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'lg-apply-'));
    k = new FakeKernel(join(root, 'k'));
    ops = {
      sysfs: new LivepatchSysfs(k.sys),
      loader: k.loader,
      clock: k.clock,
      procRoot: k.proc,
      log: silentLogger,
      transitionTimeoutMs: 60_000,
    };
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const write = (level: number): { manifest: ReturnType<typeof makePatch>['manifest']; path: string } => {
    const p = makePatch(k, level);
    const path = join(root, p.manifest.module.file);
    writeFileSync(path, p.bytes);
    return { manifest: p.manifest, path };
  };

  it('removes a stale, unpatched module of the same name before loading (no EEXIST)', async () => {
    const { manifest, path } = write(1);
    // Left over from an earlier replace: loaded, refcnt 0, no livepatch dir.
    mkdirSync(join(k.sys, 'module', manifest.name), { recursive: true });
    writeFileSync(join(k.sys, 'module', manifest.name, 'refcnt'), '0\n');
    const kernel = readKernelIdentity({ sysRoot: k.sys, procRoot: k.proc });
    const out = await installPatch(ops, manifest, path, kernel);
    assert.equal(out.alreadyApplied, false);
    assert.deepEqual(
      k.calls.map((c) => c.op),
      ['unload', 'load'],
    );
    assert.equal(k.patchEnabled(manifest.name), true);
  });

  it('is a no-op when the kernel already runs the patch', async () => {
    const { manifest, path } = write(1);
    const kernel = readKernelIdentity({ sysRoot: k.sys, procRoot: k.proc });
    const before = k.calls.length;
    const out = await installPatch(ops, manifest, path, kernel);
    assert.equal(out.alreadyApplied, true);
    assert.equal(k.calls.length, before);
  });

  it('refuses with LIVEPATCH_UNSUPPORTED when the kernel has no livepatch sysfs', async () => {
    const { manifest, path } = write(2);
    const kernel = readKernelIdentity({ sysRoot: k.sys, procRoot: k.proc });
    const bare = { ...ops, sysfs: new LivepatchSysfs(join(root, 'empty-sys')) };
    await assert.rejects(installPatch(bare, manifest, path, kernel), { code: 'LIVEPATCH_UNSUPPORTED' });
  });

  it('uninstallAll disables one patch at a time and leaves no module', async () => {
    const out = await uninstallAll(ops);
    assert.equal(out.disabled.length, 1);
    assert.deepEqual(new LivepatchSysfs(k.sys).listModules(), []);
    assert.deepEqual(new LivepatchSysfs(k.sys).listPatchNames(), []);
  });
});
