// User-space levels built from real Debian source packages (openssl
// 3.0.20-1~deb12u2, glibc 2.36-9+deb12u7) and the catalogue's fixes, then
// applied inside a process running the extracted vulnerable library: the
// trigger shows the flaw, the fix, and the flaw again after the revert.
// Source packages, binary packages and the configured trees stay in the user
// cache; cold, this downloads ~35 MB and configures glibc (minutes).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError, userspaceManifestValidator, type UserspaceManifest } from '@livegraft/protocol';
import { bytesAtAddress, readElf, sectionByName } from '../src/elf/read.ts';
import { defaultCacheDir } from '../src/kernel/paths.ts';
import { spawnRunner } from '../src/runner.ts';
import { buildUserspaceLevel, readUserspaceFix, type UserspaceBuildResult } from '../src/userspace/build.ts';
import { binaryTree } from '../src/userspace/debian-source.ts';
import { repoRoot, scratch } from './helpers.ts';

const COLD_TIMEOUT_MS = 60 * 60_000;
const RUN_TIMEOUT_MS = 5 * 60_000;
const CATALOGUE = path.join(repoRoot, 'catalogue', 'userspace');
const HARNESS = path.join(repoRoot, 'packages', 'builder', 'test', 'fixtures', 'userspace', 'apply-inproc.c');
const log = (line: string): void => console.log(`  # ${line}`);
const ctx = { cacheDir: defaultCacheDir(), run: spawnRunner, log };

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const r = await spawnRunner(cmd, args, { env, timeoutMs: RUN_TIMEOUT_MS, maxOutputBytes: 1024 * 1024 });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Writes the harness plan and the raw code block for a built level. */
async function plan(dir: string, r: UserspaceBuildResult): Promise<string> {
  const m = r.manifest;
  const obj = readElf(await readFile(r.objectPath));
  const text = sectionByName(obj, '.text');
  assert.ok(text !== undefined);
  assert.equal(text.size, m.code.textSize);
  const lib = await readFile(path.join(await binaryTree(ctx, m.library.package, m.library.version), m.library.path));
  const libElf = readElf(lib);
  const codeFile = path.join(dir, 'code.bin');
  await writeFile(codeFile, text.data);
  const lines = [`lib ${m.library.soname}`, `code ${codeFile}`];
  for (const f of m.functions) {
    const orig = bytesAtAddress(libElf, BigInt(f.offset), f.size);
    assert.equal(createHash('sha256').update(orig).digest('hex'), f.sha256, `${f.symbol}: original-bytes hash`);
    lines.push(`func ${f.offset} ${f.size} ${f.codeOffset} ${orig.subarray(0, 8).toString('hex')}`);
  }
  for (const x of m.relocs) lines.push(`reloc ${x.offset} ${x.kind} ${x.base} ${x.target} ${x.addend}`);
  const file = path.join(dir, 'plan.txt');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** Compiles the harness with a catalogue trigger; returns the program. */
async function harness(dir: string, fix: string, libs: string[]): Promise<string> {
  const trig = path.join(dir, 'trigger.o');
  await sh('gcc', ['-O2', '-c', '-Dmain=trigger_main', '-o', trig, path.join(CATALOGUE, fix, 'trigger.c')]);
  const exe = path.join(dir, 'apply-inproc');
  await sh('gcc', ['-O2', '-o', exe, HARNESS, trig, ...libs]);
  return exe;
}

describe('user-space levels from Debian source packages', { timeout: COLD_TIMEOUT_MS * 2 }, () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch('lg-userspace-');
  });
  after(() => tmp?.cleanup());

  describe('openssl 3.0.20-1~deb12u2, CVE-2026-42767', () => {
    let r: UserspaceBuildResult;
    let m: UserspaceManifest;
    before(async () => {
      const out = path.join(tmp.dir, 'openssl');
      await mkdir(out, { recursive: true });
      const t0 = performance.now();
      r = await buildUserspaceLevel({
        ...ctx,
        fixes: [await readUserspaceFix(path.join(CATALOGUE, 'CVE-2026-42767'))],
        level: 1,
        outDir: out,
      });
      log(`openssl level built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(r.timings)}`);
      m = r.manifest;
    });

    it('rebuilds crmf_lib.c to the shipped bytes and carries one changed function', () => {
      userspaceManifestValidator.parse(m);
      assert.equal(m.library.soname, 'libcrypto.so.3');
      assert.match(m.library.buildId, /^[0-9a-f]{40}$/);
      const match = r.matches['crypto/crmf/crmf_lib.c'];
      assert.ok(match !== undefined && match.compared > 20, JSON.stringify(match));
      assert.equal(match.matched, match.compared, JSON.stringify(match.mismatched));
      assert.deepEqual(
        m.functions.map((f) => f.symbol),
        ['OSSL_CRMF_ENCRYPTEDVALUE_get1_encCert'],
      );
      assert.deepEqual(m.cves, ['CVE-2026-42767']);
      assert.ok(m.relocs.some((x) => x.symbol === 'ASN1_TYPE_get_octetstring'));
    });

    it('applied in a process of the extracted 3.0.20 library, it turns the flaw into the fix and back', async () => {
      const dir = path.join(tmp.dir, 'openssl-run');
      await mkdir(dir, { recursive: true });
      const exe = await harness(dir, 'CVE-2026-42767', ['-lcrypto']);
      const libDir = path.dirname(path.join(await binaryTree(ctx, 'libssl3', m.library.version), m.library.path));
      const out = await sh(exe, [], { ...process.env, LD_LIBRARY_PATH: libDir, LG_PLAN: await plan(dir, r) });
      assert.deepEqual(out.trim().split('\n'), ['VULNERABLE', 'APPLIED', 'FIXED', 'REVERTED', 'VULNERABLE']);
    });

    it('a patch that only moves code down (__LINE__ constants) changes nothing', async () => {
      const fix = path.join(tmp.dir, 'line-only');
      await cp(path.join(CATALOGUE, 'CVE-2026-42767'), fix, { recursive: true });
      // The three context lines are the file's first three.
      const tree = path.join(ctx.cacheDir, 'debian-src', 'trees', 'openssl_3.0.20-1~deb12u2', 'src');
      const head = (await readFile(path.join(tree, 'crypto/crmf/crmf_lib.c'), 'utf8')).split('\n').slice(0, 3);
      await writeFile(
        path.join(fix, 'upstream.patch'),
        `--- a/crypto/crmf/crmf_lib.c\n+++ b/crypto/crmf/crmf_lib.c\n@@ -1,3 +1,5 @@\n+/* two more lines */\n+\n${head.map((l) => ` ${l}`).join('\n')}\n`,
      );
      const out = path.join(tmp.dir, 'line-only-out');
      await mkdir(out, { recursive: true });
      await assert.rejects(
        buildUserspaceLevel({ ...ctx, fixes: [await readUserspaceFix(fix)], level: 1, outDir: out }),
        (err: unknown) => isLivegraftError(err) && err.code === 'USERSPACE_NO_CHANGE',
      );
    });

    it('refuses a struct layout change in a header before building anything', async () => {
      const fix = path.join(tmp.dir, 'struct-change');
      await cp(path.join(CATALOGUE, 'CVE-2026-42767'), fix, { recursive: true });
      await writeFile(
        path.join(fix, 'upstream.patch'),
        [
          '--- a/crypto/crmf/crmf_local.h',
          '+++ b/crypto/crmf/crmf_local.h',
          '@@ -45,3 +45,4 @@',
          ' struct ossl_crmf_encryptedvalue_st {',
          ' X509_ALGOR *intendedAlg; /* 0 */',
          '+    int checked;',
          ' X509_ALGOR *symmAlg; /* 1 */',
          '',
        ].join('\n'),
      );
      const out = path.join(tmp.dir, 'struct-out');
      await mkdir(out, { recursive: true });
      await assert.rejects(
        buildUserspaceLevel({ ...ctx, fixes: [await readUserspaceFix(fix)], level: 1, outDir: out }),
        (err: unknown) =>
          isLivegraftError(err) && err.code === 'USERSPACE_PATCH_REFUSED' && /struct layout/.test(err.message),
      );
    });

    it('refuses a change to a variable', async () => {
      const fix = path.join(tmp.dir, 'data-change');
      await cp(path.join(CATALOGUE, 'CVE-2026-42767'), fix, { recursive: true });
      const tree = path.join(ctx.cacheDir, 'debian-src', 'trees', 'openssl_3.0.20-1~deb12u2', 'src');
      const src = (await readFile(path.join(tree, 'crypto/err/err.c'), 'utf8')).split('\n');
      const at = src.findIndex((l) => /^static int set_err_thread_local;/.test(l));
      assert.ok(at >= 0, 'err.c has set_err_thread_local');
      await writeFile(
        path.join(fix, 'upstream.patch'),
        `--- a/crypto/err/err.c\n+++ b/crypto/err/err.c\n@@ -${at + 1},1 +${at + 1},1 @@\n-static int set_err_thread_local;\n+static int set_err_thread_local = 1;\n`,
      );
      const out = path.join(tmp.dir, 'data-out');
      await mkdir(out, { recursive: true });
      await assert.rejects(
        buildUserspaceLevel({ ...ctx, fixes: [await readUserspaceFix(fix)], level: 1, outDir: out }),
        (err: unknown) =>
          isLivegraftError(err) && err.code === 'USERSPACE_PATCH_REFUSED' && /set_err_thread_local/.test(err.message),
      );
    });
  });

  describe('glibc 2.36-9+deb12u7, CVE-2025-0395 and CVE-2026-0915 in one level', () => {
    let r: UserspaceBuildResult;
    let root: string;
    before(async () => {
      const out = path.join(tmp.dir, 'glibc');
      await mkdir(out, { recursive: true });
      const t0 = performance.now();
      r = await buildUserspaceLevel({
        ...ctx,
        fixes: await Promise.all(
          ['CVE-2025-0395', 'CVE-2026-0915'].map((f) => readUserspaceFix(path.join(CATALOGUE, f))),
        ),
        level: 1,
        outDir: out,
      });
      log(`glibc level built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(r.timings)}`);
      root = await binaryTree(ctx, 'libc6', '2.36-9+deb12u7');
    });

    it('finds the local __assert_fail_base through libc6-dbg and patches each alias once', () => {
      const m = r.manifest;
      assert.equal(m.library.soname, 'libc.so.6');
      assert.deepEqual(
        m.functions.map((f) => [f.symbol, f.local]),
        [
          ['__assert_fail_base', true],
          ['_nss_dns_getnetbyaddr_r', false],
        ],
      );
      for (const u of ['assert/assert.c', 'resolv/nss_dns/dns-network.c']) {
        const match = r.matches[u];
        assert.ok(match !== undefined && match.compared > 0 && match.matched === match.compared, JSON.stringify(match));
      }
      assert.deepEqual(m.cves, ['CVE-2025-0395', 'CVE-2026-0915']);
    });

    for (const [fix, libs] of [
      ['CVE-2025-0395', []],
      ['CVE-2026-0915', ['-lresolv']],
    ] as const) {
      it(`${fix}: applied in a process run by the extracted libc's own loader, flaw → fix → flaw`, async () => {
        const dir = path.join(tmp.dir, `glibc-${fix}`);
        await mkdir(dir, { recursive: true });
        const exe = await harness(dir, fix, [...libs]);
        const out = await sh(
          path.join(root, 'lib64', 'ld-linux-x86-64.so.2'),
          ['--library-path', path.join(root, 'lib', 'x86_64-linux-gnu'), exe],
          { ...process.env, LG_PLAN: await plan(dir, r) },
        );
        assert.deepEqual(out.trim().split('\n'), ['VULNERABLE', 'APPLIED', 'FIXED', 'REVERTED', 'VULNERABLE']);
      });
    }
  });
});
