import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { readElf } from '../src/elf/index.ts';
import { diffObjects, extractPatchObject, type SymbolLocation } from '../src/klp/index.ts';
import { compiler, fakeResolver } from './klp-helpers.ts';

const cc = compiler();
after(() => cc.cleanup());

// Entries laid out like 6.1's x86 jump_entry (16 bytes), bug_entry (12) and exception_table_entry (12).
const src = (n: number): string => `
extern int mykey;
int jl(int a) {
  asm goto("1: .byte 0x0f,0x1f,0x44,0x00,0x00\\n"
           ".pushsection __jump_table, \\"aw\\"\\n .balign 8\\n .long 1b - .\\n .long %l[l_yes] - .\\n .quad mykey + 1 - .\\n .popsection\\n"
           : : : : l_yes);
  asm volatile("2: ud2\\n .pushsection __bug_table,\\"aw\\"\\n .long 2b - .\\n .long 0\\n .word 0\\n .word 0\\n .popsection\\n"
               "3: nop\\n .pushsection __ex_table,\\"a\\"\\n .balign 4\\n .long 3b - .\\n .long 3b - .\\n .long 0\\n .popsection");
  return a + ${n};
l_yes:
  return a * 2;
}
int other(int a) {
  asm goto("1: .byte 0x0f,0x1f,0x44,0x00,0x00\\n"
           ".pushsection __jump_table, \\"aw\\"\\n .balign 8\\n .long 1b - .\\n .long %l[l_yes] - .\\n .quad mykey - .\\n .popsection\\n"
           : : : : l_yes);
  return a;
l_yes:
  return -a;
}
`;

function run(object: string, key: SymbolLocation) {
  const p = cc.compile('sp-patched', src(2));
  const diff = diffObjects(cc.compile('sp-orig', src(1)), p, { unit: 'lib/sp.c' });
  const resolver = fakeResolver({ mykey: key, jl: { object, exported: false, sympos: 0 } });
  return { diff, result: extractPatchObject([{ unit: 'lib/sp.c', patched: p, diff, object }], resolver) };
}

describe('extractPatchObject special sections', () => {
  it('carries the jump, bug and exception entries of copied code only, and the vmlinux key as a klp relocation', () => {
    const { diff, result } = run('vmlinux', { object: 'vmlinux', exported: false, sympos: 0 });
    assert.deepEqual(
      diff.changed.map((c) => c.name),
      ['jl'],
    );
    assert.deepEqual(result.refusals, []);
    const elf = readElf(result.object);
    const size = (name: string): number => elf.sections.find((s) => s.name === name)?.size ?? 0;
    assert.equal(size('__jump_table'), 16, 'only the entry of the copied function');
    assert.equal(size('__bug_table'), 12);
    assert.equal(size('__ex_table'), 12);
    const key = result.klpRelocs.find((r) => r.section === '__jump_table');
    assert.deepEqual(key, {
      section: '__jump_table',
      offset: 8,
      type: 24,
      addend: 1,
      symbol: { object: 'vmlinux', name: 'mykey', sympos: 0 },
      relaObject: 'vmlinux',
    });
    const jt = elf.sections.find((s) => s.name === '__jump_table');
    const text = elf.sections.find((s) => s.name === '.text.livegraft.1');
    assert.ok(jt && text);
    const relas = elf.relas.get(jt.index) ?? [];
    assert.deepEqual(
      relas.map((r) => [r.offset, elf.symbols[r.symbol]?.type, elf.symbols[r.symbol]?.shndx]),
      [
        [0, 3, text.index],
        [4, 3, text.index],
      ],
    );
  });

  it('refuses a static branch whose key lives in another module', () => {
    const { result } = run('bar', { object: 'foo', exported: false, sympos: 0 });
    assert.equal(result.refusals.length, 1);
    assert.match(result.refusals[0]?.reason ?? '', /static branch whose key mykey lives in module foo/);
  });

  it('links an exported key normally', () => {
    const { result } = run('vmlinux', { object: 'vmlinux', exported: true, sympos: 0 });
    assert.deepEqual(result.klpRelocs, []);
    assert.ok(readElf(result.object).symbols.some((s) => s.name === 'mykey' && s.shndx === 0));
  });
});
