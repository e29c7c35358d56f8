import { LivegraftError } from '@livegraft/protocol';
import {
  R_X86_64_NONE,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_MERGE,
  SHF_STRINGS,
  SHF_WRITE,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_PROGBITS,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FUNC,
  STT_OBJECT,
} from '../elf/constants.ts';
import type { ElfSection, ElfSymbol } from '../elf/read.ts';
import { classifyReference } from './classify.ts';
import type { NewSymbol } from '../elf/write.ts';
import { ObjectModel, type Target } from './model.ts';
import { PatchObjectBuilder, type OutSection } from './patch-object.ts';
import { isPerCallSiteData } from './names.ts';
import type { ExtractResult, ExtractUnit, KlpReloc, PatchedFunction, Refusal, SymbolResolver } from './types.ts';

/** Largest anonymous data section copied whole when carried code points into it. */
export const MAX_ANONYMOUS_COPY_BYTES = 64 * 1024;

/**
 * Entry sizes of the x86-64 special sections carried with the code they describe (6.1 layouts:
 * struct bug_entry with relative pointers and DEBUG_BUGVERBOSE, struct exception_table_entry,
 * struct alt_instr, struct jump_entry, and the 4-byte ORC ip table paired with 6-byte orc_entry).
 * Each entry's first field is the code address it belongs to.
 *
 * Deliberately dropped, because the code as compiled stays correct without them:
 * `.static_call_sites` (the call goes through the static-call trampoline), `.retpoline_sites` /
 * `.return_sites` (the thunks stay in place, only not inlined), `.parainstructions` (the indirect
 * pv_ops call stays), `.smp_locks` (the lock prefix stays), `__mcount_loc` (a livepatch function
 * need not be traced itself; ftrace must not patch its NOP).
 */
const SPECIAL_ENTRY_SIZE: Record<string, number> = {
  __bug_table: 12,
  __ex_table: 12,
  '.altinstructions': 12,
  __jump_table: 16,
  '.orc_unwind_ip': 4,
};
const ORC_ENTRY_SIZE = 6;
/** The 5-byte NOP ftrace writes over `call __fentry__` on x86-64 (x86_nops[5]). */
const NOP5 = Buffer.from([0x0f, 0x1f, 0x44, 0x00, 0x00]);
const ALT_REPLACEMENT_LEN_AT = 11;

interface Range {
  src: number;
  start: number;
  end: number;
  out: OutSection;
  outStart: number;
}

interface Job {
  srcSection: ElfSection;
  start: number;
  end: number;
  out: OutSection;
  outStart: number;
}

/** Extraction of one unit into the shared builder. */
class UnitExtractor {
  private readonly m: ObjectModel;
  private readonly ranges: Range[] = [];
  private readonly jobs: Job[] = [];

  constructor(
    private readonly u: ExtractUnit,
    private readonly b: PatchObjectBuilder,
    private readonly resolver: SymbolResolver,
    private readonly counter: { n: number },
    private readonly klpRelocs: KlpReloc[],
    private readonly refusals: Refusal[],
    private readonly functions: PatchedFunction[],
    /** Global functions some unit of the patch adds: every unit links to the copy. */
    private readonly addedGlobals: ReadonlySet<string>,
  ) {
    this.m = new ObjectModel(u.patched);
  }

  run(): void {
    const byName = new Map(this.m.functions().map((f) => [f.name, f]));
    const get = (name: string): ElfSymbol => {
      const f = byName.get(name);
      if (f === undefined)
        throw new LivegraftError('KLP_EXTRACT', `function ${name} of ${this.u.unit} is not in the patched object`);
      return f;
    };
    for (const c of this.u.diff.changed) {
      const f = get(c.name);
      const n = ++this.counter.n;
      const out = this.carryFunction(f, n);
      const newSymbol = `__livegraft_new_${n}`;
      this.b.symbols.push({
        name: newSymbol,
        type: STT_FUNC,
        bind: STB_GLOBAL,
        section: this.b.sections.indexOf(out),
        value: 0,
        size: f.size,
      });
      const loc = this.resolver.resolve({
        name: c.originalName,
        unit: this.u.unit,
        object: this.u.object,
        definedInUnit: true,
        local: f.bind === STB_LOCAL,
        kind: 'function',
      });
      if (loc === undefined || loc.object !== this.u.object) {
        this.refusals.push({
          symbol: c.originalName,
          unit: this.u.unit,
          reason: `${c.originalName} is not a function of ${this.u.object} in the target kernel's symbol table: in the shipped build it is probably inlined into its callers, so it cannot be redirected by name`,
        });
        continue;
      }
      this.functions.push({
        name: c.originalName,
        object: this.u.object,
        sympos: loc.sympos,
        newSymbol,
        unit: this.u.unit,
      });
    }
    for (const name of [...this.u.diff.added, ...this.u.diff.carriedChildren]) {
      const f = byName.get(name);
      if (f !== undefined && this.findRange(f.shndx, Number(f.value)) === undefined)
        this.carryFunction(f, ++this.counter.n);
    }
    this.carrySpecialSections();
    this.drain();
  }

  private carryFunction(f: ElfSymbol, n: number): OutSection {
    const src = this.m.section(f.shndx);
    if (src === undefined) throw new LivegraftError('KLP_EXTRACT', `function ${f.name} has no section`);
    const { start, end } = this.m.rangeOf(f);
    const out = this.b.section(
      `.text.livegraft.${n}`,
      SHT_PROGBITS,
      SHF_ALLOC | SHF_EXECINSTR,
      Math.max(16, src.addralign),
    );
    const bytes = Buffer.from(src.data.subarray(start, end));
    // The copy is not traced itself: its `call __fentry__` becomes the NOP ftrace would have made it.
    for (const r of this.m.relasIn(src.index, start, end)) {
      const at = r.offset - start;
      if (this.isFentryCall(r) && bytes[at - 1] === 0xe8) NOP5.copy(bytes, at - 1);
    }
    const outStart = this.b.append(out, bytes, 16);
    const sym: NewSymbol = {
      name: f.name,
      type: STT_FUNC,
      bind: STB_LOCAL,
      section: this.b.sections.indexOf(out),
      value: outStart + Number(f.value) - start,
      size: f.size,
    };
    if (f.bind !== STB_LOCAL && this.addedGlobals.has(f.name)) this.b.defineGlobal(sym);
    else this.b.symbols.push(sym);
    this.addRange(src, start, end, out, outStart);
    return out;
  }

  private isFentryCall(r: { symbol: number }): boolean {
    const sym = this.m.elf.symbols[r.symbol];
    return (
      sym !== undefined &&
      sym.shndx === SHN_UNDEF &&
      (sym.name === '__fentry__' || sym.name === 'mcount' || sym.name === '__mcount')
    );
  }

  private addRange(src: ElfSection, start: number, end: number, out: OutSection, outStart: number): void {
    this.ranges.push({ src: src.index, start, end, out, outStart });
    this.jobs.push({ srcSection: src, start, end, out, outStart });
  }

  private findRange(src: number, at: number): Range | undefined {
    return (
      this.ranges.find((r) => r.src === src && at >= r.start && at < r.end) ??
      this.ranges.find((r) => r.src === src && at === r.end)
    );
  }

  /**
   * The absolute place (section, offset) a target points at, and the offset to look it up by:
   * a PC-relative call carries `foo - 4`, which aims at `foo` itself.
   */
  private place(t: Target): { section: number; at: number; lookup: number } | undefined {
    switch (t.kind) {
      case 'symbol': {
        const v = Number(t.symbol.value);
        return {
          section: t.section.index,
          at: v + t.offset,
          lookup: v + Math.min(Math.max(t.offset, 0), t.symbol.size),
        };
      }
      case 'anonymous':
        return { section: t.section.index, at: t.offset, lookup: t.offset };
      default:
        return undefined;
    }
  }

  private rangeFor(p: { section: number; at: number; lookup: number }): Range | undefined {
    return this.findRange(p.section, p.lookup) ?? this.findRange(p.section, p.at + 4);
  }

  /** Copies a data symbol (per-call-site or new) into the patch object. */
  private carryData(sym: ElfSymbol, sec: ElfSection): void {
    const start = Number(sym.value);
    const size = Math.max(sym.size, 0);
    let out: OutSection;
    if (sec.name === '__dyndbg') {
      out = this.b.section('__dyndbg', SHT_PROGBITS, sec.flags, sec.addralign);
    } else {
      const kind = sec.type === SHT_NOBITS ? 'bss' : (sec.flags & SHF_WRITE) !== 0 ? 'data' : 'rodata';
      out = this.b.section(
        `.${kind}.livegraft.${++this.counter.n}`,
        sec.type,
        sec.flags & ~(SHF_MERGE | SHF_STRINGS),
        sec.addralign,
      );
    }
    const bytes = sec.type === SHT_NOBITS ? size : sec.data.subarray(start, start + size);
    const outStart = this.b.append(out, bytes, sec.addralign);
    this.b.symbols.push({
      name: sym.name,
      type: STT_OBJECT,
      bind: STB_LOCAL,
      section: this.b.sections.indexOf(out),
      value: outStart,
      size,
    });
    this.addRange(sec, start, start + size, out, outStart);
  }

  private carryWholeSection(sec: ElfSection): boolean {
    if (sec.size > MAX_ANONYMOUS_COPY_BYTES || (sec.flags & SHF_ALLOC) === 0) return false;
    const kind =
      sec.type === SHT_NOBITS
        ? 'bss'
        : (sec.flags & SHF_EXECINSTR) !== 0
          ? 'text'
          : (sec.flags & SHF_WRITE) !== 0
            ? 'data'
            : 'rodata';
    const out = this.b.section(
      `.${kind}.livegraft.${++this.counter.n}`,
      sec.type,
      sec.flags & ~(SHF_MERGE | SHF_STRINGS),
      sec.addralign,
    );
    const outStart = this.b.append(out, sec.type === SHT_NOBITS ? sec.size : sec.data, sec.addralign);
    this.addRange(sec, 0, sec.size, out, outStart);
    return true;
  }

  private refuse(symbol: string, reason: string): void {
    if (!this.refusals.some((r) => r.symbol === symbol && r.reason === reason))
      this.refusals.push({ symbol, unit: this.u.unit, reason });
  }

  private drain(): void {
    for (let job = this.jobs.shift(); job !== undefined; job = this.jobs.shift()) {
      const exec = (job.srcSection.flags & SHF_EXECINSTR) !== 0;
      for (const r of this.m.relasIn(job.srcSection.index, job.start, job.end)) {
        if (r.type === R_X86_64_NONE || (exec && this.isFentryCall(r))) continue;
        this.relocate(job, r.offset - job.start + job.outStart, r.type, this.m.target(r, job.srcSection));
      }
    }
  }

  /** Emits one relocation of carried bytes at `at` of `job.out`. */
  private relocate(job: Job, at: number, type: number, t: Target): void {
    const out = job.out;
    const outIdx = (o: OutSection): number => o.symbol;
    switch (t.kind) {
      case 'none':
        return;
      case 'string':
      case 'constant': {
        const piece = t.section.data.subarray(t.start, t.end);
        if (t.kind === 'string') {
          const { out: so, at: sat } = this.b.stringPiece(piece);
          out.relas.push({ offset: at, type, symbol: outIdx(so), addend: sat + t.offset });
        } else {
          const co = this.b.section(
            '.rodata.livegraft.cst',
            SHT_PROGBITS,
            SHF_ALLOC,
            Math.max(t.section.addralign, piece.length),
          );
          const cat = this.b.append(co, piece, Math.max(t.section.addralign, piece.length));
          out.relas.push({ offset: at, type, symbol: outIdx(co), addend: cat + t.offset });
        }
        return;
      }
      case 'external':
        this.link(job, at, type, t.name, t.offset, { definedInUnit: false, local: false, kind: 'unknown' });
        return;
      case 'symbol':
      case 'anonymous': {
        const p = this.place(t);
        if (p === undefined) return;
        let range = this.rangeFor(p);
        if (range === undefined && t.kind === 'symbol') {
          const sym = t.symbol;
          const isFunc = sym.type === STT_FUNC;
          const original = this.u.diff.correlation.get(sym.name);
          if (isFunc && original !== undefined) {
            this.link(job, at, type, original, t.offset, {
              definedInUnit: true,
              local: sym.bind === STB_LOCAL,
              kind: 'function',
            });
            return;
          }
          if (!isFunc && original !== undefined && !isPerCallSiteData(sym.name)) {
            this.link(job, at, type, original, t.offset, {
              definedInUnit: true,
              local: sym.bind === STB_LOCAL,
              kind: 'object',
            });
            return;
          }
          // New data, or data that belongs to one call site: the new code gets its own copy.
          if (isFunc) this.carryFunction(sym, ++this.counter.n);
          else this.carryData(sym, t.section);
          range = this.rangeFor(p);
        }
        if (range === undefined && t.kind === 'anonymous' && this.carryWholeSection(t.section))
          range = this.rangeFor(p);
        if (range === undefined) {
          this.refuse(
            t.section.name,
            `carried code in ${this.u.unit} points into ${t.section.name}+${p.at}, which has no symbol to link it to`,
          );
          return;
        }
        out.relas.push({ offset: at, type, symbol: outIdx(range.out), addend: p.at - range.start + range.outStart });
        return;
      }
    }
  }

  private link(
    job: Job,
    at: number,
    type: number,
    name: string,
    addend: number,
    q: { definedInUnit: boolean; local: boolean; kind: 'function' | 'object' | 'unknown' },
  ): void {
    if (this.addedGlobals.has(name)) {
      job.out.relas.push({ offset: at, type, symbol: this.b.undef(name), addend });
      return;
    }
    const c = classifyReference(this.resolver, { name, unit: this.u.unit, object: this.u.object, ...q }, job.out.name);
    if (c.kind === 'refuse') {
      this.refuse(name, c.reason);
    } else if (c.kind === 'export') {
      job.out.relas.push({ offset: at, type, symbol: this.b.undef(name), addend });
    } else {
      // Left as zero bytes: x86 apply_relocate_add refuses to write over a non-zero field.
      this.klpRelocs.push({
        section: job.out.name,
        offset: at,
        type,
        addend,
        symbol: { object: c.object, name: c.name, sympos: c.sympos },
        // vmlinux symbols are resolved when the patch loads; a module symbol
        // when the patched module loads (it may pull in the module exporting it).
        relaObject: c.object === 'vmlinux' ? 'vmlinux' : this.u.object,
      });
    }
  }

  /** Copies the special-section entries that describe carried code. */
  private carrySpecialSections(): void {
    for (const [name, entsize] of Object.entries(SPECIAL_ENTRY_SIZE)) {
      const sec = this.m.elf.sections.find((s) => s.name === name);
      if (sec === undefined || sec.size === 0) continue;
      if (sec.size % entsize !== 0) {
        throw new LivegraftError(
          'KLP_EXTRACT',
          `${name} of ${this.u.unit} is ${sec.size} bytes, not a whole number of ${entsize}-byte entries`,
        );
      }
      const relas = this.m.relasOf(sec.index);
      const orc = name === '.orc_unwind_ip' ? this.m.elf.sections.find((s) => s.name === '.orc_unwind') : undefined;
      for (let e = 0; e < sec.size; e += entsize) {
        const head = relas.find((r) => r.offset === e);
        if (head === undefined) continue;
        const p = this.place(this.m.target(head, sec));
        if (p === undefined) continue;
        const range = this.rangeFor(p);
        if (range === undefined || ((this.m.section(range.src)?.flags ?? 0) & SHF_EXECINSTR) === 0) continue;
        if (name === '.altinstructions') this.carryReplacement(sec, e, relas);
        const out = this.b.section(
          name,
          sec.type,
          sec.flags,
          Math.max(sec.addralign, name === '.orc_unwind_ip' ? 4 : 8),
          sec.entsize,
        );
        const outStart = this.b.append(out, sec.data.subarray(e, e + entsize), 1);
        this.jobs.push({ srcSection: sec, start: e, end: e + entsize, out, outStart });
        if (orc !== undefined) {
          const i = e / entsize;
          const oo = this.b.section('.orc_unwind', orc.type, orc.flags, Math.max(2, orc.addralign), orc.entsize);
          this.b.append(oo, orc.data.subarray(i * ORC_ENTRY_SIZE, (i + 1) * ORC_ENTRY_SIZE), 1);
        }
      }
    }
  }

  /** Copies the replacement instructions one alt_instr entry points to. */
  private carryReplacement(
    alt: ElfSection,
    e: number,
    relas: { offset: number; symbol: number; addend: number; type: number }[],
  ): void {
    const r = relas.find((x) => x.offset === e + 4);
    if (r === undefined) return;
    const t = this.m.target(r, alt);
    const p = this.place(t);
    const repl = p === undefined ? undefined : this.m.section(p.section);
    if (p === undefined || repl === undefined || this.findRange(p.section, p.lookup) !== undefined) return;
    const len = alt.data[e + ALT_REPLACEMENT_LEN_AT] ?? 0;
    const out = this.b.section(repl.name, repl.type, repl.flags, repl.addralign);
    const outStart = this.b.append(out, repl.data.subarray(p.at, p.at + len), 1);
    this.addRange(repl, p.at, p.at + len, out, outStart);
  }
}

/**
 * Builds the livepatch's code object: every changed and added function of every unit (with its
 * .cold part) in its own uniquely named section, a global `__livegraft_new_<n>` alias for each
 * changed function, the data the copies need, and the special-section entries describing them.
 * References the module loader can link normally become ELF relocations; the rest are returned
 * as klp relocations for `writeKlpRelocations` to add after the final link.
 */
export function extractPatchObject(units: ExtractUnit[], resolver: SymbolResolver): ExtractResult {
  const b = new PatchObjectBuilder();
  const counter = { n: 0 };
  const klpRelocs: KlpReloc[] = [];
  const refusals: Refusal[] = [];
  const functions: PatchedFunction[] = [];
  const addedGlobals = new Set<string>();
  for (const u of units) {
    const m = new ObjectModel(u.patched);
    for (const f of m.functions()) if (f.bind !== STB_LOCAL && u.diff.added.includes(f.name)) addedGlobals.add(f.name);
  }
  for (const u of units) {
    refusals.push(...u.diff.refusals);
    new UnitExtractor(u, b, resolver, counter, klpRelocs, refusals, functions, addedGlobals).run();
  }
  return { object: b.build(), functions, klpRelocs, refusals };
}
