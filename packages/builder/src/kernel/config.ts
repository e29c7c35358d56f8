import { LivegraftError } from '@livegraft/protocol';

/** Options that legitimately differ between Debian's build config and a local rebuild's. */
export const CONFIG_ALLOWED_DIFFERENCES: readonly string[] = [
  'CONFIG_BUILD_SALT',
  'CONFIG_MODULE_SIG_ALL',
  'CONFIG_MODULE_SIG_KEY',
  'CONFIG_SYSTEM_TRUSTED_KEYS',
  'CONFIG_SYSTEM_REVOCATION_KEYS',
  'CONFIG_SYSTEM_EXTRA_CERTIFICATE',
  'CONFIG_SYSTEM_EXTRA_CERTIFICATE_SIZE',
];

/** Kconfig text → option → value ('n' for "is not set"). */
export function parseKconfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set !== null) {
      out.set(set[1] ?? '', set[2] ?? '');
      continue;
    }
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset !== null) out.set(unset[1] ?? '', 'n');
  }
  return out;
}

export interface ConfigDifference {
  option: string;
  /** undefined: the option is absent from that side. */
  shipped: string | undefined;
  prepared: string | undefined;
}

export interface ConfigComparison {
  /** Differences that are expected (signing keys, build salt). */
  allowed: ConfigDifference[];
  /** Every other difference: the prepared tree would not build what Debian built. */
  unexpected: ConfigDifference[];
}

/** Compares two configs; an absent option and "is not set" count as equal. */
export function compareKconfig(shippedText: string, preparedText: string): ConfigComparison {
  const shipped = parseKconfig(shippedText);
  const prepared = parseKconfig(preparedText);
  const norm = (v: string | undefined): string => v ?? 'n';
  const result: ConfigComparison = { allowed: [], unexpected: [] };
  for (const option of [...new Set([...shipped.keys(), ...prepared.keys()])].sort()) {
    const a = shipped.get(option);
    const b = prepared.get(option);
    if (norm(a) === norm(b)) continue;
    const diff = { option, shipped: a, prepared: b };
    (CONFIG_ALLOWED_DIFFERENCES.includes(option) ? result.allowed : result.unexpected).push(diff);
  }
  return result;
}

const TOOL_OPTIONS =
  /^CONFIG_(CC_VERSION_TEXT|GCC_VERSION|AS_VERSION|LD_VERSION|PAHOLE_VERSION|CLANG_VERSION|RUSTC_VERSION|BINDGEN_VERSION|PAHOLE_HAS_|CC_HAS_|AS_HAS_|LD_HAS_|TOOLS_SUPPORT_)/;

/** Throws KERNEL_CONFIG_MISMATCH listing every unexpected difference, shipped vs prepared. */
export function assertConfigMatches(release: string, cmp: ConfigComparison): void {
  if (cmp.unexpected.length === 0) return;
  const show = (v: string | undefined): string => (v === undefined ? '(absent)' : v);
  const lines = cmp.unexpected.map((d) => `  ${d.option}: shipped ${show(d.shipped)}, prepared ${show(d.prepared)}`);
  const toolish = cmp.unexpected.some((d) => TOOL_OPTIONS.test(d.option));
  throw new LivegraftError(
    'KERNEL_CONFIG_MISMATCH',
    `the prepared source tree's config differs from ${release}'s shipped config in ${cmp.unexpected.length} option(s)` +
      `${toolish ? ' (compiler, assembler, linker or pahole version options differ: install the exact versions the config names, e.g. gcc-12 and dwarves from the same Debian release)' : ' (likely a different gcc-12 or pahole version than Debian built with)'}:\n` +
      lines.slice(0, 50).join('\n') +
      (lines.length > 50 ? `\n  ... and ${lines.length - 50} more` : ''),
    { details: { unexpected: cmp.unexpected, allowed: cmp.allowed } },
  );
}
