import { LivegraftError } from '@livegraft/protocol';
import {
  ET_REL,
  relocationWidth,
  RELA_SIZE,
  SHF_ALLOC,
  SHF_INFO_LINK,
  SHF_RELA_LIVEPATCH,
  SHN_LIVEPATCH,
  SHT_NOBITS,
  SHT_RELA,
  STB_GLOBAL,
  STT_NOTYPE,
} from '../elf/constants.ts';
import { readElf, type ElfFile } from '../elf/read.ts';
import { appendToRelocatable, relaBytes } from '../elf/write.ts';
import type { KlpReloc } from './types.ts';

/** Field widths the kernel's sscanf() accepts (kernel/livepatch/core.c klp_resolve_symbols). */
const MAX_OBJECT_NAME = 55;
const MAX_SYMBOL_NAME = 511;
const SIGNATURE_TRAILER = '~Module signature appended~\n';

export interface WriteKlpOptions {
  /**
   * The patch object as given to the link. When set, every section a klp relocation targets must
   * begin in the module with exactly that object's bytes: proof that the object was linked first,
   * so offsets recorded against it are still right in merged sections such as `__jump_table`.
   */
  patchObject?: Buffer;
}

function klpSymbolName(r: KlpReloc): string {
  return `.klp.sym.${r.symbol.object}.${r.symbol.name},${r.symbol.sympos}`;
}

function check(cond: boolean, message: string, details: Record<string, unknown> = {}): void {
  if (!cond) throw new LivegraftError('KLP_POSTLINK', message, { details });
}

/**
 * Adds the livepatch relocations to a linked module (Documentation/livepatch/module-elf-format.rst):
 * one `.klp.rela.<object>.<section>` per (symbol object, target section), flagged
 * SHF_ALLOC | SHF_RELA_LIVEPATCH with sh_link = .symtab and sh_info = the target section, and one
 * global `.klp.sym.<object>.<name>,<sympos>` symbol with st_shndx = SHN_LIVEPATCH per distinct
 * symbol. Linkers drop SHF_RELA_LIVEPATCH and SHN_LIVEPATCH, hence this runs after the final link.
 */
export function writeKlpRelocations(ko: Buffer, klpRelocs: KlpReloc[], opts: WriteKlpOptions = {}): Buffer {
  check(
    !ko.subarray(Math.max(0, ko.length - SIGNATURE_TRAILER.length)).equals(Buffer.from(SIGNATURE_TRAILER)),
    'the module is already signed; add livepatch relocations before signing',
  );
  const elf = readElf(ko);
  check(elf.type === ET_REL, 'the module is not a relocatable object');
  if (klpRelocs.length === 0) return ko;
  const patch = opts.patchObject === undefined ? undefined : readElf(opts.patchObject);

  const symbolNames: string[] = [];
  const symIndex = new Map<string, number>();
  const groups = new Map<string, { object: string; section: string; relocs: KlpReloc[] }>();
  for (const r of klpRelocs) {
    check(
      /^[A-Za-z0-9_-]+$/.test(r.symbol.object) && r.symbol.object.length <= MAX_OBJECT_NAME,
      `bad object name ${JSON.stringify(r.symbol.object)}`,
    );
    check(
      r.symbol.name.length > 0 && r.symbol.name.length <= MAX_SYMBOL_NAME && !r.symbol.name.includes(','),
      `bad symbol name ${JSON.stringify(r.symbol.name)}`,
    );
    check(
      Number.isInteger(r.symbol.sympos) && r.symbol.sympos >= 0,
      `bad symbol position ${r.symbol.sympos} for ${r.symbol.name}`,
    );
    const name = klpSymbolName(r);
    if (!symIndex.has(name)) {
      symIndex.set(name, symbolNames.length);
      symbolNames.push(name);
    }
    const relaObject = r.relaObject ?? r.symbol.object;
    const key = `${relaObject}\0${r.section}`;
    const g = groups.get(key) ?? { object: relaObject, section: r.section, relocs: [] };
    g.relocs.push(r);
    groups.set(key, g);
  }

  const verified = new Set<string>();
  const plan = [...groups.values()].map((g) => {
    const targets = elf.sections.filter((s) => s.name === g.section);
    check(targets.length === 1, `the module has ${targets.length} sections named ${g.section}, expected exactly one`, {
      section: g.section,
    });
    const target = targets[0];
    if (target === undefined) throw new LivegraftError('KLP_POSTLINK', `no section ${g.section}`);
    check(target.type !== SHT_NOBITS, `${g.section} has no bytes to relocate`);
    if (patch !== undefined && !verified.has(g.section)) {
      verifyContribution(elf, patch, g.section);
      verified.add(g.section);
    }
    for (const r of g.relocs) {
      const width = relocationWidth(r.type);
      check(
        width > 0,
        `relocation type ${r.type} at ${g.section}+${r.offset} is not supported for livepatch relocations`,
      );
      check(
        r.offset >= 0 && r.offset + width <= target.size,
        `relocation at ${g.section}+${r.offset} lies outside the section (${target.size} bytes)`,
      );
      // x86 apply_relocate_add() refuses to write over a non-zero field.
      check(
        target.data.subarray(r.offset, r.offset + width).every((b) => b === 0),
        `the field at ${g.section}+${r.offset} is not zero in the linked module`,
        { section: g.section, offset: r.offset },
      );
    }
    return { g, target };
  });

  const firstNewSymbol = elf.symbols.length;
  const sections = plan.map(({ g, target }) => ({
    name: `.klp.rela.${g.object}.${g.section}`,
    type: SHT_RELA,
    flags: SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH,
    addralign: 8,
    entsize: RELA_SIZE,
    link: 'symtab' as const,
    info: target.index,
    data: relaBytes(
      [...g.relocs]
        .sort((a, b) => a.offset - b.offset)
        .map((r) => ({
          offset: r.offset,
          type: r.type,
          addend: r.addend,
          symbol: firstNewSymbol + (symIndex.get(klpSymbolName(r)) ?? 0),
        })),
    ),
  }));
  const symbols = symbolNames.map((name) => ({
    name,
    type: STT_NOTYPE,
    bind: STB_GLOBAL,
    shndx: SHN_LIVEPATCH,
    value: 0n,
    size: 0,
  }));
  return appendToRelocatable(ko, { symbols, sections }).file;
}

/** Checks that the linked section starts with the patch object's bytes for it. */
function verifyContribution(ko: ElfFile, patch: ElfFile, name: string): void {
  const ours = patch.sections.find((s) => s.name === name);
  const theirs = ko.sections.find((s) => s.name === name);
  check(ours !== undefined && theirs !== undefined, `section ${name} is missing from the patch object or the module`);
  if (ours === undefined || theirs === undefined) return;
  check(
    theirs.size >= ours.size && theirs.data.subarray(0, ours.size).equals(ours.data),
    `the module's ${name} does not start with the patch object's contribution: the patch object must be linked first`,
    { section: name },
  );
}

export interface KlpSectionInfo {
  index: number;
  name: string;
  object: string;
  flags: number;
  /** sh_info: the section the relocations apply to, and its name. */
  targetIndex: number;
  targetSection: string;
  relocations: { offset: number; type: number; addend: number; symbol: string }[];
}

export interface KlpSymbolInfo {
  index: number;
  name: string;
  object: string;
  symbol: string;
  sympos: number;
  shndx: number;
}

/** Lists the livepatch relocation sections and symbols of a module (for tests and --explain). */
export function describeKlp(ko: Buffer): { sections: KlpSectionInfo[]; symbols: KlpSymbolInfo[] } {
  const elf = readElf(ko);
  const sections: KlpSectionInfo[] = [];
  for (const s of elf.sections) {
    const m = /^\.klp\.rela\.([^.]+)\./.exec(s.name);
    if (m === null && (s.flags & SHF_RELA_LIVEPATCH) === 0) continue;
    sections.push({
      index: s.index,
      name: s.name,
      object: m?.[1] ?? '',
      flags: s.flags,
      targetIndex: s.info,
      targetSection: elf.sections[s.info]?.name ?? '',
      relocations: readRelas(elf, s.index).map((r) => ({
        offset: r.offset,
        type: r.type,
        addend: r.addend,
        symbol: elf.symbols[r.symbol]?.name ?? `#${r.symbol}`,
      })),
    });
  }
  const symbols: KlpSymbolInfo[] = [];
  for (const sym of elf.symbols) {
    const m = /^\.klp\.sym\.([^.]+)\.([^,]+),(\d+)$/.exec(sym.name);
    if (m === null && sym.shndx !== SHN_LIVEPATCH) continue;
    symbols.push({
      index: sym.index,
      name: sym.name,
      object: m?.[1] ?? '',
      symbol: m?.[2] ?? '',
      sympos: Number(m?.[3] ?? -1),
      shndx: sym.shndx,
    });
  }
  return { sections, symbols };
}

/** The relocations of one SHT_RELA section (readElf keys relocations by target, which may repeat). */
function readRelas(elf: ElfFile, index: number): { offset: number; type: number; symbol: number; addend: number }[] {
  const s = elf.sections[index];
  if (s === undefined) return [];
  const out = [];
  for (let at = 0; at + RELA_SIZE <= s.size; at += RELA_SIZE) {
    const info = s.data.readBigUInt64LE(at + 8);
    out.push({
      offset: Number(s.data.readBigUInt64LE(at)),
      type: Number(info & 0xffffffffn),
      symbol: Number(info >> 32n),
      addend: Number(s.data.readBigInt64LE(at + 16)),
    });
  }
  return out;
}
