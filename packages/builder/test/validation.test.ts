import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError, LivegraftError } from '@livegraft/protocol';
import { buildPatch, type BuildOptions, type ProcessRunner } from '../src/index.ts';
import { copyExample, fakeHeaders, listDir, scratch, writeFix } from './helpers.ts';

/** Validation must finish before anything is compiled. */
const makeMustNotRun: ProcessRunner = () => {
  throw new Error('make was run although the input was invalid');
};

const goodSpec = {
  id: 'LG-T-1',
  title: 'a fix',
  cves: [],
  functions: [{ name: 'cmdline_proc_show', object: 'vmlinux', replacement: 'lgt_cmdline_show' }],
};

describe('buildPatch input validation', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  let headersDir: string;
  let out: string;
  let buildRoot: string;
  before(async () => {
    tmp = await scratch();
    headersDir = await fakeHeaders(path.join(tmp.dir, 'headers'));
    out = path.join(tmp.dir, 'out');
    buildRoot = path.join(tmp.dir, 'buildroot');
    await mkdir(out);
    await mkdir(buildRoot);
  });
  after(async () => {
    await tmp.cleanup();
  });

  /** Runs a build expected to fail with `code`; checks nothing was written. Returns the error message. */
  async function failsWith(code: string, options: Partial<BuildOptions>): Promise<string> {
    let message = '';
    await assert.rejects(
      buildPatch({
        kernel: headersDir,
        level: 1,
        fixDirs: [],
        outDir: out,
        tmpRoot: buildRoot,
        run: makeMustNotRun,
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
    return message;
  }

  it('rejects an unknown field in fix.json, naming the file and the field', async () => {
    const dir = await writeFix(path.join(tmp.dir, 'unknown-field'), { ...goodSpec, severity: 'high' }, { 'fix.c': '' });
    const msg = await failsWith('FIX_INVALID', { fixDirs: [dir] });
    assert.match(msg, /unknown-field\/fix\.json/);
    assert.match(msg, /severity/);
  });

  it('rejects a bad nested field, naming its path', async () => {
    const spec = { ...goodSpec, functions: [{ name: 'f', object: 'vmlinux', replacement: 'r', sympos: -1 }] };
    const dir = await writeFix(path.join(tmp.dir, 'bad-sympos'), spec, { 'fix.c': '' });
    const msg = await failsWith('FIX_INVALID', { fixDirs: [dir] });
    assert.match(msg, /\/functions\/0\/sympos/);
  });

  it('rejects fix.json that is not JSON, and a directory without fix.json', async () => {
    const dir = path.join(tmp.dir, 'not-json');
    await writeFix(dir, {}, { 'fix.c': '' });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(dir, 'fix.json'), '{ "id": ');
    assert.match(await failsWith('FIX_INVALID', { fixDirs: [dir] }), /not-json\/fix\.json: not valid JSON/);
    const empty = path.join(tmp.dir, 'empty');
    await mkdir(empty);
    assert.match(await failsWith('FIX_INVALID', { fixDirs: [empty] }), /empty\/fix\.json: not found/);
  });

  it('rejects a fix naming the same function twice', async () => {
    const spec = {
      ...goodSpec,
      functions: [goodSpec.functions[0], { name: 'cmdline_proc_show', object: 'vmlinux', replacement: 'other' }],
    };
    const dir = await writeFix(path.join(tmp.dir, 'dup-in-fix'), spec, { 'fix.c': '' });
    assert.match(await failsWith('FIX_DUPLICATE_FUNCTION', { fixDirs: [dir] }), /cmdline_proc_show/);
  });

  it('rejects the same static function twice at the same sympos', async () => {
    const spec = {
      ...goodSpec,
      functions: [
        { name: 'dup_static', object: 'vmlinux', replacement: 'a', sympos: 1 },
        { name: 'dup_static', object: 'vmlinux', replacement: 'b', sympos: 1 },
      ],
    };
    const dir = await writeFix(path.join(tmp.dir, 'dup-sympos'), spec, { 'fix.c': '' });
    await failsWith('FIX_DUPLICATE_FUNCTION', { fixDirs: [dir] });
  });

  it('rejects two fixes replacing the same object and function (module names compared as the kernel does)', async () => {
    const a = await writeFix(
      path.join(tmp.dir, 'dup-a'),
      { ...goodSpec, id: 'A', functions: [{ name: 'f', object: 'my-mod', replacement: 'ra' }] },
      { 'fix.c': '' },
    );
    const b = await writeFix(
      path.join(tmp.dir, 'dup-b'),
      { ...goodSpec, id: 'B', functions: [{ name: 'f', object: 'my_mod', replacement: 'rb' }] },
      { 'fix.c': '' },
    );
    const msg = await failsWith('FIX_DUPLICATE_FUNCTION', { fixDirs: [a, b] });
    assert.match(msg, /A and B both replace f/);
  });

  it('rejects two fixes with the same id', async () => {
    const a = await writeFix(path.join(tmp.dir, 'id-a'), goodSpec, { 'fix.c': '' });
    const b = await writeFix(
      path.join(tmp.dir, 'id-b'),
      { ...goodSpec, functions: [{ name: 'g', object: 'vmlinux', replacement: 'rg' }] },
      { 'fix.c': '' },
    );
    assert.match(await failsWith('FIX_DUPLICATE_ID', { fixDirs: [a, b] }), /LG-T-1/);
  });

  it('rejects a missing source file, naming it', async () => {
    const dir = await writeFix(
      path.join(tmp.dir, 'missing-src'),
      { ...goodSpec, sources: ['one.c', 'two.c'] },
      {
        'one.c': '',
      },
    );
    assert.match(await failsWith('FIX_SOURCE_MISSING', { fixDirs: [dir] }), /missing-src\/two\.c/);
    const dflt = await writeFix(path.join(tmp.dir, 'missing-default'), goodSpec, {});
    assert.match(await failsWith('FIX_SOURCE_MISSING', { fixDirs: [dflt] }), /fix\.c is expected/);
  });

  it('hands valid fixes to make with the generated tree in place (injected runner)', async () => {
    const spec = {
      ...goodSpec,
      functions: [
        { name: 'dup_static', object: 'vmlinux', replacement: 'a', sympos: 1 },
        { name: 'dup_static', object: 'vmlinux', replacement: 'b', sympos: 2 },
      ],
    };
    const dir = await writeFix(path.join(tmp.dir, 'ok-sympos'), spec, { 'fix.c': '', 'local.h': '' });
    const seen: { args: readonly string[]; files: string[] }[] = [];
    const run: ProcessRunner = async (command, args, options) => {
      assert.equal(command, 'make');
      assert.ok(options.timeoutMs > 0 && options.maxOutputBytes > 0);
      const m = args.find((a) => a.startsWith('M='))?.slice(2) ?? '';
      const { readdir } = await import('node:fs/promises');
      const files = (await readdir(m, { recursive: true })).map(String).sort();
      seen.push({ args, files });
      return {
        code: 2,
        signal: null,
        stdout: '',
        stderr: `${m}/fix0_LG-T-1/fix.c:1:1: error: injected\nmake: *** Error 2\n`.replace('LG-T-1', 'LG_T_1'),
        timedOut: false,
        truncated: false,
      };
    };
    const msg = await failsWith('BUILD_FAILED', { fixDirs: [dir], run });
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.args[0], '-C');
    assert.equal(seen[0]?.args[1], headersDir);
    assert.equal(seen[0]?.args.at(-1), 'modules');
    assert.deepEqual(seen[0]?.files, [
      'Kbuild',
      'fix0_LG_T_1',
      'fix0_LG_T_1/fix.c',
      'fix0_LG_T_1/livegraft.h',
      'fix0_LG_T_1/local.h',
      'livegraft_main.c',
    ]);
    assert.ok(msg.includes(`${dir}/fix.c:1:1: error: injected`), msg);
  });

  it('reports a make that overran its timeout', async () => {
    const dir = await writeFix(path.join(tmp.dir, 'slow'), goodSpec, { 'fix.c': '' });
    const run: ProcessRunner = async () => ({
      code: null,
      signal: 'SIGTERM',
      stdout: '',
      stderr: '',
      timedOut: true,
      truncated: false,
    });
    assert.match(await failsWith('BUILD_FAILED', { fixDirs: [dir], run, makeTimeoutMs: 5000 }), /within 5 s/);
  });

  it('rejects a livegraft.h shipped inside a fix (it is generated)', async () => {
    const dir = await writeFix(path.join(tmp.dir, 'own-header'), goodSpec, { 'fix.c': '', 'livegraft.h': '' });
    assert.match(await failsWith('FIX_INVALID', { fixDirs: [dir] }), /generated/);
  });

  it('reports missing headers for a release with the paths tried and the Debian package', async () => {
    const fix = await copyExample('cmdline-redact', tmp.dir);
    const roots = { modulesRoot: path.join(tmp.dir, 'lib-modules'), srcRoot: path.join(tmp.dir, 'usr-src') };
    // Not installed, and (here) not in the archive either: both are said.
    const msg = await failsWith('HEADERS_NOT_FOUND', {
      kernel: '6.1.0-99-amd64',
      headersRoots: roots,
      fixDirs: [fix],
      ensureKernel: () =>
        Promise.reject(new LivegraftError('KERNEL_BUILD_UNKNOWN', "Debian's archive has no build 6.1.0-99-amd64")),
    });
    assert.match(msg, /Nor can it be fetched: Debian's archive has no build 6\.1\.0-99-amd64/);
    assert.ok(msg.includes(path.join(roots.modulesRoot, '6.1.0-99-amd64', 'build')), msg);
    assert.ok(msg.includes(path.join(roots.srcRoot, 'linux-headers-6.1.0-99-amd64')), msg);
    assert.match(msg, /package linux-headers-6\.1\.0-99-amd64/);
  });

  it('finds headers for a release under /lib/modules/<rel>/build, then /usr/src/linux-headers-<rel>', async () => {
    const roots = { modulesRoot: path.join(tmp.dir, 'lm2'), srcRoot: path.join(tmp.dir, 'us2') };
    await fakeHeaders(path.join(roots.srcRoot, 'linux-headers-9.9.9-test'));
    const { resolveHeaders } = await import('../src/index.ts');
    assert.equal(await resolveHeaders('9.9.9-test', roots), path.join(roots.srcRoot, 'linux-headers-9.9.9-test'));
    await fakeHeaders(path.join(roots.modulesRoot, '9.9.9-test', 'build'));
    assert.equal(await resolveHeaders('9.9.9-test', roots), path.join(roots.modulesRoot, '9.9.9-test', 'build'));
  });

  it('rejects a headers directory that is not a configured tree', async () => {
    const dir = path.join(tmp.dir, 'not-headers');
    await mkdir(dir);
    const fix = await writeFix(path.join(tmp.dir, 'fx'), goodSpec, { 'fix.c': '' });
    assert.match(await failsWith('HEADERS_NOT_FOUND', { kernel: dir, fixDirs: [fix] }), /has no Makefile/);
    await rm(dir, { recursive: true });
  });

  it('rejects bad levels and an absent output directory', async () => {
    const fix = await writeFix(path.join(tmp.dir, 'lvl'), goodSpec, { 'fix.c': '' });
    await failsWith('USAGE', { level: 0, fixDirs: [fix] });
    await failsWith('USAGE', { level: 1.5, fixDirs: [fix] });
    await failsWith('USAGE', { fixDirs: [] });
    await failsWith('OUT_DIR_INVALID', { fixDirs: [fix], outDir: path.join(tmp.dir, 'nope') });
  });
});
