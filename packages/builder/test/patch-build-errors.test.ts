// buildPatch with fixes made of patches, up to each error, without a real kernel:
// ensureKernel returns a fake KernelBuild whose source tree is a tiny directory
// with a Makefile that compiles one file with gcc.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import { buildPatch, type BuildOptions } from '../src/build.ts';
import type { KernelBuild, KernelPart } from '../src/kernel/index.ts';
import { spawnRunner, type ProcessRunner } from '../src/runner.ts';
import { fakeHeaders, listDir, scratch, writeFix } from './helpers.ts';

const SOURCE = [
  'int f(int x)',
  '{',
  '\tif (x < 0)',
  '\t\treturn 0;',
  '\treturn x;',
  '}',
  '',
  'int g(int y)',
  '{',
  '\treturn f(y) + 1;',
  '}',
  '',
].join('\n');

const PATCH = [
  'From 1234567890123456789012345678901234567890 Mon Sep 17 00:00:00 2001',
  'Subject: [PATCH] lib: bound x',
  '',
  '---',
  'diff --git a/lib/f.c b/lib/f.c',
  '--- a/lib/f.c',
  '+++ b/lib/f.c',
  '@@ -1,6 +1,6 @@',
  ' int f(int x)',
  ' {',
  '-\tif (x < 0)',
  '+\tif (x < 0 || x > 100)',
  ' \t\treturn 0;',
  ' \treturn x;',
  ' }',
  '',
].join('\n');

const MAKEFILE = [
  '%.o: %.c',
  '\t$(CC) $(KCFLAGS) -O2 -c $< -o $@',
  "\techo 'cmd_$@ := $(CC) -c -o $@ $<' > $(dir $@).$(notdir $@).cmd",
  '',
].join('\n');

const spec = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'CVE-2099-0001',
  title: 'bound x',
  cves: ['CVE-2099-0001'],
  patches: ['upstream.patch'],
  ...over,
});

describe('buildPatch with patch fixes: errors, nothing written', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  let out: string;
  let buildRoot: string;
  let kernel: KernelBuild;
  let n = 0;
  const ranMake: string[][] = [];
  const run: ProcessRunner = (cmd, args, opts) => {
    if (cmd === 'make') ranMake.push([...args]);
    return spawnRunner(cmd, args, opts);
  };
  const ensureKernel = (release: string, parts: KernelPart[]): Promise<KernelBuild> => {
    assert.equal(release, '6.1.0-50-amd64');
    assert.ok(parts.includes('source'));
    return Promise.resolve(kernel);
  };

  before(async () => {
    tmp = await scratch('lg-patch-build-');
    out = path.join(tmp.dir, 'out');
    buildRoot = path.join(tmp.dir, 'buildroot');
    await mkdir(out);
    await mkdir(buildRoot);
    const dir = path.join(tmp.dir, 'kernel');
    const sourceDir = path.join(dir, 'source');
    await mkdir(path.join(sourceDir, 'lib'), { recursive: true });
    await writeFile(path.join(sourceDir, 'Makefile'), MAKEFILE);
    await writeFile(path.join(sourceDir, 'lib', 'f.c'), SOURCE);
    kernel = {
      release: '6.1.0-50-amd64',
      debianVersion: '6.1.176-1',
      upstreamVersion: '6.1.176',
      dir,
      headersDir: await fakeHeaders(path.join(dir, 'headers')),
      sourceDir,
      configFile: path.join(dir, 'config'),
      modulesDir: path.join(dir, 'modules'),
      vmlinuz: path.join(dir, 'vmlinuz'),
      vmlinux: path.join(dir, 'vmlinux'),
      kallsyms: path.join(dir, 'kallsyms'),
      parts: ['image', 'headers', 'source', 'kallsyms'],
      stamp: { release: '6.1.0-50-amd64', debianVersion: '6.1.176-1', upstreamVersion: '6.1.176', parts: {} },
    };
  });
  after(() => tmp.cleanup());

  const treeHash = async (): Promise<string> =>
    createHash('sha256')
      .update(await readFile(path.join(kernel.sourceDir, 'lib', 'f.c')))
      .digest('hex');

  async function fix(s: Record<string, unknown>, files: Record<string, string>): Promise<string> {
    return writeFix(path.join(tmp.dir, `fix-${++n}`), s, files);
  }

  /** Runs a build expected to fail with `code`; checks nothing was written and the tree is as before. */
  async function failsWith(code: string, options: Partial<BuildOptions>): Promise<string> {
    const before = await treeHash();
    let message = '';
    await assert.rejects(
      buildPatch({
        kernel: '6.1.0-50-amd64',
        level: 1,
        fixDirs: [],
        outDir: out,
        tmpRoot: buildRoot,
        cacheDir: path.join(tmp.dir, 'cache'),
        run,
        ensureKernel,
        ...options,
      }),
      (err: unknown) => {
        assert.ok(isLivegraftError(err), String(err));
        assert.equal(err.code, code, err.message);
        message = err.message;
        return true;
      },
    );
    assert.deepEqual(await listDir(out), [], 'nothing is written to --out');
    assert.deepEqual(await listDir(buildRoot), [], 'no build directory is left behind');
    assert.equal(await treeHash(), before, 'the source tree is as before');
    assert.deepEqual(
      (await listDir(kernel.sourceDir)).filter((f) => f.startsWith('.livegraft')),
      [],
      'no edit journal left',
    );
    return message;
  }

  it('a fix.json with both patches and functions is FIX_INVALID', async () => {
    const d = await fix(spec({ functions: [{ name: 'f', object: 'vmlinux', replacement: 'lg2_f' }] }), {
      'upstream.patch': PATCH,
      'fix.c': 'int lg2_f(int x) { return 0; }\n',
    });
    const m = await failsWith('FIX_INVALID', { fixDirs: [d] });
    assert.match(m, /either "patches" or hand-written/);
  });

  it('a missing patch file is FIX_SOURCE_MISSING', async () => {
    const d = await fix(spec({ patches: ['upstream.patch', 'second.patch'] }), { 'upstream.patch': PATCH });
    const m = await failsWith('FIX_SOURCE_MISSING', { fixDirs: [d] });
    assert.match(m, /second\.patch does not exist/);
  });

  it('a headers directory instead of a release, with a patch fix, is USAGE', async () => {
    const d = await fix(spec(), { 'upstream.patch': PATCH });
    const m = await failsWith('USAGE', { fixDirs: [d], kernel: kernel.headersDir });
    assert.match(m, /CVE-2099-0001.*need a kernel release such as 6\.1\.0-50-amd64/s);
  });

  it('a malformed patch is PATCH_INVALID', async () => {
    const d = await fix(spec(), { 'upstream.patch': PATCH.replace(' \treturn x;\n }\n', '') });
    const m = await failsWith('PATCH_INVALID', { fixDirs: [d] });
    assert.match(m, /upstream\.patch: the last hunk is cut short/);
  });

  it('a patch whose context differs is PATCH_DOES_NOT_APPLY naming the file and hunk', async () => {
    const d = await fix(spec(), { 'upstream.patch': PATCH.replace(' \treturn x;', ' \treturn x * 2;') });
    const m = await failsWith('PATCH_DOES_NOT_APPLY', { fixDirs: [d] });
    assert.match(m, /upstream\.patch does not apply to the 6\.1\.0-50-amd64 source tree/);
    assert.match(m, /lib\/f\.c: hunk #1 does not apply/);
  });

  it('a patch for a file the tree does not have is PATCH_DOES_NOT_APPLY', async () => {
    const d = await fix(spec(), { 'upstream.patch': PATCH.replaceAll('lib/f.c', 'lib/gone.c') });
    const m = await failsWith('PATCH_DOES_NOT_APPLY', { fixDirs: [d] });
    assert.match(m, /lib\/gone\.c/);
  });

  it('changes to Makefiles, assembly or struct layouts are NOT_LIVE_PATCHABLE before anything compiles', async () => {
    const extra = [
      'diff --git a/lib/Makefile b/lib/Makefile',
      '--- a/lib/Makefile',
      '+++ b/lib/Makefile',
      '@@ -1 +1,2 @@',
      ' obj-y += f.o',
      '+obj-y += g.o',
      'diff --git a/include/f.h b/include/f.h',
      '--- a/include/f.h',
      '+++ b/include/f.h',
      '@@ -1,2 +1,3 @@',
      ' struct s {',
      '+\tint added;',
      ' };',
      '',
    ].join('\n');
    const d = await fix(spec(), { 'upstream.patch': PATCH + extra });
    const before = ranMake.length;
    const m = await failsWith('NOT_LIVE_PATCHABLE', { fixDirs: [d] });
    assert.match(m, /lib\/Makefile: .*changes the build/);
    assert.match(m, /include\/f\.h: .*int added;/);
    assert.equal(ranMake.length, before, 'make did not run');
  });

  it('a patched unit that does not compile is BUILD_FAILED, and the tree is restored', async () => {
    const d = await fix(spec(), {
      'upstream.patch': PATCH.replace('+\tif (x < 0 || x > 100)', '+\tif (x < 0 || x > 100 ||)'),
    });
    const m = await failsWith('BUILD_FAILED', { fixDirs: [d] });
    assert.match(m, /lib\/f\.c/);
    assert.ok(ranMake.some((a) => a.includes('lib/f.o')));
  });

  it('a fix already in the kernel (by fixedIn, or because it applies in reverse) leaves nothing to build', async () => {
    const byVersion = await fix(spec({ fixedIn: { '6.1': '6.1.170' } }), { 'upstream.patch': PATCH });
    const m = await failsWith('NOTHING_TO_BUILD', { fixDirs: [byVersion] });
    assert.match(m, /CVE-2099-0001: already fixed in 6\.1\.176 \(the fix entered 6\.1 in 6\.1\.170\)/);

    const reversed = PATCH.replace('-\tif (x < 0)', '-\tif (x < 0 && x > 100)').replace(
      '+\tif (x < 0 || x > 100)',
      '+\tif (x < 0)',
    );
    const inTree = await fix(spec({ id: 'CVE-2099-0002', cves: ['CVE-2099-0002'] }), { 'upstream.patch': reversed });
    const m2 = await failsWith('NOTHING_TO_BUILD', { fixDirs: [inTree] });
    assert.match(m2, /CVE-2099-0002: already fixed in 6\.1\.176 \(the patch is in this kernel's source\)/);
  });
});
