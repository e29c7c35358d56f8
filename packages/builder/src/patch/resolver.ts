import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { SHF_ALLOC, SHN_LORESERVE, SHN_UNDEF, STB_LOCAL, STT_FILE, STT_SECTION, type ElfFile } from '../elf/index.ts';
import type { SymbolLocation, SymbolQuery, SymbolResolver } from '../klp/types.ts';

/** One line of /proc/kallsyms for vmlinux, in file order. */
export interface KallsymsSymbol {
  address: bigint;
  type: string;
  name: string;
}

/** Module.symvers: exported name → the object exporting it (`vmlinux` or a module name). */
export function parseSymvers(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [, name, where] = line.split('\t');
    if (name === undefined || where === undefined || name === '') continue;
    out.set(name, where === 'vmlinux' ? 'vmlinux' : path.basename(where).replaceAll('-', '_'));
  }
  return out;
}

/** Which kallsyms type letters share an output section, so that nearness means something. */
function typeClass(type: string): string {
  return type.toLowerCase();
}

/**
 * The symbols of one module as its kallsyms lists them once loaded: the
 * symbol table order, keeping only named symbols of allocated, non-init
 * sections (6.1 kernel/module/kallsyms.c, is_core_symbol).
 */
export interface ModuleSymbols {
  /** Core symbols in order, with the source file each local belongs to (from STT_FILE). */
  symbols: { name: string; local: boolean; file: string | undefined }[];
}

export function moduleSymbolsOf(ko: ElfFile): ModuleSymbols {
  const symbols: ModuleSymbols['symbols'] = [];
  let file: string | undefined;
  for (const s of ko.symbols) {
    if (s.type === STT_FILE) {
      file = s.name;
      continue;
    }
    if (s.index === 0 || s.name === '' || s.type === STT_SECTION) continue;
    if (s.shndx === SHN_UNDEF || s.shndx >= SHN_LORESERVE) continue;
    const sec = ko.sections[s.shndx];
    if (!sec || (sec.flags & SHF_ALLOC) === 0 || sec.name.startsWith('.init')) continue;
    symbols.push({ name: s.name, local: s.bind === STB_LOCAL, file: s.bind === STB_LOCAL ? file : undefined });
  }
  return { symbols };
}

export interface ResolverInput {
  symvers: ReadonlyMap<string, string>;
  /** vmlinux symbols in kallsyms order. */
  kallsyms: readonly KallsymsSymbol[];
  /** The shipped module's symbols, by module name; undefined when the kernel has no such module. */
  moduleSymbols: (module: string) => ModuleSymbols | undefined;
  /** The original (unpatched) object of each unit, to tell duplicate statics apart. */
  originals: ReadonlyMap<string, ElfFile>;
}

/**
 * Answers where the target kernel defines a symbol, from Module.symvers,
 * vmlinux's kallsyms and the shipped modules' symbol tables. Duplicate static
 * names in vmlinux are told apart by nearness to the unit's own unique
 * symbols (a unit's functions and variables are laid out together); in a
 * module, by the STT_FILE symbol that precedes them.
 */
export class KernelSymbolResolver implements SymbolResolver {
  private readonly byName = new Map<string, number[]>();
  private readonly anchors = new Map<string, { address: bigint; cls: string }[]>();

  constructor(private readonly input: ResolverInput) {
    input.kallsyms.forEach((s, i) => {
      const list = this.byName.get(s.name);
      if (list) list.push(i);
      else this.byName.set(s.name, [i]);
    });
  }

  resolve(q: SymbolQuery): SymbolLocation | undefined {
    const exporter = this.input.symvers.get(q.name);
    if (!q.local && exporter === 'vmlinux') return { object: 'vmlinux', exported: true, sympos: 0 };
    if (q.object === 'vmlinux' || (!q.definedInUnit && exporter === undefined && !this.inModule(q))) {
      const pos = this.vmlinuxPosition(q);
      return pos === undefined ? undefined : { object: 'vmlinux', exported: false, sympos: pos };
    }
    const own = this.modulePosition(q.object, q);
    if (own !== undefined) return { object: q.object, exported: exporter === q.object, sympos: own };
    if (exporter !== undefined && exporter !== 'vmlinux') {
      const pos = this.modulePosition(exporter, { ...q, local: false });
      return { object: exporter, exported: true, sympos: pos ?? 0 };
    }
    return undefined;
  }

  private inModule(q: SymbolQuery): boolean {
    return this.input.moduleSymbols(q.object)?.symbols.some((s) => s.name === q.name) ?? false;
  }

  private vmlinuxPosition(q: SymbolQuery): number | undefined {
    const all = this.byName.get(q.name);
    if (!all || all.length === 0) return undefined;
    if (all.length === 1) return 0;
    const ks = this.input.kallsyms;
    // A global name is unique among globals: pick the upper-case entry.
    let candidates = all.filter((i) => {
      const t = ks[i]?.type ?? '';
      return q.local ? t === t.toLowerCase() : t !== t.toLowerCase();
    });
    if (candidates.length === 0) candidates = all;
    if (candidates.length === 1) return all.indexOf(candidates[0] ?? -1) + 1;
    const anchors = this.anchorsOf(q.unit);
    let best: { i: number; d: bigint } | undefined;
    let tie = false;
    for (const i of candidates) {
      const c = ks[i];
      if (!c) continue;
      for (const a of anchors) {
        if (a.cls !== typeClass(c.type)) continue;
        const d = a.address > c.address ? a.address - c.address : c.address - a.address;
        if (best === undefined || d < best.d) {
          tie = best !== undefined && best.i !== i && d === best.d;
          best = { i, d };
        } else if (d === best.d && best.i !== i) tie = true;
      }
    }
    if (best === undefined || tie) {
      throw new LivegraftError(
        'SYMBOL_AMBIGUOUS',
        `${candidates.length} symbols named ${q.name} exist in vmlinux and none can be tied to ${q.unit}: ` +
          'the unit has no uniquely named symbol of the same kind near it',
        { details: { symbol: q.name, unit: q.unit, candidates: candidates.length } },
      );
    }
    return all.indexOf(best.i) + 1;
  }

  /** Addresses of the unit's own symbols whose names are unique in vmlinux. */
  private anchorsOf(unit: string): { address: bigint; cls: string }[] {
    const cached = this.anchors.get(unit);
    if (cached) return cached;
    const out: { address: bigint; cls: string }[] = [];
    const orig = this.input.originals.get(unit);
    for (const s of orig?.symbols ?? []) {
      if (s.shndx === SHN_UNDEF || s.shndx >= SHN_LORESERVE || s.name === '' || s.type === STT_SECTION) continue;
      const hits = this.byName.get(s.name);
      if (hits?.length !== 1) continue;
      const k = this.input.kallsyms[hits[0] ?? -1];
      if (k) out.push({ address: k.address, cls: typeClass(k.type) });
    }
    this.anchors.set(unit, out);
    return out;
  }

  private modulePosition(module: string, q: SymbolQuery): number | undefined {
    const syms = this.input.moduleSymbols(module)?.symbols;
    if (!syms) return undefined;
    const same = syms.map((s, i) => ({ s, i })).filter(({ s }) => s.name === q.name);
    if (same.length === 0) return undefined;
    if (same.length === 1) return 0;
    const file = path.basename(q.unit);
    // Without STT_FILE symbols (Debian strips them) a local is told apart only if it is the one local of that name.
    const pick = same.filter(({ s }) => (q.local ? s.local && (s.file === undefined || s.file === file) : !s.local));
    if (pick.length !== 1) {
      throw new LivegraftError(
        'SYMBOL_AMBIGUOUS',
        `${same.length} symbols named ${q.name} exist in module ${module} and ${pick.length === 0 ? 'none' : 'several'} belong to ${file}`,
        { details: { symbol: q.name, module, unit: q.unit } },
      );
    }
    return same.findIndex(({ i }) => i === pick[0]?.i) + 1;
  }
}
