import type { ElfSymbol } from '../elf/read.ts';
import type { ObjectModel } from '../klp/model.ts';
import { uniqueSymbol, type LibSymbol, type SharedLibrary } from './shlib.ts';

const R_X86_64_GOTPCRELX = 41;
const R_X86_64_REX_GOTPCRELX = 42;
const R_X86_64_GOTTPOFF = 22;

export interface Match {
  ok: boolean;
  /** Why not, when !ok. */
  reason?: string;
}

/**
 * Compares a function of the rebuilt (unpatched) object with the shipped
 * library's copy: same size, same bytes outside relocated fields. Fields the
 * linker may rewrite (GOT loads relaxed to lea, indirect calls to direct
 * ones, TLS loads relaxed) are masked with their opcode bytes.
 */
export function matchesShipped(m: ObjectModel, sym: ElfSymbol, lib: SharedLibrary, libSym: LibSymbol): Match {
  if (libSym.size !== sym.size) return { ok: false, reason: `size ${sym.size} rebuilt, ${libSym.size} shipped` };
  const sec = m.section(sym.shndx);
  if (sec === undefined) return { ok: false, reason: 'no section' };
  const start = Number(sym.value);
  const mine = Buffer.from(sec.data.subarray(start, start + sym.size));
  const theirs = Buffer.from(lib.bytesAt(libSym.offset, libSym.size));
  for (const r of m.relasIn(sec.index, start, start + sym.size)) {
    const at = r.offset - start;
    const width = r.type === 1 ? 8 : 4;
    const lead =
      r.type === R_X86_64_GOTPCRELX || r.type === R_X86_64_REX_GOTPCRELX || r.type === R_X86_64_GOTTPOFF ? 3 : 0;
    for (let i = Math.max(0, at - lead); i < Math.min(mine.length, at + width); i++) {
      mine[i] = 0;
      theirs[i] = 0;
    }
  }
  if (mine.equals(theirs)) return { ok: true };
  let first = 0;
  while (first < mine.length && mine[first] === theirs[first]) first++;
  return { ok: false, reason: `bytes differ from offset 0x${first.toString(16)} of the function` };
}

export interface UnitMatch {
  /** Functions of the unit the library has a symbol for. */
  compared: number;
  matched: number;
  mismatched: { name: string; reason: string }[];
}

/** How many of a rebuilt unit's functions match the shipped library (evidence the flags are Debian's). */
export function matchUnit(m: ObjectModel, lib: SharedLibrary, unit: string): UnitMatch {
  const out: UnitMatch = { compared: 0, matched: 0, mismatched: [] };
  for (const f of m.functions()) {
    let ls: LibSymbol | undefined;
    try {
      ls = uniqueSymbol(lib, f.name, unit);
    } catch {
      continue;
    }
    if (ls === undefined) continue;
    out.compared++;
    const r = matchesShipped(m, f, lib, ls);
    if (r.ok) out.matched++;
    else out.mismatched.push({ name: f.name, reason: r.reason ?? '' });
  }
  return out;
}
