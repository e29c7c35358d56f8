// apply.ts with the real patch(1) on a small tree.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LivegraftError } from '@livegraft/protocol';
import { appliesInReverse, applyPatch, checkApplies, describePatchFailure, type PatchRun } from '../src/patch/apply.ts';
import { spawnRunner } from '../src/runner.ts';
import { scratch } from './helpers.ts';

const ORIGINAL = [
  '#include <x.h>',
  '',
  'int f(int x)',
  '{',
  '\tif (x < 0)',
  '\t\treturn 0;',
  '\treturn x;',
  '}',
  '',
].join('\n');
const FIXED = [
  '#include <x.h>',
  '',
  'int f(int x)',
  '{',
  '\tif (x < 0 || x > 100)',
  '\t\treturn 0;',
  '\treturn x;',
  '}',
  '',
].join('\n');

const FIX_PATCH = [
  'From 1234567890123456789012345678901234567890 Mon Sep 17 00:00:00 2001',
  'Subject: [PATCH] lib: bound x',
  '',
  '---',
  'diff --git a/lib/f.c b/lib/f.c',
  '--- a/lib/f.c',
  '+++ b/lib/f.c',
  '@@ -2,7 +2,7 @@',
  ' ',
  ' int f(int x)',
  ' {',
  '-\tif (x < 0)',
  '+\tif (x < 0 || x > 100)',
  ' \t\treturn 0;',
  ' \treturn x;',
  ' }',
  '',
].join('\n');

describe('applying patches with patch(1)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let n = 0;

  before(async () => {
    ({ dir, cleanup } = await scratch('lg-patch-apply-'));
  });
  after(() => cleanup());

  /** A fresh tree holding lib/f.c with the given text, and the patch file. */
  async function setup(fileText: string | undefined, patchText: string): Promise<PatchRun> {
    const tree = path.join(dir, `tree-${++n}`);
    await mkdir(path.join(tree, 'lib'), { recursive: true });
    if (fileText !== undefined) await writeFile(path.join(tree, 'lib', 'f.c'), fileText);
    const patchFile = path.join(dir, `p-${n}.patch`);
    await writeFile(patchFile, patchText);
    return { run: spawnRunner, treeDir: tree, patchFile, shown: 'fixes/bound/upstream.patch', strip: 1 };
  }

  it('a patch that applies: checkApplies changes nothing, applyPatch applies it', async () => {
    const p = await setup(ORIGINAL, FIX_PATCH);
    assert.equal(await appliesInReverse(p), false);
    await checkApplies(p, '6.1.0-50-amd64');
    assert.equal(await readFile(path.join(p.treeDir, 'lib', 'f.c'), 'utf8'), ORIGINAL);
    await applyPatch(p, '6.1.0-50-amd64');
    assert.equal(await readFile(path.join(p.treeDir, 'lib', 'f.c'), 'utf8'), FIXED);
  });

  it('moved lines (an offset) still apply', async () => {
    const p = await setup(`/* header */\n\n${ORIGINAL}`, FIX_PATCH);
    await checkApplies(p, 'k');
    await applyPatch(p, 'k');
    assert.equal(await readFile(path.join(p.treeDir, 'lib', 'f.c'), 'utf8'), `/* header */\n\n${FIXED}`);
  });

  it('an already fixed tree: the patch applies in reverse, and does not apply forward', async () => {
    const p = await setup(FIXED, FIX_PATCH);
    assert.equal(await appliesInReverse(p), true);
    await assert.rejects(checkApplies(p, '6.1.0-60-amd64'), (err: unknown) => {
      assert.ok(err instanceof LivegraftError);
      assert.equal(err.code, 'PATCH_DOES_NOT_APPLY');
      assert.match(err.message, /lib\/f\.c: already applied/);
      return true;
    });
    assert.equal(await readFile(path.join(p.treeDir, 'lib', 'f.c'), 'utf8'), FIXED);
  });

  it('a changed context line: PATCH_DOES_NOT_APPLY names the file and the hunk, and the tree is unchanged', async () => {
    const other = ORIGINAL.replace('\treturn x;', '\treturn x * 2;');
    const p = await setup(other, FIX_PATCH);
    assert.equal(await appliesInReverse(p), false);
    await assert.rejects(checkApplies(p, '6.1.0-50-amd64'), (err: unknown) => {
      assert.ok(err instanceof LivegraftError);
      assert.equal(err.code, 'PATCH_DOES_NOT_APPLY');
      assert.match(err.message, /^fixes\/bound\/upstream\.patch does not apply to the 6\.1\.0-50-amd64 source tree/);
      assert.match(err.message, /lib\/f\.c: hunk #1 does not apply \(expected at line 2\)/);
      assert.deepEqual((err.details as { reasons: string[] }).reasons, [
        'lib/f.c: hunk #1 does not apply (expected at line 2)',
      ]);
      return true;
    });
    assert.equal(await readFile(path.join(p.treeDir, 'lib', 'f.c'), 'utf8'), other);
    await assert.rejects(applyPatch(p, 'k'), { code: 'PATCH_DOES_NOT_APPLY' });
  });

  it('a file the tree does not have', async () => {
    const p = await setup(undefined, FIX_PATCH);
    await assert.rejects(checkApplies(p, '6.1.0-50-amd64'), (err: unknown) => {
      assert.ok(err instanceof LivegraftError);
      assert.equal(err.code, 'PATCH_DOES_NOT_APPLY');
      assert.match(err.message, /b\/lib\/f\.c: not in this kernel tree \(patch line \d+\)/);
      return true;
    });
  });

  it('describePatchFailure reads patch(1) output', () => {
    assert.deepEqual(
      describePatchFailure(
        [
          'checking file net/ipv4/icmp.c',
          'Hunk #2 FAILED at 1043.',
          '1 out of 2 hunks FAILED',
          "can't find file to patch at input line 40",
          'checking file lib/x.c',
          'Reversed (or previously applied) patch detected!  Skipping patch.',
          "can't find file to patch at input line 52",
          'Perhaps you used the wrong -p or --strip option?',
          '|--- a/net/gone.c\t2026-01-01',
          '|+++ b/net/gone.c\t2026-01-01',
        ].join('\n'),
      ),
      [
        'net/ipv4/icmp.c: hunk #2 does not apply (expected at line 1043)',
        'patch line 40: the file it names is not in this kernel tree',
        'lib/x.c: already applied',
        'b/net/gone.c: not in this kernel tree (patch line 52)',
      ],
    );
  });

  it('patch(1) missing is TOOLCHAIN_MISSING', async () => {
    const p = await setup(ORIGINAL, FIX_PATCH);
    const run: PatchRun['run'] = () =>
      Promise.reject(Object.assign(new Error('spawn patch ENOENT'), { code: 'ENOENT' }));
    await assert.rejects(checkApplies({ ...p, run }, 'k'), { code: 'TOOLCHAIN_MISSING' });
  });
});
