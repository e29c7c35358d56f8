/** A reason the factory will not build a livepatch for a change, in words a kernel engineer accepts. */
export interface Refusal {
  /** The symbol (function or variable) concerned, as named in the patched object. */
  symbol: string;
  unit: string;
  reason: string;
}

export interface ChangedFunction {
  /** Name in the patched object (numbers may differ from the original's). */
  name: string;
  /** Name of the original function in the running kernel: the klp_func old_name. */
  originalName: string;
  section: string;
}

export interface DiffResult {
  unit: string;
  /** Functions whose original exists and whose code changed: each becomes a klp_func. */
  changed: ChangedFunction[];
  /** Functions new in the patched object: carried, not patched. */
  added: string[];
  /** `.cold` parts carried with their changed parents (never patched themselves). */
  carriedChildren: string[];
  /** True when the patch compiles to no change of code in this configuration. */
  noChange: boolean;
  refusals: Refusal[];
  /** Patched name → original name for every correlated symbol (functions and data). */
  correlation: Map<string, string>;
}

/** Where a symbol lives in the target kernel. */
export interface SymbolLocation {
  /** `vmlinux` or the module name (e.g. `ip_gre`). */
  object: string;
  /** True when exported by that object (listed in Module.symvers). */
  exported: boolean;
  /** 0 when the name is unique in that object, else its 1-based position in the object's kallsyms order. */
  sympos: number;
}

export interface SymbolQuery {
  /** The original name (as in the running kernel's kallsyms). */
  name: string;
  /** The translation unit that references it, e.g. `security/keys/keyctl_pkey.c`. */
  unit: string;
  /** The object being patched: `vmlinux` or the module name. */
  object: string;
  /** True when the symbol is defined (local or global) in that unit; false for an undefined reference. */
  definedInUnit: boolean;
  /** True for a STB_LOCAL symbol (a static): then only `object` can hold it, and `unit` picks among duplicates. */
  local: boolean;
  kind: 'function' | 'object' | 'unknown';
}

/**
 * Answers where the target kernel defines a symbol. Implemented by the build driver from
 * Module.symvers, the kernel's symbol map (kallsyms order) and the shipped modules' symbol tables.
 * Returns undefined when the symbol does not exist in the target kernel.
 */
export interface SymbolResolver {
  resolve(query: SymbolQuery): SymbolLocation | undefined;
}

/** A relocation the livepatch core applies at load (.klp.rela.<symbol object>.<section>). */
export interface KlpReloc {
  /** Section of the patch object (unique name, e.g. `.text.livegraft.3`, or a special section like `__jump_table`). */
  section: string;
  offset: number;
  type: number;
  addend: number;
  symbol: { object: string; name: string; sympos: number };
  /**
   * The object whose arrival applies this relocation (`.klp.rela.<relaObject>.<section>`):
   * vmlinux for vmlinux symbols, else the patched module, which may reference
   * symbols of the modules it depends on. Defaults to the symbol's object.
   */
  relaObject?: string;
}

export interface PatchedFunction {
  /** klp_func.old_name */
  name: string;
  /** klp_object.name: `vmlinux` or the module name. */
  object: string;
  /** klp_func.old_sympos */
  sympos: number;
  /** Global symbol of the new code in the patch object, for klp_func.new_func. */
  newSymbol: string;
  unit: string;
}

export interface ExtractUnit {
  unit: string;
  patched: Buffer;
  diff: DiffResult;
  /** `vmlinux` or the module name that contains this unit. */
  object: string;
}

export interface ExtractResult {
  /** One relocatable object holding every carried function, its data and special-section entries. */
  object: Buffer;
  functions: PatchedFunction[];
  klpRelocs: KlpReloc[];
  /** Problems found while classifying references; a non-empty list means: do not build. */
  refusals: Refusal[];
}
