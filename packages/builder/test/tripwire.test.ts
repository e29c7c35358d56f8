import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError, modinfoValue, parseModinfo } from '@livegraft/protocol';
import { buildPatch } from '../src/index.ts';
import { fixHeader, mainSource, TRIPWIRE_BURST } from '../src/codegen.ts';
import type { LoadedFix } from '../src/fixes.ts';
import { examplesDir, installedHeaders, scratch, writeFix } from './helpers.ts';

const headers = installedHeaders();

function loaded(id: string): LoadedFix {
  return {
    dir: `/src/${id}`,
    shownDir: `fixes/${id}`,
    spec: { id, title: id, cves: ['CVE-2099-0001'], functions: [{ name: 'f', object: 'vmlinux', replacement: 'r' }] },
    sources: ['a.c'],
    headers: [],
    patches: [],
  };
}

describe('LG_TRIPWIRE codegen', () => {
  it('gives each fix its own id and a literal-only LG_TRIPWIRE', () => {
    const h = fixHeader(loaded('LG-X-1'), 'b/1');
    assert.match(h, /^#define LG_FIX_ID "LG-X-1"$/m);
    assert.match(h, /^#define LG_TRIPWIRE\(cve\) lg_tripwire\("" cve "", LG_FIX_ID\)$/m);
    assert.match(h, /^void lg_tripwire\(const char \*cve, const char \*fix\);$/m);
  });

  it('defines one rate-limited lg_tripwire writing the documented line', () => {
    const c = mainSource({
      moduleName: 'livegraft_abc_l4',
      level: 4,
      kernelId: 'f'.repeat(64),
      release: '1.0',
      builder: 'b/1',
      fixes: [{ subdir: 'fix0_A', fix: loaded('A') }],
    });
    assert.match(c, new RegExp(`DEFINE_RATELIMIT_STATE\\(lg_tripwire_rs, \\d+ \\* HZ, ${TRIPWIRE_BURST}\\)`));
    assert.match(c, /if \(!__ratelimit\(&lg_tripwire_rs\)\)\n\t\treturn;/);
    assert.match(
      c,
      /"livegraft: tripwire cve=%s fix=%s level=%d pid=%d uid=%u comm=%s\\n",\n\t {7}cve, fix, 4, task_tgid_nr\(current\), from_kuid\(&init_user_ns, current_uid\(\)\), comm\);/,
    );
  });
});

describe('the tripwire demo fix against the installed kernel headers (real kbuild)', { skip: headers.skip }, () => {
  const headersDir = headers.dir ?? '';
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch('lg-tripwire-test-');
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('builds null-write-tripwire with the other examples into level 3, warning-free', async () => {
    const out = path.join(tmp.dir, 'out');
    await mkdir(out);
    const result = await buildPatch({
      kernel: headersDir,
      level: 3,
      fixDirs: ['cmdline-redact', 'loadavg-lastpid', 'null-write-tripwire'].map((d) => path.join(examplesDir, d)),
      outDir: out,
      now: () => new Date('2030-01-02T03:04:05.000Z'),
    });
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(result.manifest.cves, ['CVE-2099-0001']);
    const demo = result.manifest.fixes.find((f) => f.id === 'LG-DEMO-0003');
    assert.deepEqual(demo?.functions, [{ name: 'write_null', object: 'vmlinux' }]);
    const ko = await readFile(result.modulePath);
    const info = parseModinfo(ko);
    assert.equal(modinfoValue(info, 'livegraft_cves'), 'CVE-2099-0001');
    assert.equal(modinfoValue(info, 'livegraft_fixes'), 'LG-DEMO-0001,LG-DEMO-0002,LG-DEMO-0003');
    // printk's KERN_WARNING prefix is "\x01" "4".
    const text = ko.toString('latin1');
    assert.ok(text.includes('\x014livegraft: tripwire cve=%s fix=%s level=%d pid=%d uid=%u comm=%s\n'));
    assert.ok(text.includes('CVE-2099-0001\0'));
    assert.ok(text.includes('LG-DEMO-0003\0'));
  });

  it('refuses a CVE id that is not a string literal', async () => {
    const dir = await writeFix(
      path.join(tmp.dir, 'nonliteral'),
      {
        id: 'LG-TEST-TW',
        title: 'tripwire with a variable',
        cves: [],
        functions: [{ name: 'write_null', object: 'vmlinux', replacement: 'lgtest_write_null' }],
      },
      {
        'fix.c':
          '#include <linux/types.h>\n#include "livegraft.h"\nstruct file;\n' +
          'long lgtest_write_null(struct file *f, const char *b, unsigned long n, long long *p);\n' +
          'long lgtest_write_null(struct file *f, const char *b, unsigned long n, long long *p)\n' +
          '{\n\tconst char *cve = "CVE-2099-0001";\n\n\tLG_TRIPWIRE(cve);\n\treturn n;\n}\n',
      },
    );
    await assert.rejects(
      buildPatch({ kernel: headersDir, level: 1, fixDirs: [dir], outDir: tmp.dir }),
      (err: unknown) => {
        assert.ok(isLivegraftError(err));
        assert.equal(err.code, 'BUILD_FAILED');
        assert.match(err.message, /nonliteral\/fix\.c:9:\d+: note: in expansion of macro 'LG_TRIPWIRE'/);
        return true;
      },
    );
  });
});
