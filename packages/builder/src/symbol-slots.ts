import { readFile } from 'node:fs/promises';
import { LivegraftError } from '@livegraft/protocol';
import {
  R_X86_64_64,
  SHF_ALLOC,
  SHF_WRITE,
  SHT_PROGBITS,
  STB_GLOBAL,
  STT_OBJECT,
  readElf,
  writeRelocatable,
  type NewSymbol,
} from './elf/index.ts';
import { parseSymbolRef, symbolCName, type LoadedFix } from './fixes.ts';
import { readKallsyms, type KernelBuild } from './kernel/index.ts';
import type { KlpReloc } from './klp/types.ts';
import { moduleFileIndex } from './patch/factory.ts';
import { moduleSymbolsOf, type KallsymsSymbol, type ModuleSymbols } from './patch/resolver.ts';

/** Its one data section: 8-byte pointers the livepatch core fills through klp relocations. */
export const SYMBOLS_SECTION = '.data.livegraft.syms';
const SLOT_BYTES = 8;

/** One LG_SYMBOL pointer: `lg_sym_<cName>` holds the address of `name` (the sympos-th of that name) in `object`. */
export interface SymbolSlot {
  cName: string;
  /** `vmlinux` or a module name. */
  object: string;
  name: string;
  /** 0 when the name is unique in its object, else its 1-based position in kallsyms order. */
  sympos: number;
}

/** What the target kernel defines, for resolveSlots. */
export interface SlotLookup {
  /** vmlinux's kallsyms in file order; entries naming a module are ignored. */
  kallsyms: readonly (KallsymsSymbol & { module?: string })[];
  /** A shipped module's symbol table (see moduleSymbolsOf), or undefined when the kernel has no such module. */
  moduleSymbols(name: string): ModuleSymbols | undefined;
}

/**
 * The object defining every `lg_sym_*` pointer, zero-filled, and one klp relocation per pointer.
 * A vmlinux relocation is applied while the patch module loads, before its init runs; a module's,
 * when that module loads (or at once when it is already loaded), before any code patching it runs.
 */
export function symbolSlotsObject(slots: readonly SymbolSlot[]): { object: Buffer; relocs: KlpReloc[] } {
  const symbols: NewSymbol[] = slots.map((s, i) => ({
    name: `lg_sym_${s.cName}`,
    type: STT_OBJECT,
    bind: STB_GLOBAL,
    section: 0,
    value: i * SLOT_BYTES,
    size: SLOT_BYTES,
  }));
  const object = writeRelocatable({
    sections: [
      {
        name: SYMBOLS_SECTION,
        type: SHT_PROGBITS,
        flags: SHF_ALLOC | SHF_WRITE,
        addralign: SLOT_BYTES,
        data: Buffer.alloc(slots.length * SLOT_BYTES),
      },
      // An empty .note.GNU-stack says the object needs no executable stack (as gcc's objects say).
      { name: '.note.GNU-stack', type: SHT_PROGBITS, flags: 0, addralign: 1, data: Buffer.alloc(0) },
    ],
    symbols,
  });
  const relocs = slots.map((s, i): KlpReloc => ({
    section: SYMBOLS_SECTION,
    offset: i * SLOT_BYTES,
    type: R_X86_64_64,
    addend: 0,
    symbol: { object: s.object, name: s.name, sympos: s.sympos },
    relaObject: s.object,
  }));
  return { object, relocs };
}

/**
 * Resolves every fix's `symbols` against the target kernel, once per C name, in first-seen order.
 * A plain name must be unique in its object (the kernel refuses an ambiguous klp symbol too); a
 * position must exist. Throws SYMBOL_AMBIGUOUS or SYMBOL_NOT_FOUND naming the fix.
 */
export function resolveSlots(fixes: readonly LoadedFix[], lookup: SlotLookup): SymbolSlot[] {
  const wanted = fixes.flatMap((fix) => (fix.spec.symbols ?? []).map((entry) => ({ fix, entry })));
  const vmlinuxNames = new Set(
    wanted.map((w) => parseSymbolRef(w.entry)).flatMap((r) => (r.object === 'vmlinux' ? [r.name] : [])),
  );
  // Type letters per wanted name, in kallsyms order: their count is what the kernel counts.
  const vmlinuxTypes = new Map<string, string[]>();
  for (const k of lookup.kallsyms) {
    if (k.module !== undefined || !vmlinuxNames.has(k.name)) continue;
    vmlinuxTypes.set(k.name, [...(vmlinuxTypes.get(k.name) ?? []), k.type]);
  }

  const slots: SymbolSlot[] = [];
  const byCName = new Map<string, { slot: SymbolSlot; entry: string; fixId: string }>();
  for (const { fix, entry } of wanted) {
    const ref = parseSymbolRef(entry);
    const fixId = fix.spec.id;
    const where = ref.object === 'vmlinux' ? 'vmlinux' : `module ${ref.object}`;
    let types: string[];
    if (ref.object === 'vmlinux') {
      types = vmlinuxTypes.get(ref.name) ?? [];
    } else {
      const mod = lookup.moduleSymbols(ref.object);
      if (mod === undefined) {
        throw new LivegraftError(
          'SYMBOL_NOT_FOUND',
          `fix ${fixId}: symbol "${entry}": the target kernel ships no module ${ref.object}`,
          { details: { fix: fixId, symbol: entry, object: ref.object } },
        );
      }
      types = mod.symbols.filter((s) => s.name === ref.name).map((s) => (s.local ? 'local' : 'global'));
    }
    const count = types.length;
    const details = { fix: fixId, symbol: entry, object: ref.object, name: ref.name, count, types };
    if (count === 0) {
      throw new LivegraftError(
        'SYMBOL_NOT_FOUND',
        `fix ${fixId}: symbol "${entry}": ${where} of the target kernel has no symbol ${ref.name} ` +
          '(inlined everywhere, renamed by the compiler, e.g. foo.isra.0, or not configured)',
        { details },
      );
    }
    if (ref.sympos === 0 && count > 1) {
      const prefix = ref.object === 'vmlinux' ? '' : `${ref.object}:`;
      throw new LivegraftError(
        'SYMBOL_AMBIGUOUS',
        `fix ${fixId}: ${count} symbols named ${ref.name} exist in ${where}; write "${prefix}${ref.name},N" ` +
          `(N from 1 to ${count}, the N-th in kallsyms order; here ${types.join(', ')}) in fix.json "symbols" to pick one`,
        { details },
      );
    }
    if (ref.sympos > count) {
      throw new LivegraftError(
        'SYMBOL_NOT_FOUND',
        `fix ${fixId}: symbol "${entry}": ${where} has ${count === 1 ? 'only one symbol' : `only ${count} symbols`} named ${ref.name}`,
        { details },
      );
    }
    const slot: SymbolSlot = { cName: symbolCName(entry), object: ref.object, name: ref.name, sympos: ref.sympos };
    const prev = byCName.get(slot.cName);
    if (prev === undefined) {
      byCName.set(slot.cName, { slot, entry, fixId });
      slots.push(slot);
    } else if (prev.slot.object !== slot.object || prev.slot.name !== slot.name || prev.slot.sympos !== slot.sympos) {
      throw new LivegraftError(
        'FIX_INVALID',
        `fixes ${prev.fixId} and ${fixId} use "${prev.entry}" and "${entry}", which both map to LG_SYMBOL(${slot.cName}); ` +
          'rename one (LG_SYMBOL names are shared by all fixes of a patch)',
        { details: { fixes: [prev.fixId, fixId], symbols: [prev.entry, entry] } },
      );
    }
  }
  return slots;
}

/** The modules whose symbol tables the fixes' `module:name` entries need. */
export function slotModules(fixes: readonly LoadedFix[]): string[] {
  const names = fixes.flatMap((f) => (f.spec.symbols ?? []).map(parseSymbolRef)).map((r) => r.object);
  return [...new Set(names.filter((o) => o !== 'vmlinux'))];
}

/**
 * What resolveSlots needs from a kernel build prepared with the `kallsyms` part (which brings the
 * image and its modules): vmlinux's kallsyms and the symbol tables of the shipped modules named.
 */
export async function slotLookupFor(kernel: KernelBuild, fixes: readonly LoadedFix[]): Promise<SlotLookup> {
  const kallsyms = (await readKallsyms(kernel)).filter((k) => k.module === undefined);
  const wanted = slotModules(fixes);
  const modules = new Map<string, ModuleSymbols>();
  if (wanted.length > 0) {
    const files = await moduleFileIndex(kernel.modulesDir);
    for (const name of wanted) {
      const file = files.get(name);
      if (file !== undefined) modules.set(name, moduleSymbolsOf(readElf(await readFile(file))));
    }
  }
  return { kallsyms, moduleSymbols: (name) => modules.get(name) };
}
