import { createHash } from 'node:crypto';
import { LivegraftError } from '@livegraft/protocol';
import { SHN_UNDEF, STT_FUNC, STT_OBJECT } from '../elf/constants.ts';
import { bytesAtAddress, readElf, readString, type ElfFile } from '../elf/read.ts';

const SHT_NOTE = 7;
const SHT_DYNSYM = 11;
const STT_TLS = 6;
const NT_GNU_BUILD_ID = 3;
const R_X86_64_GLOB_DAT = 6;
const R_X86_64_JUMP_SLOT = 7;
const R_X86_64_TPOFF64 = 18;

export interface LibSymbol {
  name: string;
  /** Offset from the load base (st_value). */
  offset: number;
  size: number;
  type: number;
  local: boolean;
}

/** A shipped shared library as the builder needs it: identity, symbols, GOT slots and code bytes. */
export interface SharedLibrary {
  elf: ElfFile;
  buildId: string;
  /** Defined symbols by name (dynamic symbols first, then the debug file's). Versions are stripped. */
  symbols: Map<string, LibSymbol[]>;
  /** GOT slot offset per imported or interposable symbol (JUMP_SLOT and GLOB_DAT relocations). */
  gotSlots: Map<string, number>;
  /** GOT slots holding the thread-pointer offset of a TLS variable, keyed by symbol name or `@<tls offset>`. */
  tlsSlots: Map<string, number>;
  bytesAt(offset: number, length: number): Buffer;
  sha256At(offset: number, length: number): string;
}

export function buildIdOf(elf: ElfFile): string | undefined {
  for (const s of elf.sections) {
    if (s.type !== SHT_NOTE) continue;
    let at = 0;
    while (at + 12 <= s.data.length) {
      const namesz = s.data.readUInt32LE(at);
      const descsz = s.data.readUInt32LE(at + 4);
      const type = s.data.readUInt32LE(at + 8);
      const nameAt = at + 12;
      const descAt = nameAt + Math.ceil(namesz / 4) * 4;
      if (descAt + descsz > s.data.length) break;
      if (type === NT_GNU_BUILD_ID && s.data.toString('latin1', nameAt, nameAt + namesz).startsWith('GNU'))
        return s.data.subarray(descAt, descAt + descsz).toString('hex');
      at = descAt + Math.ceil(descsz / 4) * 4;
    }
  }
  return undefined;
}

interface RawSym {
  name: string;
  value: number;
  size: number;
  type: number;
  bind: number;
  shndx: number;
}

function dynamicSymbols(elf: ElfFile): RawSym[] {
  const dynsym = elf.sections.find((s) => s.type === SHT_DYNSYM);
  if (dynsym === undefined) return [];
  const strtab = elf.sections[dynsym.link];
  if (strtab === undefined) return [];
  const out: RawSym[] = [];
  for (let at = 0; at + 24 <= dynsym.data.length; at += 24) {
    const d = dynsym.data;
    const info = d[at + 4] ?? 0;
    out.push({
      name: readString(strtab.data, d.readUInt32LE(at), dynsym.offset + at),
      type: info & 0xf,
      bind: info >> 4,
      shndx: d.readUInt16LE(at + 6),
      value: Number(d.readBigUInt64LE(at + 8)),
      size: Number(d.readBigUInt64LE(at + 16)),
    });
  }
  return out;
}

/** Reads a shipped library and, optionally, its detached debug file (same build-id) for local symbols. */
export function loadSharedLibrary(lib: Buffer, debug?: Buffer): SharedLibrary {
  const elf = readElf(lib);
  const buildId = buildIdOf(elf);
  if (buildId === undefined)
    throw new LivegraftError('USERSPACE_NO_BUILD_ID', 'the shared library has no GNU build-id note');
  const symbols = new Map<string, LibSymbol[]>();
  const add = (s: LibSymbol): void => {
    const list = symbols.get(s.name) ?? [];
    if (!list.some((x) => x.offset === s.offset)) list.push(s);
    symbols.set(s.name, list);
  };
  const dyn = dynamicSymbols(elf);
  for (const s of dyn) {
    if (s.shndx === SHN_UNDEF || s.name === '' || (s.type !== STT_FUNC && s.type !== STT_OBJECT)) continue;
    add({ name: s.name, offset: s.value, size: s.size, type: s.type, local: false });
  }
  if (debug !== undefined) {
    const dbg = readElf(debug);
    const dbgId = buildIdOf(dbg);
    if (dbgId !== buildId)
      throw new LivegraftError(
        'USERSPACE_DEBUG_MISMATCH',
        `the debug symbols are for build-id ${dbgId ?? '(none)'}, the library is ${buildId}`,
      );
    for (const s of dbg.symbols) {
      if (
        s.shndx === SHN_UNDEF ||
        s.name === '' ||
        (s.type !== STT_FUNC && s.type !== STT_OBJECT && s.type !== STT_TLS)
      )
        continue;
      add({ name: s.name, offset: Number(s.value), size: s.size, type: s.type, local: s.bind === 0 });
    }
  }
  const gotSlots = new Map<string, number>();
  const tlsSlots = new Map<string, number>();
  for (const list of elf.relas.values()) {
    for (const r of list) {
      const sym = r.symbol === 0 ? undefined : dyn[r.symbol];
      if (r.type === R_X86_64_JUMP_SLOT || r.type === R_X86_64_GLOB_DAT) {
        if (sym !== undefined && !gotSlots.has(sym.name)) gotSlots.set(sym.name, r.offset);
      } else if (r.type === R_X86_64_TPOFF64) {
        if (sym !== undefined && sym.name !== '') tlsSlots.set(sym.name, r.offset);
        else tlsSlots.set(`@${r.addend}`, r.offset);
      }
    }
  }
  const bytesAt = (offset: number, length: number): Buffer => bytesAtAddress(elf, BigInt(offset), length);
  return {
    elf,
    buildId,
    symbols,
    gotSlots,
    tlsSlots,
    bytesAt,
    sha256At: (offset, length) => createHash('sha256').update(bytesAt(offset, length)).digest('hex'),
  };
}

/** The one definition of `name` (a function or object), or undefined; throws when the name is ambiguous. */
export function uniqueSymbol(lib: SharedLibrary, name: string, what: string): LibSymbol | undefined {
  const list = lib.symbols.get(name) ?? [];
  if (list.length > 1)
    throw new LivegraftError(
      'USERSPACE_SYMBOL_AMBIGUOUS',
      `${what}: the library defines ${list.length} symbols named ${name} (at ${list.map((s) => `0x${s.offset.toString(16)}`).join(', ')})`,
    );
  return list[0];
}
