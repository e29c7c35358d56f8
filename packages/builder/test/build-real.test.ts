import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  isLivegraftError,
  kernelIdFromProcVersion,
  manifestValidator,
  modinfoValue,
  moduleNameFor,
  parseModinfo,
} from '@livegraft/protocol';
import { buildPatch, procVersionFromHeaders } from '../src/index.ts';
import { copyExample, examplesDir, installedHeaders, listDir, scratch, writeFix } from './helpers.ts';

const headers = installedHeaders();
const fixedClock = (): Date => new Date('2030-01-02T03:04:05.000Z');

/** A minimal fix whose C body is given, for failure cases. */
function fixWith(body: string, spec: Record<string, unknown> = {}): [unknown, Record<string, string>] {
  return [
    {
      id: 'LG-TEST-1',
      title: 'test fix',
      cves: [],
      functions: [{ name: 'cmdline_proc_show', object: 'vmlinux', replacement: 'lgtest_cmdline_show' }],
      ...spec,
    },
    { 'fix.c': body },
  ];
}

describe('buildPatch against the installed kernel headers (real kbuild)', { skip: headers.skip }, () => {
  const headersDir = headers.dir ?? '';
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch();
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('builds both example fixes into one level-2 cumulative module with a valid manifest', async () => {
    const out = path.join(tmp.dir, 'out-ok');
    const buildRoot = path.join(tmp.dir, 'buildroot-ok');
    await mkdir(out);
    await mkdir(buildRoot);
    const result = await buildPatch({
      kernel: headersDir,
      level: 2,
      fixDirs: [path.join(examplesDir, 'cmdline-redact'), path.join(examplesDir, 'loadavg-lastpid')],
      outDir: out,
      now: fixedClock,
      tmpRoot: buildRoot,
    });
    const { line, release } = await procVersionFromHeaders(headersDir);
    const kernelId = kernelIdFromProcVersion(line);
    const name = moduleNameFor(kernelId, 2);

    assert.deepEqual(await listDir(out), [`${name}.json`, `${name}.ko`]);
    assert.deepEqual(await listDir(buildRoot), [], 'the temporary build directory is removed');
    assert.deepEqual(result.warnings, [], 'the examples compile without warnings');

    const manifest = manifestValidator.parse(JSON.parse(await readFile(path.join(out, `${name}.json`), 'utf8')));
    assert.deepEqual(manifest, result.manifest);
    assert.equal(manifest.name, name);
    assert.equal(manifest.level, 2);
    assert.equal(manifest.replace, true);
    assert.equal(manifest.kernel.id, kernelId);
    assert.equal(manifest.kernel.release, release);
    assert.equal(manifest.builtAt, '2030-01-02T03:04:05.000Z');
    assert.equal(manifest.builder, 'livegraft-builder/0.1.0');
    assert.deepEqual(
      manifest.fixes.map((f) => [f.id, f.functions]),
      [
        ['LG-DEMO-0001', [{ name: 'cmdline_proc_show', object: 'vmlinux' }]],
        ['LG-DEMO-0002', [{ name: 'loadavg_proc_show', object: 'vmlinux' }]],
      ],
    );
    assert.deepEqual(manifest.cves, []);

    const ko = await readFile(path.join(out, `${name}.ko`));
    assert.equal(manifest.module.file, `${name}.ko`);
    assert.equal(manifest.module.size, ko.byteLength);
    assert.equal(manifest.module.sha256, createHash('sha256').update(ko).digest('hex'));

    const info = parseModinfo(ko);
    assert.equal(modinfoValue(info, 'livepatch'), 'Y');
    assert.equal(modinfoValue(info, 'license'), 'GPL');
    assert.equal(modinfoValue(info, 'name'), name);
    assert.equal(modinfoValue(info, 'livegraft_level'), '2');
    assert.equal(modinfoValue(info, 'livegraft_kernel_id'), kernelId);
    assert.equal(modinfoValue(info, 'livegraft_fixes'), 'LG-DEMO-0001,LG-DEMO-0002');
    assert.equal(modinfoValue(info, 'livegraft_cves'), '');
    assert.equal(modinfoValue(info, 'vermagic')?.trim(), manifest.kernel.vermagic);
    assert.ok(manifest.kernel.vermagic.startsWith(`${release} `), manifest.kernel.vermagic);
    assert.match(modinfoValue(info, 'description') ?? '', /level 2/);
  });

  it('patches a module object too, and keeps CVE ids in modinfo and the manifest', async () => {
    const out = path.join(tmp.dir, 'out-mod');
    await mkdir(out);
    const dir = await writeFix(
      path.join(tmp.dir, 'modfix'),
      {
        id: 'LG-TEST-MOD',
        title: 'module object',
        cves: ['CVE-2030-0002', 'CVE-2030-0001'],
        functions: [{ name: 'ext4_statfs', object: 'ext4', replacement: 'lgtest_ext4_statfs', sympos: 1 }],
      },
      {
        'fix.c':
          'struct dentry; struct kstatfs;\nint lgtest_ext4_statfs(struct dentry *d, struct kstatfs *b) { return 0; }\n',
      },
    );
    const result = await buildPatch({ kernel: headersDir, level: 7, fixDirs: [dir], outDir: out, now: fixedClock });
    assert.deepEqual(result.manifest.cves, ['CVE-2030-0001', 'CVE-2030-0002']);
    const info = parseModinfo(await readFile(result.modulePath));
    assert.equal(modinfoValue(info, 'livegraft_cves'), 'CVE-2030-0001,CVE-2030-0002');
    assert.equal(modinfoValue(info, 'livegraft_level'), '7');
  });

  it("reports a C syntax error at the fix's own file and line, writing nothing", async () => {
    const fixDir = await copyExample('cmdline-redact', path.join(tmp.dir, 'broken'));
    const src = path.join(fixDir, 'cmdline.c');
    const lines = (await readFile(src, 'utf8')).split('\n');
    const at = lines.findIndex((l) => l.includes("seq_putc(m, '\\n');"));
    assert.ok(at > 0);
    lines[at] = "\tseq_putc(m, '\\n') /* missing semicolon */";
    lines.splice(at + 1, 0, '\tthis is not C;');
    await writeFile(src, lines.join('\n'));
    const out = path.join(tmp.dir, 'out-broken');
    const buildRoot = path.join(tmp.dir, 'buildroot-broken');
    await mkdir(out);
    await mkdir(buildRoot);

    await assert.rejects(
      buildPatch({ kernel: headersDir, level: 3, fixDirs: [fixDir], outDir: out, tmpRoot: buildRoot }),
      (err: unknown) => {
        assert.ok(isLivegraftError(err));
        assert.equal(err.code, 'BUILD_FAILED');
        // The error points at the user's file (1-based line numbers), never at the temp build tree.
        const expected = new RegExp(
          `${fixDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/cmdline\\.c:(${at + 1}|${at + 2}):\\d+: error: `,
        );
        assert.match(err.message, expected);
        assert.doesNotMatch(err.message, /livegraft-build-/);
        return true;
      },
    );
    assert.deepEqual(await listDir(out), []);
    assert.deepEqual(await listDir(buildRoot), []);
  });

  it('fails a call to an undeclared function instead of guessing its prototype', async () => {
    const [spec, files] = fixWith(
      'struct seq_file;\nint lgtest_cmdline_show(struct seq_file *m, void *v)\n{\n\treturn some_undeclared_helper(m);\n}\n',
    );
    const dir = await writeFix(path.join(tmp.dir, 'implicit'), spec, files);
    const out = path.join(tmp.dir, 'out-implicit');
    await mkdir(out);
    await assert.rejects(buildPatch({ kernel: headersDir, level: 1, fixDirs: [dir], outDir: out }), (err: unknown) => {
      assert.ok(isLivegraftError(err));
      assert.equal(err.code, 'BUILD_FAILED');
      assert.match(
        err.message,
        /implicit\/fix\.c:4:\d+: error: implicit declaration of function 'some_undeclared_helper'/,
      );
      return true;
    });
    assert.deepEqual(await listDir(out), []);
  });

  it('lets LG_SYMBOL reach only the symbols the fix declared', async () => {
    const body =
      '#include "livegraft.h"\nstruct seq_file;\nint lgtest_cmdline_show(struct seq_file *m, void *v)\n{\n' +
      '\treturn LG_SYMBOL(saved_command_line) != 0;\n}\n';
    const [spec, files] = fixWith(body);
    const dir = await writeFix(path.join(tmp.dir, 'undeclared-symbol'), spec, files);
    await assert.rejects(
      buildPatch({ kernel: headersDir, level: 1, fixDirs: [dir], outDir: tmp.dir }),
      (err: unknown) => {
        assert.ok(isLivegraftError(err));
        assert.match(err.message, /<generated>\/livegraft\.h:\d+:\d+: error: 'lg_sym_saved_command_line' undeclared/);
        // The macro note names the line in the fix that used LG_SYMBOL.
        assert.match(err.message, /undeclared-symbol\/fix\.c:5:\d+: note: in expansion of macro 'LG_SYMBOL'/);
        return true;
      },
    );
    // Declared, the same source builds.
    const [okSpec] = fixWith(body, { symbols: ['saved_command_line'] });
    const okDir = await writeFix(path.join(tmp.dir, 'declared-symbol'), okSpec, files);
    const out = path.join(tmp.dir, 'out-declared');
    await mkdir(out);
    const result = await buildPatch({ kernel: headersDir, level: 1, fixDirs: [okDir], outDir: out });
    assert.equal(result.manifest.level, 1);
  });
});
