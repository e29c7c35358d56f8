/**
 * Names the compiler numbers per translation unit ("mangled" names in kpatch's words):
 * `foo.123`, `__func__.4`, `foo.constprop.0`, `__UNIQUE_ID_ddebug123`. The numbers move when
 * unrelated code is added, so originals and patched objects are correlated on the name with
 * every number replaced.
 */
export function canonicalName(name: string): string {
  return name
    .replace(/^(__UNIQUE_ID_[A-Za-z_]*?)\d+/, '$1N')
    .replace(/^\.L([A-Za-z]*)\d+$/, '.L$1N')
    .replace(/\.\d+(?=\.|$)/g, '.N');
}

/** Suffixes of compiler-made clones and split parts of a function. */
const CHILD_SUFFIX = /\.(cold|part|isra|constprop|lto_priv|localalias)(\.|$)/;

/** The function a `.cold` / `.part.N` / `.isra.N` / `.constprop.N` child was split or cloned from. */
export function parentName(name: string): string | undefined {
  const m = CHILD_SUFFIX.exec(name);
  return m === null ? undefined : name.slice(0, m.index);
}

/** A `.cold` part is only entered by jumps from its parent; it has no ftrace entry of its own. */
export function isColdPart(name: string): boolean {
  return /\.cold(\.\d+)?$/.test(name);
}

/**
 * Static data that exists once per call site and belongs to the code that uses it: a new copy
 * of the code gets a new copy of it (dynamic debug descriptors, WARN_ONCE / printk_once flags,
 * `__func__` strings, lockdep class keys, ratelimit states).
 */
export function isPerCallSiteData(name: string): boolean {
  const c = canonicalName(name);
  return (
    /^__UNIQUE_ID_/.test(c) ||
    /^(__func__|__FUNCTION__|__PRETTY_FUNCTION__|__already_done|__warned|__print_once|__key|_rs|descriptor|__msg|__dyndbg|__tpstrtab|__setup_str|CSWTCH)\./.test(
      c,
    ) ||
    /^\.L/.test(c)
  );
}

/** Sections that carry no behaviour of their own for the "what changed" question. */
export function isNoiseSection(name: string): boolean {
  return (
    /^\.(discard|note|comment|debug|eh_frame|orc_unwind|retpoline_sites|return_sites|static_call_sites|ibt_endbr_seal|llvm|BTF|rela|group|symtab|strtab|shstrtab|modinfo|gnu\.linkonce\.this_module)/.test(
      name,
    ) ||
    /^(__mcount_loc|__patchable_function_entries|__ksymtab|___ksymtab|__kcrctab|__ksymtab_strings|__export_symbol)/.test(
      name,
    ) ||
    name === '.note.GNU-stack' ||
    name === ''
  );
}

/** Special sections whose entries describe code and follow it (copied per entry, not compared). */
export const SPECIAL_SECTIONS = [
  '__bug_table',
  '__ex_table',
  '.altinstructions',
  '.altinstr_replacement',
  '.altinstr_aux',
  '__jump_table',
  '.orc_unwind',
  '.orc_unwind_ip',
  '.parainstructions',
  '.smp_locks',
  '.static_call_sites',
  '.retpoline_sites',
  '.return_sites',
  '.call_sites',
  '__tracepoints_ptrs',
] as const;

export function isSpecialSection(name: string): boolean {
  return (SPECIAL_SECTIONS as readonly string[]).includes(name);
}

/** Code or data that runs or lives only during boot / module init or exit. */
export function isInitExitSection(name: string): boolean {
  return /^\.(init|exit)\./.test(name);
}

export function isMergeableStrings(flags: number, name: string): boolean {
  return (flags & 0x30) === 0x30 || name.startsWith('.rodata.str');
}
