import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixHeader, kbuildFile, mainSource, type PlacedFix } from '../src/codegen.ts';
import { cString } from '../src/c-defines.ts';
import { rewritePaths, errorLines } from '../src/kbuild.ts';
import type { LoadedFix } from '../src/fixes.ts';

function fix(id: string, functions: LoadedFix['spec']['functions'], extra: Partial<LoadedFix['spec']> = {}): LoadedFix {
  return {
    dir: `/src/${id}`,
    shownDir: `fixes/${id}`,
    spec: { id, title: id, cves: [], functions, ...extra },
    sources: ['a.c', 'b.c'],
    headers: [],
    patches: [],
  };
}

const placed: PlacedFix[] = [
  {
    subdir: 'fix0_A',
    fix: fix(
      'A',
      [
        { name: 'mod_fn', object: 'my-mod', replacement: 'r_mod' },
        { name: 'core_fn', object: 'vmlinux', replacement: 'r_core', sympos: 2 },
      ],
      { symbols: ['saved_command_line', 'foo.isra.0', 'helper,2', 'my-mod:tbl'], cves: ['CVE-2030-0002'] },
    ),
  },
  {
    subdir: 'fix1_B',
    fix: fix('B', [{ name: 'other', object: 'vmlinux', replacement: 'r_other' }], { cves: ['CVE-2030-0001'] }),
  },
];
const input = {
  moduleName: 'livegraft_abc_l3',
  level: 3,
  kernelId: 'f'.repeat(64),
  release: '1.0',
  builder: 'b/1',
  fixes: placed,
};

describe('generated sources', () => {
  it('Kbuild links the symbols object, the main file and every fix object into one module', () => {
    const k = kbuildFile(input);
    assert.match(k, /^obj-m := livegraft_abc_l3\.o$/m);
    assert.match(
      k,
      /^livegraft_abc_l3-y := livegraft_symbols\.o livegraft_main\.o fix0_A\/a\.o fix0_A\/b\.o fix1_B\/a\.o fix1_B\/b\.o$/m,
    );
    assert.match(k, /-Werror=implicit-function-declaration/);
  });

  it('Kbuild links the copied object first, then the symbols object, and no symbols object without symbols', () => {
    const copied = [{ name: 'fn', object: 'vmlinux', sympos: 0, newSymbol: '__livegraft_new_1', fixId: 'P' }];
    assert.match(
      kbuildFile({ ...input, copied }),
      /^livegraft_abc_l3-y := livegraft_copied\.o livegraft_symbols\.o livegraft_main\.o /m,
    );
    assert.match(
      kbuildFile({ ...input, copied, fixes: [placed[1] as PlacedFix] }),
      /^livegraft_abc_l3-y := livegraft_copied\.o livegraft_main\.o fix1_B\/a\.o/m,
    );
  });

  it('groups functions per object, vmlinux first with a NULL name, module names normalized', () => {
    const c = mainSource(input);
    const objs = c.slice(c.indexOf('lg_objs[] = {'));
    assert.match(
      objs,
      /\{ \.name = NULL, \.funcs = lg_funcs_0 \}[^\n]*\n\t\{ \.name = "my_mod", \.funcs = lg_funcs_1 \}/,
    );
    assert.match(c, /\.old_name = "core_fn", \.new_func = r_core, \.old_sympos = 2/);
    assert.match(c, /\.old_name = "other", \.new_func = r_other, \.old_sympos = 0/);
    assert.match(c, /\.replace = true/);
    assert.match(c, /extern void r_mod\(void\);/);
    assert.match(c, /MODULE_INFO\(livegraft_fixes, "A,B"\);/);
    assert.match(c, /MODULE_INFO\(livegraft_cves, "CVE-2030-0001,CVE-2030-0002"\);/);
    assert.match(c, /MODULE_INFO\(livepatch, "Y"\);/);
  });

  it('leaves the LG_SYMBOL pointers to the symbols object: no definitions, no kprobe lookup', () => {
    const c = mainSource(input);
    assert.doesNotMatch(c, /lg_sym_/);
    assert.doesNotMatch(c, /kprobe|kallsyms_lookup_name/);
    assert.match(c, /static int __init lg_init\(void\)\n\{\n\treturn klp_enable_patch\(&lg_patch\);\n\}/);
  });

  it("livegraft.h declares exactly the fix's own symbols", () => {
    const h = fixHeader((placed[0] as PlacedFix).fix, 'b/1');
    assert.match(h, /#define LG_SYMBOL\(name\) \(lg_sym_##name\)/);
    assert.match(h, /extern void \*lg_sym_saved_command_line;/);
    assert.match(h, /extern void \*lg_sym_foo__isra__0; \/\* foo\.isra\.0 \*\//);
    assert.match(h, /extern void \*lg_sym_helper__2; \/\* helper,2 \*\//);
    assert.match(h, /extern void \*lg_sym_my_mod__tbl; \/\* my-mod:tbl \*\//);
    assert.equal(fixHeader((placed[1] as PlacedFix).fix, 'b/1').includes('extern'), false);
  });

  it('escapes C strings safely', () => {
    assert.equal(cString('a"b\\c?\n'), '"a\\"b\\\\c\\?\\012"');
    assert.equal(cString('é'), '"\\303\\251"');
  });

  it('maps build-tree paths in compiler output back to the fix directories', () => {
    const map = { buildDir: '/tmp/livegraft-build-x', subdirs: new Map([['fix0_A', 'fixes/A/']]) };
    const out = rewritePaths(
      [
        '/tmp/livegraft-build-x/fix0_A/a.c:3:1: error: boom',
        '/tmp/livegraft-build-x/fix0_A/livegraft.h:9:2: error: in header',
        '/tmp/livegraft-build-x/livegraft_main.c:1:1: error: main',
        '  CC [M]  fix0_A/b.o',
        'make[1]: Leaving directory',
      ].join('\n'),
      map,
    );
    assert.deepEqual(errorLines(out), [
      'fixes/A/a.c:3:1: error: boom',
      '<generated>/livegraft.h:9:2: error: in header',
      '<generated>/livegraft_main.c:1:1: error: main',
    ]);
    assert.match(out, /CC \[M\] {2}fixes\/A\/b\.o/);
  });
});
