import { LivegraftError } from '@livegraft/protocol';
import {
  bytesAtAddress,
  relocationWidth,
  SHF_EXECINSTR,
  SHN_LORESERVE,
  SHN_UNDEF,
  STB_LOCAL,
  STT_FILE,
  STT_FUNC,
  type ElfFile,
  type ElfSymbol,
} from '../elf/index.ts';
import type { KallsymsSymbol } from './resolver.ts';

/** A function whose compiled original differs from the shipped kernel's. */
export interface Mismatch {
  unit: string;
  function: string;
  reason: string;
}

export interface ReproResult {
  compared: number;
  matched: number;
  mismatches: Mismatch[];
}

/** The function's bytes with every relocated field zeroed, so link-time values do not count. */
function masked(bytes: Buffer, fields: readonly { offset: number; width: number }[]): Buffer {
  const out = Buffer.from(bytes);
  for (const f of fields)
    if (f.offset >= 0 && f.offset + f.width <= out.length) out.fill(0, f.offset, f.offset + f.width);
  return out;
}

function relocFields(elf: ElfFile, sym: ElfSymbol): { offset: number; width: number }[] {
  const start = Number(sym.value);
  return (elf.relas.get(sym.shndx) ?? [])
    .filter((r) => r.offset >= start && r.offset < start + sym.size)
    .map((r) => ({ offset: r.offset - start, width: relocationWidth(r.type) }));
}

function functionBytes(elf: ElfFile, sym: ElfSymbol): Buffer {
  const sec = elf.sections[sym.shndx];
  if (!sec) return Buffer.alloc(0);
  const start = Number(sym.value);
  return sec.data.subarray(start, start + sym.size);
}

/** Functions of a compiled unit worth comparing: defined code, not init/exit. */
function unitFunctions(elf: ElfFile): ElfSymbol[] {
  return elf.symbols.filter((s) => {
    if (s.type !== STT_FUNC || s.size === 0 || s.shndx === SHN_UNDEF || s.shndx >= SHN_LORESERVE) return false;
    const sec = elf.sections[s.shndx];
    return sec !== undefined && (sec.flags & SHF_EXECINSTR) !== 0 && !/^\.(init|exit)\./.test(sec.name);
  });
}

/**
 * Compares a unit compiled here (unpatched) with the shipped vmlinux, function
 * by function, relocation fields masked. Where a name is duplicated, any
 * candidate of the same size and bytes counts as the match.
 */
export function compareWithVmlinux(
  unit: string,
  original: ElfFile,
  vmlinux: ElfFile,
  kallsyms: ReadonlyMap<string, readonly KallsymsSymbol[]>,
): ReproResult {
  const res: ReproResult = { compared: 0, matched: 0, mismatches: [] };
  for (const sym of unitFunctions(original)) {
    res.compared++;
    const mine = masked(functionBytes(original, sym), relocFields(original, sym));
    const candidates = (kallsyms.get(sym.name) ?? []).filter((k) => /[tT]/.test(k.type));
    if (candidates.length === 0) {
      res.mismatches.push({ unit, function: sym.name, reason: 'not in the shipped kernel (inlined or dropped there)' });
      continue;
    }
    let ok = false;
    for (const c of candidates) {
      let theirs: Buffer;
      try {
        theirs = bytesAtAddress(vmlinux, c.address, sym.size);
      } catch {
        continue;
      }
      const fields = relocFields(original, sym);
      if (masked(theirs, fields).equals(mine)) {
        ok = true;
        break;
      }
    }
    if (ok) res.matched++;
    else res.mismatches.push({ unit, function: sym.name, reason: 'its code differs from the shipped vmlinux' });
  }
  return res;
}

/** The same comparison against the shipped module the unit is linked into. */
export function compareWithModule(unit: string, original: ElfFile, ko: ElfFile): ReproResult {
  const res: ReproResult = { compared: 0, matched: 0, mismatches: [] };
  const file = unit.split('/').pop() ?? unit;
  // Locals of this unit follow its STT_FILE symbol in the module's symbol
  // table; Debian's modules carry none, and then any local of the name counts.
  const hasFiles = ko.symbols.some((s) => s.type === STT_FILE);
  const shipped = new Map<string, ElfSymbol[]>();
  let current: string | undefined;
  for (const s of ko.symbols) {
    if (s.type === STT_FILE) {
      current = s.name;
      continue;
    }
    if (s.type !== STT_FUNC || s.shndx === SHN_UNDEF || s.shndx >= SHN_LORESERVE) continue;
    if (hasFiles && s.bind === STB_LOCAL && current !== file) continue;
    shipped.set(s.name, [...(shipped.get(s.name) ?? []), s]);
  }
  for (const sym of unitFunctions(original)) {
    res.compared++;
    const theirs = shipped.get(sym.name) ?? [];
    if (theirs.length === 0) {
      res.mismatches.push({ unit, function: sym.name, reason: 'not in the shipped module (inlined or dropped there)' });
      continue;
    }
    const ok = theirs.some((t) => {
      if (t.size !== sym.size) return false;
      const fields = [...relocFields(ko, t), ...relocFields(original, sym)];
      return masked(functionBytes(ko, t), fields).equals(masked(functionBytes(original, sym), fields));
    });
    if (ok) res.matched++;
    else res.mismatches.push({ unit, function: sym.name, reason: 'its code differs from the shipped module' });
  }
  return res;
}

/** Stops the build on any mismatch unless forced: the patch would be built for code the kernel does not run. */
export function assertReproducible(results: readonly ReproResult[], release: string, force: boolean): Mismatch[] {
  const mismatches = results.flatMap((r) => r.mismatches);
  if (mismatches.length > 0 && !force) {
    const shown = mismatches.slice(0, 20).map((m) => `  ${m.unit}: ${m.function}: ${m.reason}`);
    throw new LivegraftError(
      'NOT_REPRODUCIBLE',
      `the unpatched code compiled here does not match the shipped ${release} kernel in ${mismatches.length} function(s):\n` +
        `${shown.join('\n')}\nA live patch built from it could miss code the kernel really runs. ` +
        'Check the toolchain (gcc-12, pahole) and the prepared config, or pass --force to build anyway.',
      { details: { mismatches } },
    );
  }
  return mismatches;
}
