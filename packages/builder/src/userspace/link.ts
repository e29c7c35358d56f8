import { LivegraftError, type UserspaceReloc } from '@livegraft/protocol';
import {
  R_X86_64_64,
  R_X86_64_PC32,
  R_X86_64_PLT32,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHN_UNDEF,
  SHT_NOBITS,
  STT_FUNC,
  STT_SECTION,
} from '../elf/constants.ts';
import type { ElfRela, ElfSection, ElfSymbol } from '../elf/read.ts';
import type { ObjectModel } from '../klp/model.ts';
import type { Refusal } from '../klp/types.ts';
import { uniqueSymbol, type SharedLibrary } from './shlib.ts';

const R_X86_64_GOTPCREL = 9;
const R_X86_64_GOTTPOFF = 22;
const R_X86_64_GOTPCRELX = 41;
const R_X86_64_REX_GOTPCRELX = 42;
const STT_TLS = 6;
/** PC-relative code relocations aim at the end of the instruction: the place is found with these biases. */
const PC_BIASES = [4, 5, 6, 8, 0];
/** Largest code block a level may carry (the helper maps it in every process). */
export const MAX_CODE_BYTES = 4 * 1024 * 1024;

interface Place {
  base: 'code' | 'library';
  /** Offset from that base of the anchor (a symbol or a copied section). */
  at: number;
  /** The anchor's offset in its section of the object (0 for a copied section). */
  anchorValue: number;
  /** What it is, for people. */
  what: string;
}

interface IntraFixup {
  offset: number;
  kind: 'pc32' | 'abs64';
  target: number;
  addend: number;
}

/** A carried function: its entry in the code block, and the library function it replaces (if any). */
export interface PlacedFunction {
  name: string;
  codeOffset: number;
  replaces?: string;
}

/**
 * Lays out the new code of one or more translation units in one block and
 * resolves each relocation: references inside the block are fixed now
 * (position independent); references to the library become relocations the
 * helper applies against the load base (functions and data directly, imported
 * functions through a trampoline on their GOT slot, GOT and TLS slots as
 * they are).
 */
export class CodeBlock {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  readonly relocs: UserspaceReloc[] = [];
  private readonly fixups: IntraFixup[] = [];
  private readonly trampolines = new Map<string, number>();
  readonly placed: PlacedFunction[] = [];
  readonly refusals: Refusal[] = [];
  readonly warnings: string[] = [];

  /** Per unit: library addresses read back from the shipped code of the unit's unchanged originals. */
  private readonly learned = new Map<
    string,
    { symbols: Map<string, number | null>; sections: Map<string, number | null> }
  >();

  constructor(private readonly lib: SharedLibrary) {}

  /**
   * Reads, from the shipped copies of the unit's original functions (already
   * checked to match the rebuild), where each PC-relative reference lands in
   * the library: S = field - addend + place. This finds what symbol tables
   * do not say: IFUNC and hidden-alias calls through the library's own PLT,
   * static functions, and the start of the unit's sections (its static data).
   */
  learn(om: ObjectModel, unit: string, shipped: ReadonlyMap<string, number>): void {
    const symbols = new Map<string, number | null>();
    const sections = new Map<string, number | null>();
    const put = (map: Map<string, number | null>, key: string, value: number): void => {
      const had = map.get(key);
      if (had === undefined) map.set(key, value);
      else if (had !== value) map.set(key, null);
    };
    for (const f of om.functions()) {
      const at = shipped.get(f.name);
      const sec = om.section(f.shndx);
      if (at === undefined || sec === undefined) continue;
      const start = Number(f.value);
      for (const r of om.relasIn(sec.index, start, start + f.size)) {
        if (r.type !== R_X86_64_PC32 && r.type !== R_X86_64_PLT32) continue;
        const place = at + (r.offset - start);
        const field = this.lib.bytesAt(place, 4).readInt32LE(0);
        const s = field - r.addend + place;
        const sym = om.elf.symbols[r.symbol];
        if (sym === undefined || r.symbol === 0) continue;
        if (sym.type === STT_SECTION) {
          const name = om.section(sym.shndx)?.name;
          if (name !== undefined) put(sections, name, s);
        } else put(symbols, sym.name, s);
      }
    }
    this.learned.set(unit, { symbols, sections });
  }

  private learnedSymbol(unit: string, name: string): number | undefined {
    return this.learned.get(unit)?.symbols.get(name) ?? undefined;
  }

  private learnedSection(unit: string, name: string): number | undefined {
    return this.learned.get(unit)?.sections.get(name) ?? undefined;
  }

  private append(bytes: Buffer, align: number): number {
    const pad = (align - (this.size % align)) % align;
    if (pad > 0) this.chunks.push(Buffer.alloc(pad, 0xcc));
    this.size += pad;
    const at = this.size;
    this.chunks.push(Buffer.from(bytes));
    this.size += bytes.length;
    if (this.size > MAX_CODE_BYTES)
      throw new LivegraftError('USERSPACE_CODE_TOO_LARGE', `the new code exceeds ${MAX_CODE_BYTES} bytes`);
    return at;
  }

  /**
   * Adds the functions `carry` of one unit. `replaces` maps a carried
   * function's name to the library function it stands in for; `correlation`
   * maps patched names to original names.
   */
  addUnit(
    m: ObjectModel,
    unit: string,
    carry: readonly string[],
    replaces: Map<string, string>,
    correlation: Map<string, string>,
    sameLayout: (patchedSection: ElfSection) => boolean = () => false,
  ): void {
    const byName = new Map(m.functions().map((f) => [f.name, f]));
    const placedAt = new Map<ElfSymbol, number>();
    const copiedSections = new Map<number, number>();
    const pending: { sec: ElfSection; start: number; end: number; at: number }[] = [];
    for (const name of carry) {
      const f = byName.get(name);
      const sec = f === undefined ? undefined : m.section(f.shndx);
      if (f === undefined || sec === undefined)
        throw new LivegraftError('USERSPACE_INTERNAL', `${unit}: no function ${name}`);
      const { start, end } = m.rangeOf(f);
      const at = this.append(sec.data.subarray(start, end), 16);
      placedAt.set(f, at - start + Number(f.value));
      const replaced = replaces.get(name);
      this.placed.push({
        name,
        codeOffset: at - start + Number(f.value),
        ...(replaced !== undefined ? { replaces: replaced } : {}),
      });
      pending.push({ sec, start, end, at });
    }
    const locate = (sec: ElfSection, q: number, pcRelative: boolean): Place | undefined => {
      // The anchor: a symbol of `sec` covering the place aimed at.
      const biases = pcRelative ? PC_BIASES : [0];
      if ((sec.flags & SHF_EXECINSTR) !== 0) {
        for (const b of biases) {
          const s = m.symbolAt(sec.index, q + b, b === 0);
          if (s === undefined || s.type !== STT_FUNC) continue;
          const here = placedAt.get(s);
          if (here !== undefined) return { base: 'code', at: here, anchorValue: Number(s.value), what: s.name };
          const orig = correlation.get(s.name) ?? s.name;
          const seen = this.learnedSymbol(unit, orig);
          if (seen !== undefined) return { base: 'library', at: seen, anchorValue: Number(s.value), what: orig };
          const ls = uniqueSymbol(this.lib, orig, unit);
          if (ls !== undefined) return { base: 'library', at: ls.offset, anchorValue: Number(s.value), what: orig };
          this.refusals.push({
            symbol: s.name,
            unit,
            reason: `the new code calls ${orig}, which the shipped library has no symbol for (a static function: install the package's debug symbols, or carry the function)`,
          });
          return undefined;
        }
        return undefined;
      }
      if ((sec.flags & SHF_ALLOC) !== 0 && (sec.flags & SHF_WRITE) === 0 && sec.type !== SHT_NOBITS) {
        let at = copiedSections.get(sec.index);
        if (at === undefined) {
          at = this.append(sec.data, Math.max(1, Math.min(sec.addralign, 64)));
          copiedSections.set(sec.index, at);
          pending.push({ sec, start: 0, end: sec.size, at });
        }
        return { base: 'code', at, anchorValue: 0, what: sec.name };
      }
      const secBase = this.learnedSection(unit, sec.name);
      if (secBase !== undefined && sameLayout(sec))
        return { base: 'library', at: secBase, anchorValue: 0, what: sec.name };
      for (const b of biases) {
        const s = m.symbolAt(sec.index, q + b, b === 0);
        if (s === undefined) continue;
        const orig = correlation.get(s.name) ?? s.name;
        const seen = this.learnedSymbol(unit, orig);
        if (seen !== undefined) return { base: 'library', at: seen, anchorValue: Number(s.value), what: orig };
        const ls = uniqueSymbol(this.lib, orig, unit);
        if (ls !== undefined) return { base: 'library', at: ls.offset, anchorValue: Number(s.value), what: orig };
        this.refusals.push({
          symbol: s.name,
          unit,
          reason: `the new code uses the variable ${orig} (${sec.name}), which the shipped library has no symbol for`,
        });
        return undefined;
      }
      this.refusals.push({
        symbol: sec.name,
        unit,
        reason: `the new code uses unnamed data of ${sec.name}: the running library's copy cannot be found without a symbol`,
      });
      return undefined;
    };
    // Relocations of every copied range (functions, then read-only data copied on demand).
    for (let i = 0; i < pending.length; i++) {
      const piece = pending[i];
      if (piece === undefined) continue;
      for (const r of m.relasIn(piece.sec.index, piece.start, piece.end))
        this.resolve(m, unit, piece.sec, r, piece.at - piece.start, locate, (piece.sec.flags & SHF_EXECINSTR) !== 0);
    }
  }

  private resolve(
    m: ObjectModel,
    unit: string,
    sec: ElfSection,
    r: ElfRela,
    shift: number,
    locate: (sec: ElfSection, q: number, pcRelative: boolean) => Place | undefined,
    inCode: boolean,
  ): void {
    const at = r.offset + shift;
    const sym = m.elf.symbols[r.symbol];
    const refuse = (why: string): void => {
      if (!inCode) {
        this.warnings.push(
          `${unit}: left a relocation in copied ${sec.name}+0x${r.offset.toString(16)} unresolved: ${why}`,
        );
        return;
      }
      this.refusals.push({ symbol: sym?.name ?? '?', unit, reason: why });
    };
    if (sym === undefined || r.symbol === 0) return refuse(`relocation type ${r.type} without a symbol`);
    const pcRel = r.type === R_X86_64_PC32 || r.type === R_X86_64_PLT32;
    if (sym.shndx === SHN_UNDEF) {
      const seen = pcRel ? this.learnedSymbol(unit, sym.name) : undefined;
      if (seen !== undefined) return this.emit(at, 'pc32', 'library', seen, r.addend, sym.name);
      this.resolveExternal(sym.name, r, at, refuse);
      return;
    }
    const target = m.section(sym.shndx);
    if (target === undefined) return refuse(`symbol ${sym.name} in an unknown section`);
    const q = (sym.type === STT_SECTION ? 0 : Number(sym.value)) + r.addend;
    if (r.type !== R_X86_64_PC32 && r.type !== R_X86_64_PLT32 && r.type !== R_X86_64_64)
      return refuse(`relocation type ${r.type} against ${sym.name || target.name} is not supported in user-space code`);
    const place = locate(target, q, pcRel && inCode);
    if (place === undefined) return;
    this.emit(at, pcRel ? 'pc32' : 'abs64', place.base, place.at, q - place.anchorValue, place.what);
  }

  private resolveExternal(name: string, r: ElfRela, at: number, refuse: (why: string) => void): void {
    const bare = name.replace(/@.*$/, '');
    const defined = this.lib.symbols.get(bare)?.filter((s) => s.type !== STT_TLS);
    const def = defined !== undefined && defined.length === 1 ? defined[0] : undefined;
    const slot = this.lib.gotSlots.get(bare);
    switch (r.type) {
      case R_X86_64_PC32:
      case R_X86_64_PLT32: {
        if (def !== undefined) return this.emit(at, 'pc32', 'library', def.offset, r.addend, bare);
        if (slot !== undefined) {
          const tramp = this.trampoline(bare, slot);
          this.fixups.push({ offset: at, kind: 'pc32', target: tramp, addend: r.addend });
          return;
        }
        return refuse(`${bare} is neither defined nor imported by the shipped library`);
      }
      case R_X86_64_64:
        if (def !== undefined) return this.emit(at, 'abs64', 'library', def.offset, r.addend, bare);
        return refuse(`an absolute address of ${bare}, which the shipped library does not define`);
      case R_X86_64_GOTPCREL:
      case R_X86_64_GOTPCRELX:
      case R_X86_64_REX_GOTPCRELX: {
        if (slot !== undefined) return this.emit(at, 'pc32', 'library', slot, r.addend, `${bare}@got`);
        if (def !== undefined && r.type !== R_X86_64_GOTPCREL && this.opcodeAt(at - 2) === 0x8b) {
          // mov foo@GOTPCREL(%rip), %reg → lea foo(%rip), %reg: what the linker did in the library.
          this.patchByte(at - 2, 0x8d);
          return this.emit(at, 'pc32', 'library', def.offset, r.addend, bare);
        }
        return refuse(`a GOT entry of ${bare}, which the shipped library does not have`);
      }
      case R_X86_64_GOTTPOFF: {
        const tls = this.lib.symbols.get(bare)?.find((s) => s.type === STT_TLS);
        const tslot =
          this.lib.tlsSlots.get(bare) ?? (tls !== undefined ? this.lib.tlsSlots.get(`@${tls.offset}`) : undefined);
        if (tslot !== undefined) return this.emit(at, 'pc32', 'library', tslot, r.addend, `${bare}@gottpoff`);
        return refuse(`the thread-local ${bare} has no initial-exec GOT slot in the shipped library`);
      }
      default:
        return refuse(`relocation type ${r.type} against ${bare} is not supported in user-space code`);
    }
  }

  private opcodeAt(offset: number): number | undefined {
    let pos = 0;
    for (const c of this.chunks) {
      if (offset < pos + c.length) return c[offset - pos];
      pos += c.length;
    }
    return undefined;
  }

  private patchByte(offset: number, value: number): void {
    let pos = 0;
    for (const c of this.chunks) {
      if (offset < pos + c.length) {
        c[offset - pos] = value;
        return;
      }
      pos += c.length;
    }
  }

  private trampoline(name: string, slot: number): number {
    const have = this.trampolines.get(name);
    if (have !== undefined) return have;
    // jmp *slot(%rip); the slot is the library's GOT entry for the imported function.
    const at = this.append(Buffer.from([0xff, 0x25, 0, 0, 0, 0, 0xcc, 0xcc]), 8);
    this.emit(at + 2, 'pc32', 'library', slot, -4, `${name}@got`);
    this.trampolines.set(name, at);
    return at;
  }

  private emit(
    offset: number,
    kind: 'pc32' | 'abs64',
    base: 'code' | 'library',
    target: number,
    addend: number,
    what: string,
  ): void {
    if (base === 'code' && kind === 'pc32') {
      this.fixups.push({ offset, kind, target, addend });
      return;
    }
    if (target < 0 || addend < -0x8000_0000 || addend > 0x7fff_ffff)
      throw new LivegraftError('USERSPACE_RELOC_RANGE', `a relocation against ${what} is out of range`);
    this.relocs.push({ offset, kind, base, target, addend, symbol: what.slice(0, 200) });
  }

  /** The finished code block: intra-block references written, library relocations listed. */
  finish(): { text: Buffer; relocs: UserspaceReloc[] } {
    const text = Buffer.concat(this.chunks);
    for (const f of this.fixups) {
      const v = f.target + f.addend - f.offset;
      if (f.kind === 'pc32') text.writeInt32LE(v, f.offset);
    }
    // The bytes a library relocation will fill are left zero, as a linker's input would have them.
    for (const r of this.relocs) {
      if (r.kind === 'pc32') text.writeInt32LE(0, r.offset);
      else text.writeBigUInt64LE(0n, r.offset);
    }
    return { text, relocs: [...this.relocs].sort((a, b) => a.offset - b.offset) };
  }
}
