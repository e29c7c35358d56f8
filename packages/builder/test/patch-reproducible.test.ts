// compareWithModule / assertReproducible on gcc-compiled objects.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LivegraftError } from '@livegraft/protocol';
import { readElf, type ElfFile } from '../src/elf/index.ts';
import { assertReproducible, compareWithModule, type ReproResult } from '../src/patch/reproducible.ts';
import { compiler } from './klp-helpers.ts';

const cc = compiler();
after(() => cc.cleanup());

const SOURCE = [
  'extern int printk(const char *fmt, ...);',
  'static int counter;',
  'static int __attribute__((noinline)) check(int len, int max)',
  '{',
  '\tif (len > max)',
  '\t\treturn -22;',
  '\tcounter++;',
  '\treturn 0;',
  '}',
  'int params_get(int len, int max)',
  '{',
  '\tint r = check(len, max);',
  '\tif (r)',
  '\t\tprintk("bad %d\\n", len);',
  '\treturn r;',
  '}',
  '',
].join('\n');

/** The shipped module: the unit compiled, linked with another unit by ld -r, optionally stripped like Debian ships it. */
function shippedModule(name: string, source: string, strip: boolean): ElfFile {
  cc.compile(`${name}_unit`, source);
  cc.compile(
    `${name}_other`,
    'static int __attribute__((noinline)) check(int a, int b) { return a - b; }\nint other(int a) { return check(a, 3); }\n',
  );
  const ko = join(cc.dir, `${name}.ko`);
  execFileSync('ld', ['-r', join(cc.dir, `${name}_unit.o`), join(cc.dir, `${name}_other.o`), '-o', ko], {
    stdio: 'pipe',
  });
  if (strip) execFileSync('strip', ['--strip-debug', ko], { stdio: 'pipe' });
  return readElf(readFileSync(ko));
}

describe('compareWithModule', () => {
  // The unit's STT_FILE name is what gcc was given: "<name>_unit.c".
  const unitName = (name: string): string => `drivers/x/${name}_unit.c`;

  it('the same source compiled here matches the shipped module, function by function', () => {
    const ko = shippedModule('same', SOURCE, false);
    const original = readElf(cc.compile('same_unit', SOURCE));
    const r = compareWithModule(unitName('same'), original, ko);
    assert.deepEqual(r, { compared: 2, matched: 2, mismatches: [] });
  });

  it('a module stripped of debug symbols (no STT_FILE, as Debian ships them) still matches', () => {
    const ko = shippedModule('stripped', SOURCE, true);
    const original = readElf(cc.compile('stripped_unit', SOURCE));
    const r = compareWithModule(unitName('stripped'), original, ko);
    assert.deepEqual(r, { compared: 2, matched: 2, mismatches: [] });
  });

  it('changed code is a mismatch named by its function', () => {
    const ko = shippedModule('changed', SOURCE, false);
    const original = readElf(cc.compile('changed_unit', SOURCE.replace('if (len > max)', 'if (len >= max)')));
    const r = compareWithModule(unitName('changed'), original, ko);
    assert.equal(r.compared, 2);
    assert.equal(r.matched, 1);
    assert.deepEqual(r.mismatches, [
      { unit: unitName('changed'), function: 'check', reason: 'its code differs from the shipped module' },
    ]);
  });

  it('a function the shipped module does not have is a mismatch', () => {
    const ko = shippedModule('dropped', SOURCE, false);
    const original = readElf(cc.compile('dropped_unit', `${SOURCE}int extra(int a) { return a * 7; }\n`));
    const r = compareWithModule(unitName('dropped'), original, ko);
    assert.deepEqual(r.mismatches, [
      { unit: unitName('dropped'), function: 'extra', reason: 'not in the shipped module (inlined or dropped there)' },
    ]);
  });
});

describe('assertReproducible', () => {
  const clean: ReproResult = { compared: 5, matched: 5, mismatches: [] };
  const bad: ReproResult = {
    compared: 3,
    matched: 2,
    mismatches: [
      { unit: 'net/ipv4/ip_gre.c', function: 'ipgre_changelink', reason: 'its code differs from the shipped module' },
    ],
  };

  it('passes when everything matched', () => {
    assert.deepEqual(assertReproducible([clean], '6.1.0-50-amd64', false), []);
  });

  it('throws NOT_REPRODUCIBLE naming the function unless forced', () => {
    assert.throws(
      () => assertReproducible([clean, bad], '6.1.0-50-amd64', false),
      (err: unknown) => {
        assert.ok(err instanceof LivegraftError);
        assert.equal(err.code, 'NOT_REPRODUCIBLE');
        assert.match(err.message, /shipped 6\.1\.0-50-amd64 kernel in 1 function/);
        assert.match(err.message, /net\/ipv4\/ip_gre\.c: ipgre_changelink: its code differs/);
        assert.match(err.message, /--force/);
        return true;
      },
    );
    assert.deepEqual(assertReproducible([clean, bad], '6.1.0-50-amd64', true), bad.mismatches);
  });
});
