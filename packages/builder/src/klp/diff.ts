import { SHT_NOBITS } from '../elf/constants.ts';
import type { ElfSymbol } from '../elf/read.ts';
import { ObjectModel } from './model.ts';
import {
  canonicalName,
  isColdPart,
  isInitExitSection,
  isMergeableStrings,
  isNoiseSection,
  isPerCallSiteData,
  isSpecialSection,
  parentName,
} from './names.ts';
import type { ChangedFunction, DiffResult, Refusal } from './types.ts';

export interface DiffOptions {
  /** Translation unit, e.g. `security/keys/keyctl_pkey.c`; named in refusals. */
  unit: string;
}

/**
 * Pairs the defined symbols of two builds of one unit: by name with compiler numbers replaced,
 * in symbol-table order among equal names. Returns patched symbol → original symbol.
 */
export function correlate(
  original: ObjectModel,
  patched: ObjectModel,
  pick: (m: ObjectModel) => ElfSymbol[],
): Map<ElfSymbol, ElfSymbol> {
  const key = (m: ObjectModel): Map<string, ElfSymbol[]> => {
    const byName = new Map<string, ElfSymbol[]>();
    for (const s of pick(m)) {
      const k = canonicalName(s.name);
      const list = byName.get(k) ?? [];
      list.push(s);
      byName.set(k, list);
    }
    return byName;
  };
  const o = key(original);
  const out = new Map<ElfSymbol, ElfSymbol>();
  for (const [k, list] of key(patched)) {
    const olist = o.get(k) ?? [];
    list.forEach((s, i) => {
      const match = olist[i];
      if (match !== undefined) out.set(s, match);
    });
  }
  return out;
}

/** Bytes plus relocations of a symbol's range, with every relocation target reduced to its identity. */
export function signature(m: ObjectModel, sym: ElfSymbol): { bytes: Buffer; relocs: string[] } {
  const sec = m.section(sym.shndx);
  if (sec === undefined) return { bytes: Buffer.alloc(0), relocs: [] };
  const { start, end } = m.rangeOf(sym);
  const relocs = m
    .relasIn(sec.index, start, end)
    .map((r) => `${r.offset - start}:${r.type}:${m.identity(m.target(r, sec))}`);
  const bytes = sec.type === SHT_NOBITS ? Buffer.from(`nobits:${end - start}`) : m.bytesOf(sym);
  return { bytes, relocs };
}

function same(a: ReturnType<typeof signature>, b: ReturnType<typeof signature>): boolean {
  return a.bytes.equals(b.bytes) && a.relocs.length === b.relocs.length && a.relocs.every((r, i) => r === b.relocs[i]);
}

function sectionName(m: ObjectModel, sym: ElfSymbol): string {
  return m.section(sym.shndx)?.name ?? '';
}

/**
 * Compares two builds of one translation unit function by function (bytes and relocation
 * targets by identity), pairs split/cloned children with their parents, and refuses changes a
 * livepatch cannot carry: changed variables, __init/__exit code, functions ftrace cannot redirect.
 */
export function diffObjects(original: Buffer, patched: Buffer, opts: DiffOptions): DiffResult {
  const o = new ObjectModel(original);
  const p = new ObjectModel(patched);
  const unit = opts.unit;
  const refusals: Refusal[] = [];
  const correlation = new Map<string, string>();

  const funcs = correlate(o, p, (m) => m.functions());
  const objects = correlate(o, p, (m) => m.objects());
  for (const [ps, os] of [...funcs, ...objects]) correlation.set(ps.name, os.name);

  const changed = new Set<ElfSymbol>();
  const added: string[] = [];
  const pFuncs = p.functions().filter((f) => !isNoiseSection(sectionName(p, f)));
  const pByName = new Map(pFuncs.map((f) => [f.name, f]));
  for (const f of pFuncs) {
    const of = funcs.get(f);
    if (of === undefined) {
      // A new __init function can only be called from (refused) init code; nothing to carry.
      if (!isInitExitSection(sectionName(p, f))) added.push(f.name);
      continue;
    }
    if (!same(signature(o, of), signature(p, f))) changed.add(f);
  }

  // A changed child makes its parent changed: the parent's copy must enter the new child.
  for (const f of [...changed]) {
    const parent = parentName(f.name);
    if (parent === undefined) continue;
    const pf = pByName.get(parent);
    if (pf !== undefined && funcs.has(pf)) changed.add(pf);
  }

  const result: ChangedFunction[] = [];
  const carriedChildren = new Set<string>();
  for (const f of changed) {
    const of = funcs.get(f);
    if (of === undefined) continue;
    const sec = sectionName(p, f);
    if (isColdPart(f.name)) {
      carriedChildren.add(f.name);
      continue;
    }
    if (isInitExitSection(sec)) {
      refusals.push({
        symbol: f.name,
        unit,
        reason: `${f.name} is ${sec.startsWith('.init') ? '__init' : '__exit'} code (${sec}): it ran at boot or module load (or runs only at unload) and is not in memory to be redirected; carry such a change with a livepatch callback or a shadow variable instead`,
      });
      continue;
    }
    if (sec.startsWith('.noinstr.text') || sec.startsWith('.entry.text')) {
      refusals.push({
        symbol: f.name,
        unit,
        reason: `${f.name} is noinstr code (${sec}): it runs where ftrace must not be entered, so the livepatch core cannot redirect it`,
      });
      continue;
    }
    const osec = o.section(of.shndx);
    if (osec === undefined || !(o.mcount.get(of.shndx)?.has(Number(of.value)) ?? false)) {
      refusals.push({
        symbol: f.name,
        unit,
        reason: `${of.name} has no ftrace call site at its entry (notrace, or its profiling call was removed): the livepatch core redirects functions only through ftrace`,
      });
      continue;
    }
    result.push({ name: f.name, originalName: of.name, section: sec });
  }
  // Every carried function takes its .cold part along, changed or not: its jumps land there.
  const carried = new Set([...result.map((c) => c.name), ...added]);
  for (const f of pFuncs) {
    const parent = parentName(f.name);
    if (parent !== undefined && isColdPart(f.name) && carried.has(parent)) carriedChildren.add(f.name);
  }

  for (const [ps, os] of objects) {
    const sec = sectionName(p, ps);
    const secFlags = p.section(ps.shndx)?.flags ?? 0;
    if (isNoiseSection(sec) || isSpecialSection(sec) || isPerCallSiteData(ps.name) || isMergeableStrings(secFlags, sec))
      continue;
    if (same(signature(o, os), signature(p, ps))) continue;
    const init = isInitExitSection(sec);
    refusals.push({
      symbol: ps.name,
      unit,
      reason: init
        ? `the patch changes ${ps.name} in ${sec}, data used only at boot or module init: a livepatch cannot change what already ran`
        : `the patch changes the variable ${ps.name} (${sec}: its initial value, size or what it points to): a livepatch replaces functions, the running kernel keeps the existing variable; use a shadow variable or a livepatch callback instead`,
    });
  }
  const noChange = result.length === 0 && refusals.length === 0;
  return {
    unit,
    changed: result,
    added: noChange ? [] : added.filter((a) => !isColdPart(a) || !carriedChildren.has(a)),
    carriedChildren: [...carriedChildren],
    noChange,
    refusals,
    correlation,
  };
}
