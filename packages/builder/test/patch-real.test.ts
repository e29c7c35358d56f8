// The patch factory on a real Debian 6.1 kernel build from the cache (prepared
// by ensureKernelBuild: minutes the first time, seconds afterwards): an
// upstream fix from the catalogue becomes a livepatch module with klp
// relocations; an already fixed one is skipped; one that does not apply
// leaves the tree untouched. If the catalogue fix does not apply to the build
// the archive offers, this fails: it does not skip.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError, modinfoValue, parseModinfo } from '@livegraft/protocol';
import { buildPatch } from '../src/build.ts';
import { ensureKernelBuild, pickTestRelease, withSourceTreeLock, type KernelBuild } from '../src/kernel/index.ts';
import { describeKlp } from '../src/klp/postlink.ts';
import { spawnRunner } from '../src/runner.ts';
import { listDir, repoRoot, scratch } from './helpers.ts';

const FIRST_PREPARE_TIMEOUT_MS = 60 * 60_000;
/** Two compiles of one unit, a module link and the symbol checks; the tree lock may also be busy. */
const BUILD_TIMEOUT_MS = 20 * 60_000;
const FIX = path.join(repoRoot, 'catalogue', 'CVE-2026-63824');
const UNIT = 'security/keys/keyctl_pkey.c';

describe(
  'building catalogue/CVE-2026-63824 from its upstream patch',
  { timeout: FIRST_PREPARE_TIMEOUT_MS + 3 * BUILD_TIMEOUT_MS },
  () => {
    let build: KernelBuild;
    let tmp: Awaited<ReturnType<typeof scratch>>;
    const log = (line: string): void => console.log(`  # ${line}`);

    before(async () => {
      const release = await pickTestRelease(spawnRunner);
      build = await ensureKernelBuild(release, { log, signal: AbortSignal.timeout(FIRST_PREPARE_TIMEOUT_MS) });
      tmp = await scratch('lg-patch-real-');
    });
    after(() => tmp?.cleanup());

    /** sha256 of the unit in the prepared tree, read while no build has it patched. */
    const unitHash = (): Promise<string> =>
      withSourceTreeLock(build, async () =>
        createHash('sha256')
          .update(await readFile(path.join(build.sourceDir, UNIT)))
          .digest('hex'),
      );

    it('builds a livepatch module with klp relocations; a fix already in this kernel is skipped with the reason', async () => {
      // A second fix whose fixedIn says this very build already has it.
      const fixed = path.join(tmp.dir, 'already-fixed');
      await cp(path.join(repoRoot, 'catalogue', 'CVE-2026-68386'), fixed, { recursive: true });
      const spec = JSON.parse(await readFile(path.join(fixed, 'fix.json'), 'utf8')) as Record<string, unknown>;
      spec.id = 'LG-TEST-ALREADY-FIXED';
      spec.fixedIn = { '6.1': build.upstreamVersion };
      await writeFile(path.join(fixed, 'fix.json'), JSON.stringify(spec, null, 2));

      const out = path.join(tmp.dir, 'out');
      await mkdir(out);
      const r = await buildPatch({
        kernel: build.release,
        level: 3,
        fixDirs: [FIX, fixed],
        outDir: out,
        log,
        signal: AbortSignal.timeout(BUILD_TIMEOUT_MS),
      });
      const { manifest } = r;
      assert.equal(manifest.kernel.release, build.release);
      assert.deepEqual(await listDir(out), [path.basename(r.manifestPath), path.basename(r.modulePath)].sort());

      const fix = manifest.fixes.find((f) => f.id === 'CVE-2026-63824');
      assert.ok(fix, JSON.stringify(manifest.fixes));
      assert.equal(fix.kind, 'patch');
      assert.deepEqual(fix.commits, [
        { id: 'cb481e59ea6cae3b7796ac1d7a22b6b24c3f3c0b', subject: 'KEYS: fix overflow in keyctl_pkey_params_get_2()' },
      ]);
      assert.ok(
        fix.functions.some((f) => f.name === 'keyctl_pkey_params_get_2' && f.object === 'vmlinux'),
        JSON.stringify(fix.functions),
      );
      assert.deepEqual(manifest.cves, ['CVE-2026-63824']);
      assert.equal(manifest.fixes.length, 1);
      assert.deepEqual(r.skipped, [
        {
          id: 'LG-TEST-ALREADY-FIXED',
          cves: spec.cves,
          reason: `already fixed in ${build.upstreamVersion} (the fix entered 6.1 in ${build.upstreamVersion})`,
        },
      ]);
      assert.deepEqual(manifest.skipped, r.skipped);
      assert.ok(r.klpRelocations > 0);
      assert.equal(r.reproducibility?.mismatches.length, 0, JSON.stringify(r.reproducibility?.mismatches));

      const ko = await readFile(r.modulePath);
      const klp = describeKlp(ko);
      const sym = klp.symbols.find((s) => s.name === '.klp.sym.vmlinux.keyctl_pkey_params_get,0');
      assert.ok(sym, klp.symbols.map((s) => s.name).join('\n'));
      assert.ok(
        klp.sections.some(
          (s) => s.name.startsWith('.klp.rela.vmlinux.') && s.relocations.some((x) => x.symbol === sym.name),
        ),
        klp.sections.map((s) => s.name).join('\n'),
      );
      const info = parseModinfo(ko);
      assert.equal(modinfoValue(info, 'livepatch'), 'Y');
      assert.equal(modinfoValue(info, 'livegraft_level'), '3');
      assert.equal(modinfoValue(info, 'livegraft_fixes'), 'CVE-2026-63824');
    });

    it('a patch whose context does not match is PATCH_DOES_NOT_APPLY with file and hunk; the tree is left pristine', async () => {
      const bad = path.join(tmp.dir, 'not-applying');
      await cp(FIX, bad, { recursive: true });
      const text = await readFile(path.join(bad, 'upstream.patch'), 'utf8');
      const edited = text.replace('\n \tdefault:\n', '\n \tdefault: /* not in this kernel */\n');
      assert.notEqual(edited, text, 'the context line to edit is in the patch');
      await writeFile(path.join(bad, 'upstream.patch'), edited);
      const out = path.join(tmp.dir, 'out-bad');
      await mkdir(out);

      const before = await unitHash();
      await assert.rejects(
        buildPatch({
          kernel: build.release,
          level: 1,
          fixDirs: [bad],
          outDir: out,
          log,
          signal: AbortSignal.timeout(BUILD_TIMEOUT_MS),
        }),
        (err: unknown) => {
          assert.ok(isLivegraftError(err), String(err));
          assert.equal(err.code, 'PATCH_DOES_NOT_APPLY', err.message);
          assert.match(err.message, new RegExp(`does not apply to the ${build.release} source tree`));
          assert.match(err.message, /security\/keys\/keyctl_pkey\.c: hunk #1 does not apply \(expected at line \d+\)/);
          return true;
        },
      );
      assert.equal(await unitHash(), before, `${UNIT} is unchanged`);
      assert.deepEqual(await listDir(out), []);
    });
  },
);
