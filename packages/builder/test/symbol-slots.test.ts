import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import { R_X86_64_64, SHN_LIVEPATCH } from '../src/elf/index.ts';
import type { LoadedFix } from '../src/fixes.ts';
import { describeKlp, writeKlpRelocations } from '../src/klp/index.ts';
import type { ModuleSymbols } from '../src/patch/resolver.ts';
import { resolveSlots, symbolSlotsObject, SYMBOLS_SECTION, type SlotLookup } from '../src/symbol-slots.ts';
import { compiler, readelf } from './klp-helpers.ts';

const cc = compiler();
after(() => cc.cleanup());

const slots = [
  { cName: 'saved_command_line', object: 'vmlinux', name: 'saved_command_line', sympos: 0 },
  { cName: 'helper__2', object: 'vmlinux', name: 'helper', sympos: 2 },
  { cName: 'my_mod__tbl', object: 'my_mod', name: 'tbl', sympos: 0 },
];

/** The readelf -S fields of a section after its name: type, address, offset, size, entsize, flags, link, info, align. */
function sectionFields(sections: string, name: string): string[] {
  const line = sections.split('\n').find((l) => new RegExp(`\\]\\s+${name.replace(/\./g, '\\.')}\\s`).test(l));
  assert.ok(line, `${name} in\n${sections}`);
  return (line.split(']')[1] ?? '').trim().split(/\s+/).slice(1);
}

/** Links the slots object after a gcc object and before a main object that reads the pointers, as kbuild does. */
function linkWithSlots(object: Buffer): string {
  const slotsO = join(cc.dir, 'livegraft_symbols.o');
  writeFileSync(slotsO, object);
  cc.compile(
    'copied',
    'int copied_data[4] = { 1, 2, 3, 4 };\n' +
      'void *copied_ptr[2] __attribute__((section(".data.lgcopied"))) = { 0, 0 };\n' +
      'int copied_fn(int a) { return a + copied_data[a & 3]; }',
  );
  cc.compile(
    'main',
    'extern void *lg_sym_saved_command_line, *lg_sym_helper__2;\n' +
      'void *first(void) { return lg_sym_saved_command_line; }\nvoid *second(void) { return lg_sym_helper__2; }',
  );
  const ko = join(cc.dir, 'mod.ko');
  execFileSync('ld', ['-r', '-o', ko, join(cc.dir, 'copied.o'), slotsO, join(cc.dir, 'main.o')], {
    timeout: 60_000,
  });
  return ko;
}

describe('symbolSlotsObject', () => {
  it('writes one zero-filled, writable 8-byte slot per symbol with a global lg_sym_ object symbol', () => {
    const { object } = symbolSlotsObject(slots);
    const file = join(cc.dir, 'slots.o');
    writeFileSync(file, object);

    // Independent check with binutils.
    const sections = readelf(['-S'], file);
    const [type, , , size, , flags, , , align] = sectionFields(sections, SYMBOLS_SECTION);
    assert.equal(type, 'PROGBITS');
    assert.equal(parseInt(size ?? '', 16), 24);
    assert.equal(flags, 'WA');
    assert.equal(align, '8');
    assert.match(sections, /\.note\.GNU-stack/);
    const index = /\[\s*(\d+)\]\s+\.data\.livegraft\.syms/.exec(sections)?.[1];

    const symbols = readelf(['-s'], file);
    slots.forEach((s, i) => {
      const line = symbols.split('\n').find((l) => l.trim().endsWith(` lg_sym_${s.cName}`));
      assert.ok(line, symbols);
      const [, value, symSize, symType, bind, , ndx] = line.trim().split(/\s+/);
      assert.equal(BigInt(`0x${value ?? ''}`), BigInt(i * 8));
      assert.equal(symSize, '8');
      assert.equal(symType, 'OBJECT');
      assert.equal(bind, 'GLOBAL');
      assert.equal(ndx, index);
    });
    assert.match(readelf(['-r'], file), /There are no relocations in this file/);
    assert.ok(readFileSync(file).subarray(0, 4).equals(Buffer.from('\x7fELF', 'latin1')));
  });

  it('gives one R_X86_64_64 klp relocation per slot, applied by the object that defines the symbol', () => {
    const { relocs } = symbolSlotsObject(slots);
    assert.deepEqual(relocs, [
      {
        section: SYMBOLS_SECTION,
        offset: 0,
        type: R_X86_64_64,
        addend: 0,
        symbol: { object: 'vmlinux', name: 'saved_command_line', sympos: 0 },
        relaObject: 'vmlinux',
      },
      {
        section: SYMBOLS_SECTION,
        offset: 8,
        type: R_X86_64_64,
        addend: 0,
        symbol: { object: 'vmlinux', name: 'helper', sympos: 2 },
        relaObject: 'vmlinux',
      },
      {
        section: SYMBOLS_SECTION,
        offset: 16,
        type: R_X86_64_64,
        addend: 0,
        symbol: { object: 'my_mod', name: 'tbl', sympos: 0 },
        relaObject: 'my_mod',
      },
    ]);
  });

  it('links after another object, and its klp relocations land in .klp.rela.<object>..data.livegraft.syms', () => {
    const { object, relocs } = symbolSlotsObject(slots);
    const ko = linkWithSlots(object);
    // The fix code's references now point at the slots object's symbols.
    const linkedSymbols = readelf(['-s'], ko);
    const defined = linkedSymbols.split('\n').find((l) => l.trim().endsWith(' lg_sym_helper__2'));
    assert.ok(defined && !/\bUND\b/.test(defined), linkedSymbols);

    const withSlots = writeKlpRelocations(readFileSync(ko), relocs, { patchObject: object });
    // A second call, as for the functions copied out of patched objects, adds its own sections.
    const copiedReloc = {
      section: '.data.lgcopied',
      offset: 8,
      type: R_X86_64_64,
      addend: 0,
      symbol: { object: 'vmlinux', name: 'jiffies', sympos: 0 },
    };
    const withKlp = writeKlpRelocations(withSlots, [copiedReloc], {
      patchObject: readFileSync(join(cc.dir, 'copied.o')),
    });
    const out = join(cc.dir, 'mod-klp.ko');
    writeFileSync(out, withKlp);

    const sections = readelf(['-S'], out);
    const vmlinuxRela = sectionFields(sections, `.klp.rela.vmlinux.${SYMBOLS_SECTION}`);
    assert.equal(vmlinuxRela[0], 'RELA');
    assert.match(vmlinuxRela[5] ?? '', /A/);
    assert.match(vmlinuxRela[5] ?? '', /o/, 'SHF_RELA_LIVEPATCH (OS-specific)');
    assert.equal(sectionFields(sections, `.klp.rela.my_mod.${SYMBOLS_SECTION}`)[0], 'RELA');

    const rela = readelf(['-r'], out);
    const vmlinuxPart = rela.slice(rela.indexOf(`'.klp.rela.vmlinux.${SYMBOLS_SECTION}'`));
    const entries = vmlinuxPart
      .split('\n')
      .filter((l) => /R_X86_64_64/.test(l))
      .slice(0, 2);
    assert.match(entries[0] ?? '', /^0+ +\S+ +R_X86_64_64 +0+ +\.klp\.sym\.vmlinux\.saved_command_line,0 \+ 0$/);
    assert.match(entries[1] ?? '', /^0+8 +\S+ +R_X86_64_64 +0+ +\.klp\.sym\.vmlinux\.helper,2 \+ 0$/);
    const modulePart = rela.slice(rela.indexOf(`'.klp.rela.my_mod.${SYMBOLS_SECTION}'`));
    assert.match(modulePart, /^0+10 +\S+ +R_X86_64_64 +0+ +\.klp\.sym\.my_mod\.tbl,0 \+ 0$/m);

    const symbols = readelf(['-s'], out);
    for (const name of [
      '.klp.sym.vmlinux.saved_command_line,0',
      '.klp.sym.vmlinux.helper,2',
      '.klp.sym.my_mod.tbl,0',
    ]) {
      const line = symbols.split('\n').find((l) => l.trim().endsWith(` ${name}`));
      assert.ok(line, `${name} in\n${symbols}`);
      // readelf prints SHN_LIVEPATCH (0xff20) as an OS-specific index.
      assert.match(line, /\bGLOBAL\b.*\b(OS|LOOS)\S*\s/i);
    }
    const d = describeKlp(withKlp);
    assert.ok(d.symbols.every((s) => s.shndx === SHN_LIVEPATCH));
    assert.deepEqual(
      d.sections.map((s) => [s.object, s.targetSection, s.relocations.length]),
      [
        ['vmlinux', SYMBOLS_SECTION, 2],
        ['my_mod', SYMBOLS_SECTION, 1],
        ['vmlinux', '.data.lgcopied', 1],
      ],
    );
  });
});

function fixOf(id: string, symbols: string[], objects: string[] = ['vmlinux']): LoadedFix {
  return {
    dir: `/src/${id}`,
    shownDir: `fixes/${id}`,
    spec: {
      id,
      title: id,
      cves: [],
      functions: objects.map((object, i) => ({ name: `f${i}`, object, replacement: `r_${id}_${i}` })),
      symbols,
    },
    sources: ['fix.c'],
    headers: [],
    patches: [],
  };
}

const kallsyms: SlotLookup['kallsyms'] = [
  { address: 0x1000n, type: 't', name: 'helper' },
  { address: 0x1010n, type: 'D', name: 'saved_command_line' },
  { address: 0x2000n, type: 't', name: 'helper' },
  { address: 0x2010n, type: 'd', name: 'a.b' },
  { address: 0x2020n, type: 'd', name: 'a__b' },
  { address: 0x3000n, type: 'd', name: 'helper' },
  { address: 0x4000n, type: 't', name: 'only_in_module', module: 'other' },
];
const modules: Record<string, ModuleSymbols> = {
  my_mod: {
    symbols: [
      { name: 'tbl', local: true, file: undefined },
      { name: 'dup', local: true, file: undefined },
      { name: 'dup', local: false, file: undefined },
    ],
  },
};
const lookup: SlotLookup = { kallsyms, moduleSymbols: (name) => modules[name] };

function rejectsWith(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isLivegraftError(err), String(err));
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

describe('resolveSlots', () => {
  it('gives a unique name position 0 and keeps an explicit position', () => {
    const got = resolveSlots([fixOf('A', ['saved_command_line', 'helper,2', 'helper,3'])], lookup);
    assert.deepEqual(got, [
      { cName: 'saved_command_line', object: 'vmlinux', name: 'saved_command_line', sympos: 0 },
      { cName: 'helper__2', object: 'vmlinux', name: 'helper', sympos: 2 },
      { cName: 'helper__3', object: 'vmlinux', name: 'helper', sympos: 3 },
    ]);
  });

  it('refuses a plain name that kallsyms holds more than once, saying how many and how to pick', () => {
    rejectsWith(
      () => resolveSlots([fixOf('A', ['helper'])], lookup),
      'SYMBOL_AMBIGUOUS',
      /fix A: 3 symbols named helper exist in vmlinux; write "helper,N" \(N from 1 to 3, .*t, t, d\)/,
    );
  });

  it('refuses a name the kernel does not have, and a position past the last one', () => {
    rejectsWith(
      () => resolveSlots([fixOf('A', ['no_such_thing'])], lookup),
      'SYMBOL_NOT_FOUND',
      /fix A: symbol "no_such_thing": vmlinux of the target kernel has no symbol no_such_thing/,
    );
    rejectsWith(
      () => resolveSlots([fixOf('A', ['helper,4'])], lookup),
      'SYMBOL_NOT_FOUND',
      /vmlinux has only 3 symbols named helper/,
    );
    rejectsWith(
      () => resolveSlots([fixOf('A', ['saved_command_line,2'])], lookup),
      'SYMBOL_NOT_FOUND',
      /only one symbol named saved_command_line/,
    );
    // A symbol of a loaded module is not a vmlinux symbol.
    rejectsWith(() => resolveSlots([fixOf('A', ['only_in_module'])], lookup), 'SYMBOL_NOT_FOUND', /only_in_module/);
  });

  it("resolves module symbols in the shipped module's symbol table", () => {
    const got = resolveSlots([fixOf('M', ['my-mod:tbl', 'my_mod:dup,2'], ['my-mod'])], lookup);
    assert.deepEqual(got, [
      { cName: 'my_mod__tbl', object: 'my_mod', name: 'tbl', sympos: 0 },
      { cName: 'my_mod__dup__2', object: 'my_mod', name: 'dup', sympos: 2 },
    ]);
    rejectsWith(
      () => resolveSlots([fixOf('M', ['my_mod:dup'], ['my_mod'])], lookup),
      'SYMBOL_AMBIGUOUS',
      /2 symbols named dup exist in module my_mod; write "my_mod:dup,N"/,
    );
    rejectsWith(
      () => resolveSlots([fixOf('M', ['my_mod:nope'], ['my_mod'])], lookup),
      'SYMBOL_NOT_FOUND',
      /module my_mod of the target kernel has no symbol nope/,
    );
    rejectsWith(
      () => resolveSlots([fixOf('G', ['gone:x'], ['gone'])], lookup),
      'SYMBOL_NOT_FOUND',
      /the target kernel ships no module gone/,
    );
  });

  it('shares one slot between fixes naming the same symbol, and refuses two symbols behind one C name', () => {
    const got = resolveSlots(
      [fixOf('A', ['saved_command_line']), fixOf('B', ['saved_command_line', 'helper,1'])],
      lookup,
    );
    assert.deepEqual(
      got.map((s) => s.cName),
      ['saved_command_line', 'helper__1'],
    );
    rejectsWith(
      () => resolveSlots([fixOf('A', ['a.b']), fixOf('B', ['a__b'])], lookup),
      'FIX_INVALID',
      /fixes A and B use "a\.b" and "a__b", which both map to LG_SYMBOL\(a__b\)/,
    );
  });
});
