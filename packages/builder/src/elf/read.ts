import { LivegraftError } from '@livegraft/protocol';
import {
  EHDR_SIZE,
  ELFCLASS64,
  ELFDATA2LSB,
  PHDR_SIZE,
  PT_LOAD,
  RELA_SIZE,
  SHDR_SIZE,
  SHF_RELA_LIVEPATCH,
  SHN_XINDEX,
  SHT_NOBITS,
  SHT_RELA,
  SHT_STRTAB,
  SHT_SYMTAB,
  SHT_SYMTAB_SHNDX,
  SYM_SIZE,
} from './constants.ts';

/** Upper bounds on what a well-formed kernel object carries; anything above is treated as corrupt. */
export const MAX_ELF_BYTES = 1024 * 1024 * 1024;
export const MAX_SECTIONS = 200_000;
export const MAX_SYMBOLS = 4_000_000;
export const MAX_SEGMENTS = 4096;
const MAX_NAME_BYTES = 4096;

export interface ElfSection {
  index: number;
  name: string;
  nameOffset: number;
  type: number;
  flags: number;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
  /** The section's bytes; empty for SHT_NOBITS (use `size`). A view into the file buffer. */
  data: Buffer;
}

export interface ElfSymbol {
  index: number;
  name: string;
  nameOffset: number;
  value: bigint;
  size: number;
  type: number;
  bind: number;
  other: number;
  shndx: number;
}

export interface ElfRela {
  offset: number;
  type: number;
  symbol: number;
  addend: number;
}

export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
  memsz: number;
}

export interface ElfFile {
  buf: Buffer;
  type: number;
  machine: number;
  sections: ElfSection[];
  segments: ElfSegment[];
  /** Index of `.symtab`, 0 when there is none. */
  symtabIndex: number;
  symbols: ElfSymbol[];
  /** Relocations keyed by the index of the section they apply to (SHT_RELA sh_info). */
  relas: Map<number, ElfRela[]>;
  /** Index of the SHT_RELA section that applies to a section, keyed like `relas`. */
  relaSectionOf: Map<number, number>;
  shstrndx: number;
}

export function invalid(what: string, offset: number, details: Record<string, unknown> = {}): LivegraftError {
  return new LivegraftError('ELF_INVALID', `invalid ELF object: ${what} (at offset 0x${offset.toString(16)})`, {
    details: { offset, ...details },
  });
}

function checkRange(buf: Buffer, offset: number, size: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0) {
    throw invalid(`${what} has an impossible offset or size`, offset, { size });
  }
  if (offset + size > buf.length) {
    throw invalid(`${what} runs past the end of the file (${offset + size} > ${buf.length} bytes)`, offset, { size });
  }
}

function u64(buf: Buffer, at: number, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} is too large (${v})`, at);
  return Number(v);
}

/** Reads a NUL-terminated name from a string table section, bounded. */
export function readString(table: Buffer, offset: number, where: number): string {
  if (offset >= table.length && offset !== 0) throw invalid(`string offset ${offset} outside its string table`, where);
  const end = table.indexOf(0, offset);
  if (end < 0 || end - offset > MAX_NAME_BYTES) throw invalid('unterminated or overlong name', where);
  return table.toString('latin1', offset, end);
}

/**
 * Parses an ELF64 little-endian object (relocatable or executable). Every count and offset is
 * checked against the file before use; a corrupt file throws ELF_INVALID naming what and where.
 */
export function readElf(buf: Buffer): ElfFile {
  if (buf.length > MAX_ELF_BYTES) throw invalid(`file of ${buf.length} bytes is larger than allowed`, 0);
  if (buf.length < EHDR_SIZE) throw invalid(`file of ${buf.length} bytes is shorter than an ELF header`, 0);
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw invalid('missing ELF magic', 0);
  if (buf[4] !== ELFCLASS64) throw invalid(`ELF class ${buf[4]} is not ELF64`, 4);
  if (buf[5] !== ELFDATA2LSB) throw invalid(`data encoding ${buf[5]} is not little-endian`, 5);
  const type = buf.readUInt16LE(16);
  const machine = buf.readUInt16LE(18);
  const phoff = u64(buf, 32, 'e_phoff');
  const shoff = u64(buf, 40, 'e_shoff');
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  const shentsize = buf.readUInt16LE(58);
  let shnum = buf.readUInt16LE(60);
  let shstrndx = buf.readUInt16LE(62);

  const segments: ElfSegment[] = [];
  if (phnum > 0) {
    if (phentsize !== PHDR_SIZE) throw invalid(`program header entry size ${phentsize} is not ${PHDR_SIZE}`, 54);
    if (phnum > MAX_SEGMENTS) throw invalid(`${phnum} program headers`, 56);
    checkRange(buf, phoff, phnum * PHDR_SIZE, 'program header table');
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * PHDR_SIZE;
      const seg: ElfSegment = {
        type: buf.readUInt32LE(at),
        flags: buf.readUInt32LE(at + 4),
        offset: u64(buf, at + 8, 'p_offset'),
        vaddr: buf.readBigUInt64LE(at + 16),
        filesz: u64(buf, at + 32, 'p_filesz'),
        memsz: u64(buf, at + 40, 'p_memsz'),
      };
      if (seg.type === PT_LOAD) checkRange(buf, seg.offset, seg.filesz, `segment ${i}`);
      segments.push(seg);
    }
  }

  const sections: ElfSection[] = [];
  if (shoff !== 0) {
    if (shentsize !== SHDR_SIZE) throw invalid(`section header entry size ${shentsize} is not ${SHDR_SIZE}`, 58);
    checkRange(buf, shoff, SHDR_SIZE, 'section header table');
    // Extended numbering: the real counts live in section 0.
    if (shnum === 0) shnum = u64(buf, shoff + 32, 'section count in sh_size of section 0');
    if (shstrndx === SHN_XINDEX) shstrndx = buf.readUInt32LE(shoff + 40);
    if (shnum > MAX_SECTIONS) throw invalid(`${shnum} sections`, 60);
    checkRange(buf, shoff, shnum * SHDR_SIZE, 'section header table');
    for (let i = 0; i < shnum; i++) {
      const at = shoff + i * SHDR_SIZE;
      const s: ElfSection = {
        index: i,
        name: '',
        nameOffset: buf.readUInt32LE(at),
        type: buf.readUInt32LE(at + 4),
        flags: u64(buf, at + 8, 'sh_flags'),
        addr: buf.readBigUInt64LE(at + 16),
        offset: u64(buf, at + 24, 'sh_offset'),
        size: u64(buf, at + 32, 'sh_size'),
        link: buf.readUInt32LE(at + 40),
        info: buf.readUInt32LE(at + 44),
        addralign: u64(buf, at + 48, 'sh_addralign'),
        entsize: u64(buf, at + 56, 'sh_entsize'),
        data: Buffer.alloc(0),
      };
      if (s.type !== SHT_NOBITS && i !== 0) {
        checkRange(buf, s.offset, s.size, `section ${i}`);
        s.data = buf.subarray(s.offset, s.offset + s.size);
      }
      sections.push(s);
    }
    if (shnum > 0) {
      const strtab = sections[shstrndx];
      if (strtab === undefined || strtab.type !== SHT_STRTAB) {
        throw invalid(`section name table index ${shstrndx} is not a string table`, 62);
      }
      for (const s of sections) s.name = readString(strtab.data, s.nameOffset, shoff + s.index * SHDR_SIZE);
    }
  }

  let symtabIndex = 0;
  const symbols: ElfSymbol[] = [];
  const symtab = sections.find((s) => s.type === SHT_SYMTAB);
  if (symtab !== undefined) {
    symtabIndex = symtab.index;
    if (symtab.size % SYM_SIZE !== 0)
      throw invalid(`.symtab size ${symtab.size} is not a multiple of ${SYM_SIZE}`, symtab.offset);
    const count = symtab.size / SYM_SIZE;
    if (count > MAX_SYMBOLS) throw invalid(`${count} symbols`, symtab.offset);
    const strtab = sections[symtab.link];
    if (strtab === undefined || strtab.type !== SHT_STRTAB) {
      throw invalid(`.symtab links to section ${symtab.link}, which is not a string table`, symtab.offset);
    }
    const xindex = sections.find((s) => s.type === SHT_SYMTAB_SHNDX && s.link === symtab.index);
    for (let i = 0; i < count; i++) {
      const at = i * SYM_SIZE;
      const d = symtab.data;
      const info = d[at + 4] ?? 0;
      let shndx = d.readUInt16LE(at + 6);
      if (shndx === SHN_XINDEX) {
        if (xindex === undefined || xindex.size < (i + 1) * 4) {
          throw invalid(`symbol ${i} uses SHN_XINDEX without a matching SHT_SYMTAB_SHNDX entry`, symtab.offset + at);
        }
        shndx = xindex.data.readUInt32LE(i * 4);
      }
      symbols.push({
        index: i,
        nameOffset: d.readUInt32LE(at),
        name: readString(strtab.data, d.readUInt32LE(at), symtab.offset + at),
        type: info & 0xf,
        bind: info >> 4,
        other: d[at + 5] ?? 0,
        shndx,
        value: d.readBigUInt64LE(at + 8),
        size: u64(d, at + 16, 'st_size'),
      });
    }
  }

  const relas = new Map<number, ElfRela[]>();
  const relaSectionOf = new Map<number, number>();
  for (const s of sections) {
    // Livepatch relocations are resolved by the kernel, not part of the object's own linking.
    if (s.type !== SHT_RELA || (s.flags & SHF_RELA_LIVEPATCH) !== 0) continue;
    if (s.size % RELA_SIZE !== 0) throw invalid(`${s.name} size ${s.size} is not a multiple of ${RELA_SIZE}`, s.offset);
    if (s.info >= sections.length) throw invalid(`${s.name} applies to missing section ${s.info}`, s.offset);
    const list: ElfRela[] = [];
    for (let at = 0; at < s.size; at += RELA_SIZE) {
      const info = s.data.readBigUInt64LE(at + 8);
      const symbol = Number(info >> 32n);
      if (s.link === symtabIndex && symbol >= symbols.length) {
        throw invalid(`${s.name} entry refers to symbol ${symbol} of ${symbols.length}`, s.offset + at);
      }
      const addend = s.data.readBigInt64LE(at + 16);
      if (addend > BigInt(Number.MAX_SAFE_INTEGER) || addend < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw invalid(`${s.name} entry has an addend out of range`, s.offset + at);
      }
      list.push({
        offset: u64(s.data, at, 'r_offset'),
        type: Number(info & 0xffffffffn),
        symbol,
        addend: Number(addend),
      });
    }
    relas.set(s.info, [...(relas.get(s.info) ?? []), ...list]);
    relaSectionOf.set(s.info, s.index);
  }

  return { buf, type, machine, sections, segments, symtabIndex, symbols, relas, relaSectionOf, shstrndx };
}

/** Finds a section by exact name. */
export function sectionByName(elf: ElfFile, name: string): ElfSection | undefined {
  return elf.sections.find((s) => s.name === name);
}

/**
 * Maps a virtual address of an executable (e.g. vmlinux) to its bytes through the PT_LOAD
 * segments. Throws ELF_INVALID when the range is not backed by file bytes.
 */
export function bytesAtAddress(elf: ElfFile, vaddr: bigint, length: number): Buffer {
  for (const seg of elf.segments) {
    if (seg.type !== PT_LOAD) continue;
    if (vaddr >= seg.vaddr && vaddr + BigInt(length) <= seg.vaddr + BigInt(seg.filesz)) {
      const at = seg.offset + Number(vaddr - seg.vaddr);
      return elf.buf.subarray(at, at + length);
    }
  }
  throw invalid(`address 0x${vaddr.toString(16)} (+${length}) is not in any loaded segment`, 0);
}
