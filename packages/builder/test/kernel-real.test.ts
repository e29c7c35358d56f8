// The real thing: the Debian archive, dpkg-deb, gcc-12 and QEMU. Uses the real
// cache (defaultCacheDir) so only the first run downloads and prepares (minutes);
// later runs take seconds.
import assert from 'node:assert/strict';
import { open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import {
  TRIAL_OBJECT,
  SOURCE_MAKE_ARGS,
  buildHelloModule,
  ensureKernelBuild,
  makeEnv,
  pickTestRelease,
  readKallsyms,
  readVermagic,
  withSourceTreeLock,
  type KernelBuild,
} from '../src/kernel/index.ts';
import { spawnRunner } from '../src/runner.ts';

const FIRST_PREPARE_TIMEOUT_MS = 60 * 60_000;

describe('a real Debian 6.1 kernel build in the cache', { timeout: FIRST_PREPARE_TIMEOUT_MS + 10 * 60_000 }, () => {
  let build: KernelBuild;
  const ctx = { run: spawnRunner, log: (line: string) => console.log(`  # ${line}`) };

  before(async () => {
    const release = await pickTestRelease(spawnRunner);
    build = await ensureKernelBuild(release, { log: ctx.log, signal: AbortSignal.timeout(FIRST_PREPARE_TIMEOUT_MS) });
  });

  it('is the build the archive names, with every part prepared, and a second call is instant', async () => {
    assert.match(build.release, /^6\.1\.0-\d+-amd64$/);
    assert.equal(build.upstreamVersion, build.debianVersion.replace(/-[^-]+$/, ''));
    assert.deepEqual(build.parts, ['image', 'headers', 'source', 'kallsyms']);
    const t = Date.now();
    const again = await ensureKernelBuild(build.release);
    assert.ok(Date.now() - t < 2_000, `warm call took ${Date.now() - t} ms`);
    assert.equal(again.sourceDir, build.sourceDir);
  });

  it('headersDir builds a module whose vermagic equals the shipped modules', async () => {
    const work = path.join(build.dir, `test-hello-${process.pid}`);
    const vermagic = await buildHelloModule(ctx, build.headersDir, work);
    const shipped = await readVermagic(path.join(build.modulesDir, 'kernel', 'fs', 'nfs', 'nfs.ko'));
    assert.equal(vermagic, shipped);
    assert.match(vermagic, new RegExp(`^${build.release.replace(/\./g, '\\.')} SMP preempt mod_unload modversions`));
  });

  it('sourceDir compiles one translation unit as Debian did', async () => {
    const text = await readFile(path.join(build.sourceDir, 'include', 'generated', 'utsrelease.h'), 'utf8');
    assert.ok(text.includes(`"${build.release}"`), text);
    await withSourceTreeLock(build, async () => {
      const obj = path.join(build.sourceDir, TRIAL_OBJECT);
      await rm(obj, { force: true });
      const r = await spawnRunner('make', ['-C', build.sourceDir, ...SOURCE_MAKE_ARGS, TRIAL_OBJECT], {
        env: makeEnv(),
        timeoutMs: 10 * 60_000,
        maxOutputBytes: 1 << 20,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await stat(obj)).size > 1000);
      // The build does not touch package.h or compile.h: they already say what Debian's say.
      for (const h of ['package.h', 'compile.h'])
        assert.equal(
          await readFile(path.join(build.sourceDir, 'include', 'generated', h), 'utf8'),
          await readFile(path.join(build.headersDir, 'include', 'generated', h), 'utf8'),
          h,
        );
    });
  });

  it('vmlinux is the ELF inside vmlinuz and kallsyms locates functions in it', async () => {
    const head = Buffer.alloc(20);
    const fh = await open(build.vmlinux, 'r');
    await fh.read(head, 0, 20, 0);
    await fh.close();
    assert.deepEqual([...head.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
    assert.equal(head.readUInt16LE(18), 62);
    const syms = await readKallsyms(build);
    assert.ok(syms.length > 50_000, `${syms.length} symbols`);
    const fn = syms.find((s) => s.name === 'keyctl_pkey_params_get_2');
    assert.ok(fn !== undefined);
    assert.equal(fn.type, 't');
    assert.ok(fn.address >= 0xffffffff81000000n && fn.address < 0xffffffff82000000n, fn.address.toString(16));
  });
});
