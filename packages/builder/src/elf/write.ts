import { LivegraftError } from '@livegraft/protocol';
import {
  EHDR_SIZE,
  ELFCLASS64,
  ELFDATA2LSB,
  EM_X86_64,
  ET_REL,
  RELA_SIZE,
  SHDR_SIZE,
  SHF_INFO_LINK,
  SHN_LORESERVE,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_RELA,
  SHT_STRTAB,
  SHT_SYMTAB,
  STB_LOCAL,
  SYM_SIZE,
} from './constants.ts';
import { invalid, readElf, type ElfFile } from './read.ts';

/** A section of an object to be written. Relocations refer to symbols by their index in `symbols`. */
export interface NewSection {
  name: string;
  type: number;
  flags: number;
  addralign: number;
  entsize?: number;
  /** Contents; for SHT_NOBITS give `size` instead. */
  data?: Buffer;
  size?: number;
  relas?: NewRela[];
}

export interface NewRela {
  offset: number;
  type: number;
  /** Index into `NewObject.symbols`, or -1 for "no symbol" (index 0). */
  symbol: number;
  addend: number;
}

export interface NewSymbol {
  name: string;
  type: number;
  bind: number;
  other?: number;
  /** Index into `NewObject.sections`, or a raw special index (SHN_UNDEF, SHN_ABS, SHN_LIVEPATCH) via `shndx`. */
  section?: number;
  shndx?: number;
  value: number;
  size: number;
}

export interface NewObject {
  sections: NewSection[];
  symbols: NewSymbol[];
}

class StringTable {
  private readonly parts: Buffer[] = [Buffer.alloc(1)];
  private length = 1;
  private readonly seen = new Map<string, number>();

  constructor(initial?: Buffer) {
    if (initial !== undefined && initial.length > 0) {
      this.parts = [initial];
      this.length = initial.length;
    }
  }

  add(s: string): number {
    if (s === '') return 0;
    const known = this.seen.get(s);
    if (known !== undefined) return known;
    const at = this.length;
    const bytes = Buffer.from(s + '\0', 'latin1');
    this.parts.push(bytes);
    this.length += bytes.length;
    this.seen.set(s, at);
    return at;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function align(n: number, a: number): number {
  const m = Math.max(1, a);
  return Math.ceil(n / m) * m;
}

function writeShdr(
  out: Buffer,
  at: number,
  h: {
    name: number;
    type: number;
    flags: number;
    offset: number;
    size: number;
    link: number;
    info: number;
    addralign: number;
    entsize: number;
  },
): void {
  out.writeUInt32LE(h.name, at);
  out.writeUInt32LE(h.type, at + 4);
  out.writeBigUInt64LE(BigInt(h.flags), at + 8);
  out.writeBigUInt64LE(0n, at + 16);
  out.writeBigUInt64LE(BigInt(h.offset), at + 24);
  out.writeBigUInt64LE(BigInt(h.size), at + 32);
  out.writeUInt32LE(h.link, at + 40);
  out.writeUInt32LE(h.info, at + 44);
  out.writeBigUInt64LE(BigInt(h.addralign), at + 48);
  out.writeBigUInt64LE(BigInt(h.entsize), at + 56);
}

function symBytes(
  name: number,
  s: { type: number; bind: number; other: number; shndx: number; value: bigint; size: number },
): Buffer {
  const b = Buffer.alloc(SYM_SIZE);
  b.writeUInt32LE(name, 0);
  b[4] = (s.bind << 4) | (s.type & 0xf);
  b[5] = s.other;
  b.writeUInt16LE(s.shndx, 6);
  b.writeBigUInt64LE(s.value, 8);
  b.writeBigUInt64LE(BigInt(s.size), 16);
  return b;
}

function relaBytes(relas: { offset: number; type: number; symbol: number; addend: number }[]): Buffer {
  const b = Buffer.alloc(relas.length * RELA_SIZE);
  relas.forEach((r, i) => {
    b.writeBigUInt64LE(BigInt(r.offset), i * RELA_SIZE);
    b.writeBigUInt64LE((BigInt(r.symbol) << 32n) | BigInt(r.type), i * RELA_SIZE + 8);
    b.writeBigInt64LE(BigInt(r.addend), i * RELA_SIZE + 16);
  });
  return b;
}

interface Layout {
  name: number;
  type: number;
  flags: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
  data: Buffer | undefined;
  offset: number;
}

/**
 * Writes a new x86-64 relocatable object: the null section, the given sections, one `.rela<name>`
 * per section with relocations, then `.symtab`, `.strtab`, `.shstrtab`. Symbols are ordered
 * null, locals, globals (sh_info = first global); relocations are renumbered accordingly.
 */
export function writeRelocatable(obj: NewObject): Buffer {
  const shstr = new StringTable();
  const str = new StringTable();
  const n = obj.sections.length;
  if (n + 4 >= SHN_LORESERVE) throw new LivegraftError('ELF_TOO_LARGE', `too many sections (${n}) for one object`);

  // Symbol order: null, locals (as given), globals (as given).
  const order = [
    ...obj.symbols.map((s, i) => ({ s, i })).filter((x) => x.s.bind === STB_LOCAL),
    ...obj.symbols.map((s, i) => ({ s, i })).filter((x) => x.s.bind !== STB_LOCAL),
  ];
  const newIndex = new Map<number, number>();
  order.forEach((x, k) => newIndex.set(x.i, k + 1));
  const firstGlobal = 1 + order.filter((x) => x.s.bind === STB_LOCAL).length;

  const relaSections = obj.sections.map((s, i) => ({ s, i })).filter((x) => (x.s.relas?.length ?? 0) > 0);
  const symtabIdx = 1 + n + relaSections.length;
  const layouts: Layout[] = [];
  for (const s of obj.sections) {
    layouts.push({
      name: shstr.add(s.name),
      type: s.type,
      flags: s.flags,
      size: s.type === SHT_NOBITS ? (s.size ?? 0) : (s.data?.length ?? 0),
      link: 0,
      info: 0,
      addralign: s.addralign,
      entsize: s.entsize ?? 0,
      data: s.type === SHT_NOBITS ? undefined : (s.data ?? Buffer.alloc(0)),
      offset: 0,
    });
  }
  for (const { s, i } of relaSections) {
    const relas = (s.relas ?? []).map((r) => {
      const sym = r.symbol < 0 ? 0 : newIndex.get(r.symbol);
      if (sym === undefined)
        throw new LivegraftError('ELF_WRITE', `relocation in ${s.name} refers to missing symbol ${r.symbol}`);
      return { ...r, symbol: sym };
    });
    const data = relaBytes(relas);
    layouts.push({
      name: shstr.add(`.rela${s.name}`),
      type: SHT_RELA,
      flags: SHF_INFO_LINK,
      size: data.length,
      link: symtabIdx,
      info: i + 1,
      addralign: 8,
      entsize: RELA_SIZE,
      data,
      offset: 0,
    });
  }
  const syms: Buffer[] = [Buffer.alloc(SYM_SIZE)];
  for (const { s } of order) {
    let shndx = s.shndx ?? SHN_UNDEF;
    if (s.section !== undefined) {
      if (s.section < 0 || s.section >= n)
        throw new LivegraftError('ELF_WRITE', `symbol ${s.name} in missing section ${s.section}`);
      shndx = s.section + 1;
    }
    syms.push(symBytes(str.add(s.name), { ...s, other: s.other ?? 0, shndx, value: BigInt(s.value) }));
  }
  const symData = Buffer.concat(syms);
  const strData = str.bytes();
  layouts.push({
    name: shstr.add('.symtab'),
    type: SHT_SYMTAB,
    flags: 0,
    size: symData.length,
    link: symtabIdx + 1,
    info: firstGlobal,
    addralign: 8,
    entsize: SYM_SIZE,
    data: symData,
    offset: 0,
  });
  layouts.push({
    name: shstr.add('.strtab'),
    type: SHT_STRTAB,
    flags: 0,
    size: strData.length,
    link: 0,
    info: 0,
    addralign: 1,
    entsize: 0,
    data: strData,
    offset: 0,
  });
  const shstrName = shstr.add('.shstrtab');
  const shstrData = shstr.bytes();
  layouts.push({
    name: shstrName,
    type: SHT_STRTAB,
    flags: 0,
    size: shstrData.length,
    link: 0,
    info: 0,
    addralign: 1,
    entsize: 0,
    data: shstrData,
    offset: 0,
  });

  let at = EHDR_SIZE;
  for (const l of layouts) {
    if (l.data === undefined) continue;
    at = align(at, l.addralign);
    l.offset = at;
    at += l.data.length;
  }
  const shoff = align(at, 8);
  const out = Buffer.alloc(shoff + (layouts.length + 1) * SHDR_SIZE);
  writeEhdr(out, shoff, layouts.length + 1, layouts.length);
  for (const l of layouts) if (l.data !== undefined) l.data.copy(out, l.offset);
  layouts.forEach((l, i) => writeShdr(out, shoff + (i + 1) * SHDR_SIZE, l));
  return out;
}

function writeEhdr(out: Buffer, shoff: number, shnum: number, shstrndx: number): void {
  out.writeUInt32BE(0x7f454c46, 0);
  out[4] = ELFCLASS64;
  out[5] = ELFDATA2LSB;
  out[6] = 1; // EV_CURRENT
  out.writeUInt16LE(ET_REL, 16);
  out.writeUInt16LE(EM_X86_64, 18);
  out.writeUInt32LE(1, 20);
  out.writeBigUInt64LE(BigInt(shoff), 40);
  out.writeUInt16LE(EHDR_SIZE, 52);
  out.writeUInt16LE(SHDR_SIZE, 58);
  out.writeUInt16LE(shnum, 60);
  out.writeUInt16LE(shstrndx, 62);
}

/** A section appended to an existing object; `relocates` names the section a SHT_RELA applies to. */
export interface AppendSection {
  name: string;
  type: number;
  flags: number;
  addralign: number;
  entsize: number;
  data: Buffer;
  /** sh_link: 'symtab' for the object's .symtab, or a raw index. */
  link: 'symtab' | number;
  info: number;
}

export interface AppendSymbol {
  name: string;
  type: number;
  bind: number;
  shndx: number;
  value: bigint;
  size: number;
}

/**
 * Appends global symbols and sections to an existing relocatable object without moving anything
 * that is already there: the original bytes are kept, new (grown) .symtab/.strtab/.shstrtab and a
 * new section header table are written after them, so existing section and symbol indices stay
 * valid. Returns the new file and the indices given to the new symbols and sections.
 */
export function appendToRelocatable(
  buf: Buffer,
  add: { symbols: AppendSymbol[]; sections: AppendSection[] },
): { file: Buffer; symbolIndex: number[]; sectionIndex: number[] } {
  const elf: ElfFile = readElf(buf);
  if (elf.type !== ET_REL) throw invalid(`object type ${elf.type} is not relocatable`, 16);
  const symtab = elf.sections[elf.symtabIndex];
  if (symtab === undefined || elf.symtabIndex === 0) throw invalid('object has no .symtab', 0);
  const strtab = elf.sections[symtab.link];
  const shstrtab = elf.sections[elf.shstrndx];
  if (strtab === undefined || shstrtab === undefined) throw invalid('object lacks its string tables', 0);
  if (add.symbols.some((s) => s.bind === STB_LOCAL)) {
    throw new LivegraftError('ELF_WRITE', 'only global symbols can be appended (locals must precede globals)');
  }
  const shnum = elf.sections.length + add.sections.length;
  if (shnum >= SHN_LORESERVE) throw new LivegraftError('ELF_TOO_LARGE', `too many sections (${shnum})`);

  const str = new StringTable(Buffer.from(strtab.data));
  const shstr = new StringTable(Buffer.from(shstrtab.data));
  const firstSym = elf.symbols.length;
  const newSyms = add.symbols.map((s) => symBytes(str.add(s.name), { ...s, other: 0 }));
  const symData = Buffer.concat([symtab.data, ...newSyms]);
  const strData = str.bytes();
  const secNames = add.sections.map((s) => shstr.add(s.name));
  const shstrData = shstr.bytes();

  const tail: { data: Buffer; align: number; offset: number }[] = [
    { data: symData, align: 8, offset: 0 },
    { data: strData, align: 1, offset: 0 },
    { data: shstrData, align: 1, offset: 0 },
    ...add.sections.map((s) => ({ data: s.data, align: Math.max(1, s.addralign), offset: 0 })),
  ];
  let at = buf.length;
  for (const t of tail) {
    at = align(at, t.align);
    t.offset = at;
    at += t.data.length;
  }
  const shoff = align(at, 8);
  const out = Buffer.alloc(shoff + shnum * SHDR_SIZE);
  buf.copy(out, 0);
  for (const t of tail) t.data.copy(out, t.offset);
  const oldShoff = Number(buf.readBigUInt64LE(40));
  buf.copy(out, shoff, oldShoff, oldShoff + elf.sections.length * SHDR_SIZE);
  const patch = (index: number, offset: number, size: number): void => {
    out.writeBigUInt64LE(BigInt(offset), shoff + index * SHDR_SIZE + 24);
    out.writeBigUInt64LE(BigInt(size), shoff + index * SHDR_SIZE + 32);
  };
  const [symT, strT, shstrT] = tail as [(typeof tail)[0], (typeof tail)[0], (typeof tail)[0]];
  patch(elf.symtabIndex, symT.offset, symData.length);
  patch(symtab.link, strT.offset, strData.length);
  patch(elf.shstrndx, shstrT.offset, shstrData.length);
  add.sections.forEach((s, k) => {
    const t = tail[3 + k];
    if (t === undefined) return;
    writeShdr(out, shoff + (elf.sections.length + k) * SHDR_SIZE, {
      name: secNames[k] ?? 0,
      type: s.type,
      flags: s.flags,
      offset: t.offset,
      size: s.data.length,
      link: s.link === 'symtab' ? elf.symtabIndex : s.link,
      info: s.info,
      addralign: s.addralign,
      entsize: s.entsize,
    });
  });
  out.writeBigUInt64LE(BigInt(shoff), 40);
  out.writeUInt16LE(shnum, 60);
  return {
    file: out,
    symbolIndex: add.symbols.map((_, k) => firstSym + k),
    sectionIndex: add.sections.map((_, k) => elf.sections.length + k),
  };
}

export { relaBytes };
