import {
  isPcRelative,
  SHF_EXECINSTR,
  SHN_ABS,
  SHN_COMMON,
  SHN_LORESERVE,
  SHN_UNDEF,
  SHT_NOBITS,
  STT_FILE,
  STT_FUNC,
  STT_NOTYPE,
  STT_OBJECT,
  STT_SECTION,
} from '../elf/constants.ts';
import { readElf, type ElfFile, type ElfRela, type ElfSection, type ElfSymbol } from '../elf/read.ts';
import { canonicalName, isMergeableStrings } from './names.ts';

/**
 * Where a relocation really points: a defined symbol (plus offset), an undefined external name,
 * a piece of a mergeable string/constant section, or an anonymous place in a section.
 */
export type Target =
  | { kind: 'symbol'; symbol: ElfSymbol; section: ElfSection; offset: number }
  | { kind: 'external'; name: string; symbol: ElfSymbol; offset: number }
  | { kind: 'string'; section: ElfSection; start: number; end: number; offset: number }
  | { kind: 'constant'; section: ElfSection; start: number; end: number; offset: number }
  | { kind: 'anonymous'; section: ElfSection; offset: number }
  | { kind: 'none' };

/** A relocatable object with the look-ups the diff and the extraction need. */
export class ObjectModel {
  readonly elf: ElfFile;
  /** Defined FUNC/OBJECT (and named NOTYPE) symbols per section, sorted by value. */
  private readonly bySection = new Map<number, ElfSymbol[]>();
  /** Section index → set of offsets recorded in __mcount_loc (ftrace call sites). */
  readonly mcount = new Map<number, Set<number>>();

  constructor(buf: Buffer) {
    this.elf = readElf(buf);
    for (const s of this.elf.symbols) {
      if (s.index === 0 || s.shndx === SHN_UNDEF || s.shndx >= SHN_LORESERVE) continue;
      if (s.type === STT_SECTION || s.type === STT_FILE) continue;
      if (s.type === STT_NOTYPE && (s.name === '' || s.name.startsWith('.L'))) continue;
      const list = this.bySection.get(s.shndx) ?? [];
      list.push(s);
      this.bySection.set(s.shndx, list);
    }
    for (const list of this.bySection.values()) list.sort((a, b) => Number(a.value - b.value) || b.size - a.size);
    const mc = this.elf.sections.find((s) => s.name === '__mcount_loc');
    if (mc !== undefined) {
      for (const r of this.relasOf(mc.index)) {
        const sym = this.elf.symbols[r.symbol];
        if (sym === undefined || sym.shndx === SHN_UNDEF || sym.shndx >= SHN_LORESERVE) continue;
        const at = (sym.type === STT_SECTION ? 0 : Number(sym.value)) + r.addend;
        const set = this.mcount.get(sym.shndx) ?? new Set<number>();
        set.add(at);
        this.mcount.set(sym.shndx, set);
      }
    }
  }

  section(index: number): ElfSection | undefined {
    return this.elf.sections[index];
  }

  relasOf(sectionIndex: number): ElfRela[] {
    return this.elf.relas.get(sectionIndex) ?? [];
  }

  symbolsIn(sectionIndex: number): ElfSymbol[] {
    return this.bySection.get(sectionIndex) ?? [];
  }

  /** Functions: STT_FUNC symbols defined in an executable section. */
  functions(): ElfSymbol[] {
    return this.elf.symbols.filter((s) => {
      if (s.type !== STT_FUNC || s.shndx === SHN_UNDEF || s.shndx >= SHN_LORESERVE) return false;
      const sec = this.section(s.shndx);
      return sec !== undefined && (sec.flags & SHF_EXECINSTR) !== 0;
    });
  }

  /** Data objects: STT_OBJECT symbols defined in a section. */
  objects(): ElfSymbol[] {
    return this.elf.symbols.filter((s) => s.type === STT_OBJECT && s.shndx !== SHN_UNDEF && s.shndx < SHN_LORESERVE);
  }

  /** The byte range a symbol covers; a function alone in its section owns the whole section (padding too). */
  rangeOf(sym: ElfSymbol): { start: number; end: number } {
    const start = Number(sym.value);
    const sec = this.section(sym.shndx);
    if (sym.type === STT_FUNC && sec !== undefined) {
      const funcs = this.symbolsIn(sym.shndx).filter((s) => s.type === STT_FUNC);
      if (funcs.length === 1) return { start: 0, end: sec.size };
    }
    return { start, end: start + sym.size };
  }

  /** The bytes of a symbol's range (zeros for NOBITS). */
  bytesOf(sym: ElfSymbol): Buffer {
    const sec = this.section(sym.shndx);
    const { start, end } = this.rangeOf(sym);
    if (sec === undefined) return Buffer.alloc(0);
    if (sec.type === SHT_NOBITS) return Buffer.alloc(end - start);
    return sec.data.subarray(start, end);
  }

  /** Relocations inside [start, end) of a section, in offset order. */
  relasIn(sectionIndex: number, start: number, end: number): ElfRela[] {
    return this.relasOf(sectionIndex)
      .filter((r) => r.offset >= start && r.offset < end)
      .sort((a, b) => a.offset - b.offset);
  }

  /** The symbol defined at `offset` of a section (covering it, or starting/ending exactly there). */
  symbolAt(sectionIndex: number, offset: number, allowEnd = false): ElfSymbol | undefined {
    let best: ElfSymbol | undefined;
    for (const s of this.symbolsIn(sectionIndex)) {
      const v = Number(s.value);
      if (v > offset) break;
      if (offset < v + s.size || (offset === v && s.size === 0) || (allowEnd && offset === v + s.size)) {
        // Prefer the named function/object over NOTYPE labels and the innermost match.
        if (best === undefined || best.type === STT_NOTYPE || v >= Number(best.value)) best = s;
      }
    }
    return best;
  }

  /**
   * Resolves what a relocation points at. PC-relative code relocations carry the distance from
   * the field to the end of the instruction in their addend (-4, or less when an immediate
   * follows), so the place aimed at is found by trying those biases.
   */
  target(r: ElfRela, fromSection: ElfSection): Target {
    const sym = this.elf.symbols[r.symbol];
    if (sym === undefined || r.symbol === 0) return { kind: 'none' };
    if (sym.shndx === SHN_UNDEF || sym.shndx === SHN_COMMON)
      return { kind: 'external', name: sym.name, symbol: sym, offset: r.addend };
    if (sym.shndx === SHN_ABS || sym.shndx >= SHN_LORESERVE)
      return { kind: 'external', name: sym.name, symbol: sym, offset: r.addend };
    const sec = this.section(sym.shndx);
    if (sec === undefined) return { kind: 'none' };
    const base = (sym.type === STT_SECTION ? 0 : Number(sym.value)) + r.addend;
    const biases = isPcRelative(r.type) && (fromSection.flags & SHF_EXECINSTR) !== 0 ? [4, 5, 6, 8, 0] : [0];
    if (isMergeableStrings(sec.flags, sec.name)) {
      const at = Math.min(Math.max(0, base + (biases[0] ?? 0)), sec.size);
      let start = at;
      while (start > 0 && sec.data[start - 1] !== 0) start--;
      let end = sec.data.indexOf(0, at);
      end = end < 0 ? sec.size : end + 1;
      return { kind: 'string', section: sec, start, end, offset: base - start };
    }
    if ((sec.flags & 0x10) !== 0 && sec.entsize > 0) {
      const at = base + (biases[0] ?? 0);
      const start = Math.max(0, Math.floor(at / sec.entsize) * sec.entsize);
      return {
        kind: 'constant',
        section: sec,
        start,
        end: Math.min(sec.size, start + sec.entsize),
        offset: base - start,
      };
    }
    if (sym.type !== STT_SECTION && sym.name !== '' && !sym.name.startsWith('.L')) {
      return { kind: 'symbol', symbol: sym, section: sec, offset: r.addend };
    }
    for (const b of biases) {
      const t = this.symbolAt(sec.index, base + b, b === 0);
      if (t !== undefined) return { kind: 'symbol', symbol: t, section: sec, offset: base - Number(t.value) };
    }
    return { kind: 'anonymous', section: sec, offset: base };
  }

  /** A stable identity of a relocation target, equal across builds when the target did not change. */
  identity(t: Target): string {
    switch (t.kind) {
      case 'none':
        return 'none';
      case 'external':
        return `ext:${t.name}${sign(t.offset)}`;
      case 'symbol':
        return `sym:${canonicalName(t.symbol.name)}${sign(t.offset)}`;
      case 'string':
        return `str:${JSON.stringify(t.section.data.toString('latin1', t.start, t.end))}${sign(t.offset)}`;
      case 'constant':
        return `cst:${t.section.data.subarray(t.start, t.end).toString('hex')}${sign(t.offset)}`;
      case 'anonymous':
        return `sec:${canonicalName(t.section.name)}${sign(t.offset)}`;
    }
  }
}

function sign(n: number): string {
  return n === 0 ? '' : n > 0 ? `+${n}` : `${n}`;
}
