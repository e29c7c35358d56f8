import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  appendToRelocatable,
  readElf,
  STB_GLOBAL,
  STT_NOTYPE,
  SHN_ABS,
  SHT_PROGBITS,
  SHF_ALLOC,
} from '../src/elf/index.ts';
import { isLivegraftError } from '@livegraft/protocol';
import { compiler, readelf } from './klp-helpers.ts';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';

const cc = compiler();
after(() => cc.cleanup());

function elfInvalid(buf: Buffer, pattern: RegExp): void {
  assert.throws(
    () => readElf(buf),
    (e: unknown) => isLivegraftError(e) && e.code === 'ELF_INVALID' && pattern.test(e.message),
  );
}

describe('readElf', () => {
  const obj = cc.compile(
    'elf-basic',
    'extern int e(int); int s = 3; int f(int a) { return a + s; } int g(void) { return e(1); }',
  );

  it('reads sections, symbols and relocations of a gcc object', () => {
    const elf = readElf(obj);
    assert.ok(elf.sections.some((s) => s.name === '.text.f'));
    const f = elf.symbols.find((s) => s.name === 'f');
    assert.equal(f?.type, 2);
    assert.ok(
      elf.symbols.some((s) => s.type === 4),
      'STT_FILE symbol',
    );
    const textG = elf.sections.find((s) => s.name === '.text.g');
    assert.ok(textG && (elf.relas.get(textG.index) ?? []).length > 0);
  });

  it('rejects corrupt files with ELF_INVALID naming what and where', () => {
    elfInvalid(Buffer.from('not an elf file at all, but long enough to hold a header.........'), /magic/);
    elfInvalid(obj.subarray(0, 20), /shorter than an ELF header/);
    const truncated = Buffer.from(obj.subarray(0, obj.length - 100));
    elfInvalid(truncated, /past the end|section header/);
    const badShoff = Buffer.from(obj);
    badShoff.writeBigUInt64LE(BigInt(obj.length * 4), 40);
    elfInvalid(badShoff, /section header table runs past the end.*at offset/);
    const badEnt = Buffer.from(obj);
    badEnt.writeUInt16LE(40, 58);
    elfInvalid(badEnt, /section header entry size 40/);
  });

  it('appends global symbols and sections without moving what is there', () => {
    const { file, symbolIndex, sectionIndex } = appendToRelocatable(obj, {
      symbols: [{ name: 'added_sym', type: STT_NOTYPE, bind: STB_GLOBAL, shndx: SHN_ABS, value: 42n, size: 0 }],
      sections: [
        {
          name: '.added',
          type: SHT_PROGBITS,
          flags: SHF_ALLOC,
          addralign: 8,
          entsize: 0,
          data: Buffer.from('hello'),
          link: 0,
          info: 0,
        },
      ],
    });
    const before = readElf(obj);
    const after = readElf(file);
    assert.equal(after.sections.length, before.sections.length + 1);
    assert.equal(after.symbols.length, before.symbols.length + 1);
    before.symbols.forEach((s, i) => assert.equal(after.symbols[i]?.name, s.name));
    before.sections.forEach((s, i) => assert.equal(after.sections[i]?.name, s.name));
    assert.equal(after.symbols[symbolIndex[0] ?? -1]?.name, 'added_sym');
    assert.equal(after.sections[sectionIndex[0] ?? -1]?.data.toString(), 'hello');
    const path = join(cc.dir, 'appended.o');
    writeFileSync(path, file);
    assert.match(readelf(['-s'], path), /ABS added_sym/);
  });
});
