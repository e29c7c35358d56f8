import { SHF_WRITE, STB_GLOBAL } from '../elf/constants.ts';
import type { ElfSymbol } from '../elf/read.ts';
import { correlate, signature } from '../klp/diff.ts';
import { ObjectModel } from '../klp/model.ts';
import { isColdPart, isMergeableStrings, isNoiseSection, parentName } from '../klp/names.ts';
import type { Refusal } from '../klp/types.ts';

/**
 * Functions that take the caller's __LINE__ as an argument: a change of
 * nothing but that constant (code moved down a few lines by the patch) is
 * not a change of behaviour. OpenSSL's ERR_raise and OPENSSL_malloc family,
 * glibc's assert.
 */
export const DEFAULT_LINE_CALLEES: readonly string[] = [
  'ERR_set_debug',
  'ERR_put_error',
  'CRYPTO_malloc',
  'CRYPTO_zalloc',
  'CRYPTO_realloc',
  'CRYPTO_clear_realloc',
  'CRYPTO_free',
  'CRYPTO_clear_free',
  'CRYPTO_strdup',
  'CRYPTO_strndup',
  'CRYPTO_memdup',
  'CRYPTO_secure_malloc',
  'CRYPTO_secure_zalloc',
  'CRYPTO_secure_free',
  'CRYPTO_secure_clear_free',
  'OPENSSL_die',
  '__assert_fail',
  '__assert_perror_fail',
  '__malloc_assert',
];

/** How far after a `mov $line, %reg` the call taking it may be (argument set-up in between). */
const LINE_CALL_WINDOW = 64;

export interface UserspaceDiff {
  unit: string;
  /** Changed functions: patched name → original name. */
  changed: { name: string; originalName: string }[];
  /** Functions whose only difference is __LINE__ constants passed to the line callees. */
  lineOnly: string[];
  /** Functions new in the patched build (carried with the changed ones, never redirected to). */
  added: string[];
  /** `.cold` parts of changed functions (carried, not redirected). */
  carriedChildren: string[];
  refusals: Refusal[];
  /** Patched name → original name for every correlated function and object. */
  correlation: Map<string, string>;
}

/**
 * True when `a` and `b` (same length, same relocations) differ only inside
 * the 32-bit immediates of `mov $imm32, %r32` instructions whose value goes
 * to one of `callees` within LINE_CALL_WINDOW bytes.
 */
export function onlyLineConstants(
  m: ObjectModel,
  sym: ElfSymbol,
  a: Buffer,
  b: Buffer,
  callees: ReadonlySet<string>,
): boolean {
  if (a.length !== b.length) return false;
  const sec = m.section(sym.shndx);
  if (sec === undefined) return false;
  const { start, end } = m.rangeOf(sym);
  const calls = m
    .relasIn(sec.index, start, end)
    .map((r) => ({ at: r.offset - start, t: m.target(r, sec) }))
    .filter((c) => (c.t.kind === 'external' || c.t.kind === 'symbol') && callees.has(nameOf(c.t)));
  let i = 0;
  while (i < a.length) {
    if (a[i] === b[i]) {
      i++;
      continue;
    }
    // The differing byte must lie in an imm32 of B8+r (optionally REX.B 41) found in both builds.
    let covered = false;
    for (let op = Math.max(0, i - 4); op < i && !covered; op++) {
      const opA = a[op] ?? 0;
      if (opA < 0xb8 || opA > 0xbf || b[op] !== opA) continue;
      if (op > 0 && (a[op - 1] === 0x48 || a[op - 1] === 0x49)) continue; // movabs: a 64-bit constant
      const immEnd = op + 5;
      if (i >= immEnd) continue;
      if (
        !reachesLineCall(
          a,
          immEnd,
          calls.map((c) => c.at),
        )
      )
        continue;
      const va = a.readUInt32LE(op + 1);
      const vb = b.readUInt32LE(op + 1);
      if (va > 100_000 || vb > 100_000) continue;
      covered = true;
      i = immEnd;
    }
    if (!covered) return false;
  }
  return true;
}

/**
 * True when a call to a line callee follows `from` within LINE_CALL_WINDOW
 * bytes, directly or after a jump to a shared error tail (gcc merges the
 * ERR_raise calls of a function and jumps there with the line in a register).
 */
function reachesLineCall(code: Buffer, from: number, callsAt: number[]): boolean {
  const near = (at: number): boolean => callsAt.some((c) => c > at && c <= at + LINE_CALL_WINDOW);
  if (near(from)) return true;
  for (let k = from; k < Math.min(code.length, from + 16); k++) {
    let target: number | undefined;
    if (code[k] === 0xeb && k + 2 <= code.length) target = k + 2 + code.readInt8(k + 1);
    else if (code[k] === 0xe9 && k + 5 <= code.length) target = k + 5 + code.readInt32LE(k + 1);
    if (target !== undefined && target >= 0 && target < code.length && near(target - 1)) return true;
  }
  return false;
}

function nameOf(t: ReturnType<ObjectModel['target']>): string {
  if (t.kind === 'external') return t.name;
  if (t.kind === 'symbol') return t.symbol.name;
  return '';
}

function sameSignature(a: ReturnType<typeof signature>, b: ReturnType<typeof signature>): boolean {
  return a.bytes.equals(b.bytes) && a.relocs.length === b.relocs.length && a.relocs.every((r, i) => r === b.relocs[i]);
}

/**
 * Compares two builds of one translation unit of a shared library, function
 * by function (the kernel factory's correlation and signatures), ignoring
 * __LINE__-only changes, and refuses changes a live patch of running
 * processes cannot carry: any change to a variable's initial value or size
 * (the running process keeps its data).
 */
export function diffUserspaceUnit(
  original: Buffer,
  patched: Buffer,
  opts: { unit: string; lineCallees?: readonly string[] },
): UserspaceDiff {
  const o = new ObjectModel(original);
  const p = new ObjectModel(patched);
  const unit = opts.unit;
  const callees = new Set(opts.lineCallees ?? DEFAULT_LINE_CALLEES);
  const refusals: Refusal[] = [];
  const correlation = new Map<string, string>();
  const funcs = correlate(o, p, (m) => m.functions());
  const objects = correlate(o, p, (m) => m.objects());
  for (const [ps, os] of [...funcs, ...objects]) correlation.set(ps.name, os.name);
  const secName = (m: ObjectModel, s: ElfSymbol): string => m.section(s.shndx)?.name ?? '';

  const changed = new Set<ElfSymbol>();
  const lineOnly: string[] = [];
  const added: string[] = [];
  const pFuncs = p.functions().filter((f) => !isNoiseSection(secName(p, f)));
  const pByName = new Map(pFuncs.map((f) => [f.name, f]));
  for (const f of pFuncs) {
    const of = funcs.get(f);
    if (of === undefined) {
      added.push(f.name);
      continue;
    }
    const so = signature(o, of);
    const sp = signature(p, f);
    if (sameSignature(so, sp)) continue;
    const relocsSame = so.relocs.length === sp.relocs.length && so.relocs.every((r, i) => r === sp.relocs[i]);
    if (relocsSame && onlyLineConstants(p, f, so.bytes, sp.bytes, callees)) {
      lineOnly.push(f.name);
      continue;
    }
    changed.add(f);
  }
  // A changed .cold or .part child changes its parent: the parent's new copy must enter the new child.
  for (const f of [...changed]) {
    const parent = parentName(f.name);
    const pf = parent === undefined ? undefined : pByName.get(parent);
    if (pf !== undefined && funcs.has(pf)) changed.add(pf);
  }
  const result: { name: string; originalName: string }[] = [];
  const carriedChildren: string[] = [];
  // Aliases (glibc's __GI_ names beside the public one) are one function: carry and redirect it once.
  const rank = (x: ElfSymbol): number => (x.bind === STB_GLOBAL ? 0 : 2) + (x.name.startsWith('__GI_') ? 1 : 0);
  const byAddress = new Map<string, ElfSymbol>();
  for (const f of changed) {
    const key = `${f.shndx}:${f.value}`;
    const have = byAddress.get(key);
    if (have === undefined || rank(f) < rank(have)) byAddress.set(key, f);
  }
  for (const f of byAddress.values()) {
    const of = funcs.get(f);
    if (of === undefined) continue;
    if (isColdPart(f.name)) carriedChildren.push(f.name);
    else result.push({ name: f.name, originalName: of.name });
  }
  const carried = new Set(result.map((c) => c.name));
  for (const f of pFuncs) {
    const parent = parentName(f.name);
    if (parent !== undefined && isColdPart(f.name) && carried.has(parent) && !carriedChildren.includes(f.name))
      carriedChildren.push(f.name);
  }
  for (const [ps, os] of objects) {
    const sec = p.section(ps.shndx);
    if (sec === undefined || isNoiseSection(sec.name) || isMergeableStrings(sec.flags, sec.name)) continue;
    if (sameSignature(signature(o, os), signature(p, ps))) continue;
    refusals.push({
      symbol: ps.name,
      unit,
      reason:
        (sec.flags & SHF_WRITE) !== 0
          ? `the patch changes the variable ${ps.name} (${sec.name}: its initial value or size): running processes keep their copy of it; a user-space live patch replaces only code`
          : `the patch changes the constant table ${ps.name} (${sec.name}): the running library's unchanged functions keep using the old one; a user-space live patch replaces only code`,
    });
  }
  const newObjects = p.objects().filter((s) => ![...objects.keys()].includes(s) && !isNoiseSection(secName(p, s)));
  for (const s of newObjects) {
    const sec = p.section(s.shndx);
    if (sec !== undefined && (sec.flags & SHF_WRITE) !== 0)
      refusals.push({
        symbol: s.name,
        unit,
        reason: `the patch adds the variable ${s.name} (${sec.name}): new writable data cannot be added to running processes`,
      });
  }
  return {
    unit,
    changed: result,
    lineOnly,
    added: result.length === 0 ? [] : added.filter((a) => !carriedChildren.includes(a)),
    carriedChildren,
    refusals,
    correlation,
  };
}
