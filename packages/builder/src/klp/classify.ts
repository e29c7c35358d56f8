import type { SymbolLocation, SymbolQuery, SymbolResolver } from './types.ts';

/** What a reference from carried code to something not carried becomes. */
export type Classification =
  /** A normal relocation to an undefined global: exported by vmlinux, modpost adds its CRC. */
  | { kind: 'export'; name: string }
  /** A livepatch relocation the kernel resolves at load (.klp.rela / .klp.sym). */
  | { kind: 'klp'; object: string; name: string; sympos: number }
  | { kind: 'refuse'; reason: string };

/** Sections whose relocations must be in place before the module's own init runs. */
const EARLY_SECTIONS = new Set(['__jump_table', '.altinstr_replacement', '.altinstructions', '.altinstr_aux']);

/**
 * Decides how a reference to `query.name` is linked into the patch module.
 *
 * - exported by vmlinux → normal undefined-symbol relocation;
 * - anything else (a static, a non-exported global, anything in a module) → klp relocation;
 * - a vmlinux patch referring to a module symbol → refused: it could not be resolved while that
 *   module is absent, yet the vmlinux part of a livepatch is applied at once;
 * - a module symbol referenced from a special section that the module loader consumes at load
 *   (jump labels, alternatives) → refused: 6.1 applies vmlinux klp relocations during the module's
 *   own relocation (kernel/module/main.c apply_relocations), but a module's only when that module
 *   comes (klp_module_coming), after jump labels and alternatives were already processed.
 */
export function classifyReference(resolver: SymbolResolver, query: SymbolQuery, fromSection: string): Classification {
  const loc: SymbolLocation | undefined = resolver.resolve(query);
  if (loc === undefined) {
    return {
      kind: 'refuse',
      reason: `${query.name}, referenced from ${query.unit}, is not a symbol of the target kernel (${query.object}${query.local ? ', static' : ''}): it may be inlined everywhere in the shipped build or missing from this configuration`,
    };
  }
  if (loc.object === 'vmlinux' && loc.exported) return { kind: 'export', name: query.name };
  if (query.object === 'vmlinux' && loc.object !== 'vmlinux') {
    return {
      kind: 'refuse',
      reason: `patched vmlinux code in ${query.unit} refers to ${query.name}, which lives in the module ${loc.object}: it cannot be resolved while that module is not loaded`,
    };
  }
  if (loc.object !== 'vmlinux' && EARLY_SECTIONS.has(fromSection)) {
    return {
      kind: 'refuse',
      reason:
        fromSection === '__jump_table'
          ? `a static branch whose key ${query.name} lives in module ${loc.object} cannot be carried: the key is resolved only after the patch module's jump labels were initialised`
          : `an alternative instruction in ${query.unit} refers to ${query.name} in module ${loc.object}, which is resolved only after alternatives were applied`,
    };
  }
  return { kind: 'klp', object: loc.object, name: query.name, sympos: loc.sympos };
}
