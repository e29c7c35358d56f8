import {
  SHF_ALLOC,
  SHF_MERGE,
  SHF_STRINGS,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_PROGBITS,
  STB_GLOBAL,
  STB_LOCAL,
  STT_SECTION,
} from '../elf/constants.ts';
import { writeRelocatable, type NewRela, type NewSymbol } from '../elf/write.ts';

// The output side of extraction: the one relocatable object every unit's carried code goes into.

export interface OutSection {
  name: string;
  type: number;
  flags: number;
  addralign: number;
  entsize: number;
  chunks: Buffer[];
  size: number;
  relas: NewRela[];
  symbol: number;
}

/** Builds the one relocatable patch object from all units. */
export class PatchObjectBuilder {
  readonly sections: OutSection[] = [];
  readonly symbols: NewSymbol[] = [];
  private readonly undefs = new Map<string, number>();
  private readonly strings = new Map<string, number>();

  section(name: string, type: number, flags: number, addralign: number, entsize = 0): OutSection {
    const existing = this.sections.find((s) => s.name === name);
    if (existing !== undefined) {
      existing.addralign = Math.max(existing.addralign, addralign);
      return existing;
    }
    const index = this.sections.length;
    const symbol = this.symbols.length;
    this.symbols.push({ name: '', type: STT_SECTION, bind: STB_LOCAL, section: index, value: 0, size: 0 });
    const s: OutSection = {
      name,
      type,
      flags,
      addralign: Math.max(1, addralign),
      entsize,
      chunks: [],
      size: 0,
      relas: [],
      symbol,
    };
    this.sections.push(s);
    return s;
  }

  /** Appends bytes (or NOBITS space) aligned to `align`; returns their offset. */
  append(s: OutSection, bytes: Buffer | number, align: number): number {
    const at = Math.ceil(s.size / Math.max(1, align)) * Math.max(1, align);
    const len = typeof bytes === 'number' ? bytes : bytes.length;
    if (s.type !== SHT_NOBITS) {
      if (at > s.size) s.chunks.push(Buffer.alloc(at - s.size));
      s.chunks.push(typeof bytes === 'number' ? Buffer.alloc(len) : Buffer.from(bytes));
    }
    s.size = at + len;
    return at;
  }

  /**
   * Defines a global function the patch adds (a new helper other units call):
   * references made before or after this point all resolve to it.
   */
  defineGlobal(sym: NewSymbol): void {
    const def = { ...sym, bind: STB_GLOBAL };
    const known = this.undefs.get(sym.name);
    if (known !== undefined) {
      this.symbols[known] = def;
      return;
    }
    this.undefs.set(sym.name, this.symbols.length);
    this.symbols.push(def);
  }

  undef(name: string): number {
    const known = this.undefs.get(name);
    if (known !== undefined) return known;
    const i = this.symbols.length;
    this.symbols.push({ name, type: 0, bind: STB_GLOBAL, shndx: SHN_UNDEF, value: 0, size: 0 });
    this.undefs.set(name, i);
    return i;
  }

  /** A NUL-terminated string piece, shared by content. */
  stringPiece(bytes: Buffer): { out: OutSection; at: number } {
    const out = this.section('.rodata.livegraft.str', SHT_PROGBITS, SHF_ALLOC | SHF_MERGE | SHF_STRINGS, 1, 1);
    const key = bytes.toString('latin1');
    let at = this.strings.get(key);
    if (at === undefined) {
      at = this.append(out, bytes, 1);
      this.strings.set(key, at);
    }
    return { out, at };
  }

  build(): Buffer {
    // An empty .note.GNU-stack says the code needs no executable stack (as gcc's objects say).
    this.section('.note.GNU-stack', SHT_PROGBITS, 0, 1);
    return writeRelocatable({
      sections: this.sections.map((s) => ({
        name: s.name,
        type: s.type,
        flags: s.flags,
        addralign: s.addralign,
        entsize: s.entsize,
        ...(s.type === SHT_NOBITS ? { size: s.size } : { data: Buffer.concat(s.chunks) }),
        relas: s.relas,
      })),
      symbols: this.symbols,
    });
  }
}
