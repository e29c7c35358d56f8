import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError, fixSpecValidator, type FixSpec } from '@livegraft/protocol';

/** fix.json is a few kilobytes at most. */
const MAX_FIX_JSON_BYTES = 256 * 1024;
/** One C source of a fix; real fixes are a few kilobytes. */
export const MAX_SOURCE_BYTES = 4 * 1024 * 1024;
/** Local headers copied beside the sources. */
const MAX_LOCAL_HEADERS = 50;
/** The header the builder writes into every fix directory. */
export const GENERATED_HEADER = 'livegraft.h';
/** Prefix of every name the generated main file defines; fixes must not use it. */
const RESERVED_PREFIX = 'lg_';

/** A fix read from disk and checked on its own. */
export interface LoadedFix {
  /** Absolute directory. */
  dir: string;
  /** The directory as the user wrote it; error messages point here. */
  shownDir: string;
  spec: FixSpec;
  /** C sources (file names inside dir). */
  sources: string[];
  /** Local `*.h` files (file names inside dir), copied so sources can include them. */
  headers: string[];
  /** Upstream patches (file names inside dir), for a fix built from patches; empty for hand-written C. */
  patches: string[];
}

/** A fix built from upstream patches rather than hand-written replacement functions. */
export function isPatchFix(fix: LoadedFix): boolean {
  return fix.patches.length > 0;
}

/** A fix.json `symbols` entry taken apart: `name`, `name,N`, `module:name` or `module:name,N`. */
export interface SymbolRef {
  /** `vmlinux` or the module name, normalized (`_` for `-`). */
  object: string;
  name: string;
  /** 0 when the entry gives no position (the name must then be unique in its object). */
  sympos: number;
}

/** Parses a `symbols` entry the fix.json schema already accepted. */
export function parseSymbolRef(entry: string): SymbolRef {
  const colon = entry.indexOf(':');
  const rest = colon < 0 ? entry : entry.slice(colon + 1);
  const comma = rest.indexOf(',');
  return {
    object: colon < 0 ? 'vmlinux' : normalizeObject(entry.slice(0, colon)),
    name: comma < 0 ? rest : rest.slice(0, comma),
    sympos: comma < 0 ? 0 : Number(rest.slice(comma + 1)),
  };
}

/**
 * The C identifier behind LG_SYMBOL(x) for a `symbols` entry: `.` (as in `foo.isra.0`) becomes
 * `__`, a position `,N` becomes `__N` and a module prefix `mod:` becomes `mod__`; so `foo,2` is
 * LG_SYMBOL(foo__2) and `ip_gre:ipgre_tap_ops` is LG_SYMBOL(ip_gre__ipgre_tap_ops).
 */
export function symbolCName(entry: string): string {
  const ref = parseSymbolRef(entry);
  const name = ref.name.replaceAll('.', '__');
  return `${ref.object === 'vmlinux' ? '' : `${ref.object}__`}${name}${ref.sympos > 0 ? `__${ref.sympos}` : ''}`;
}

/** Module names use `_` where a file name may use `-`; livepatch looks objects up by module name. */
export function normalizeObject(object: string): string {
  return object === 'vmlinux' ? object : object.replaceAll('-', '_');
}

function invalid(file: string, what: string, details?: Record<string, unknown>): LivegraftError {
  return new LivegraftError('FIX_INVALID', `${file}: ${what}`, details === undefined ? undefined : { details });
}

async function fileSize(p: string): Promise<number | undefined> {
  try {
    const s = await stat(p);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

/** Reads and validates one fix directory. */
export async function loadFix(shownDir: string): Promise<LoadedFix> {
  const dir = path.resolve(shownDir);
  const jsonFile = path.join(shownDir, 'fix.json');
  const size = await fileSize(path.join(dir, 'fix.json'));
  if (size === undefined) throw invalid(jsonFile, 'not found (every fix directory needs a fix.json)');
  if (size > MAX_FIX_JSON_BYTES) throw invalid(jsonFile, `too large (${size} bytes, limit ${MAX_FIX_JSON_BYTES})`);
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path.join(dir, 'fix.json'), 'utf8'));
  } catch (err) {
    throw invalid(jsonFile, `not valid JSON: ${(err as Error).message}`);
  }
  const problems = fixSpecValidator.problems(value);
  if (problems.length > 0) {
    const text = problems.map((p) => `${p.path === '' ? '(root)' : p.path}: ${p.message}`).join('; ');
    throw invalid(jsonFile, `invalid fix.json: ${text}`, { problems });
  }
  const spec = fixSpecValidator.parse(value);
  if (spec.patches !== undefined) return loadPatchFix(dir, shownDir, jsonFile, spec);
  if (spec.functions === undefined) {
    throw invalid(jsonFile, 'a fix needs either "patches" (upstream diffs) or "functions" (hand-written replacements)');
  }
  checkOwnNames(jsonFile, spec);

  const sources = spec.sources ?? ['fix.c'];
  for (const name of sources) {
    const bytes = await fileSize(path.join(dir, name));
    if (bytes === undefined) {
      throw new LivegraftError(
        'FIX_SOURCE_MISSING',
        `fix ${spec.id}: source ${path.join(shownDir, name)} does not exist` +
          (spec.sources === undefined ? ' (fix.json has no "sources", so fix.c is expected)' : ''),
        { details: { fix: spec.id, file: path.join(shownDir, name) } },
      );
    }
    if (bytes > MAX_SOURCE_BYTES) {
      throw invalid(path.join(shownDir, name), `source too large (${bytes} bytes, limit ${MAX_SOURCE_BYTES})`);
    }
  }
  const headers = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name.endsWith('.h'))
    .map((e) => e.name)
    .sort();
  if (headers.includes(GENERATED_HEADER)) {
    throw invalid(
      path.join(shownDir, GENERATED_HEADER),
      'this header is generated by the builder for each build; remove it from the fix directory',
    );
  }
  if (headers.length > MAX_LOCAL_HEADERS) {
    throw invalid(shownDir, `too many .h files (${headers.length}, limit ${MAX_LOCAL_HEADERS})`);
  }
  for (const h of headers) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\.h$/.test(h)) throw invalid(path.join(shownDir, h), 'unusual header name');
    const bytes = (await fileSize(path.join(dir, h))) ?? 0;
    if (bytes > MAX_SOURCE_BYTES) throw invalid(path.join(shownDir, h), 'header too large');
  }
  return { dir, shownDir, spec, sources, headers, patches: [] };
}

/** A fix made of upstream patches: every patch file must exist and be of sane size. */
async function loadPatchFix(dir: string, shownDir: string, jsonFile: string, spec: FixSpec): Promise<LoadedFix> {
  if (spec.functions !== undefined || spec.sources !== undefined || spec.symbols !== undefined) {
    throw invalid(
      jsonFile,
      'a fix has either "patches" or hand-written "functions"/"sources"/"symbols", not both: split it into two fixes',
    );
  }
  const patches = spec.patches ?? [];
  for (const name of patches) {
    const bytes = await fileSize(path.join(dir, name));
    if (bytes === undefined) {
      throw new LivegraftError(
        'FIX_SOURCE_MISSING',
        `fix ${spec.id}: patch ${path.join(shownDir, name)} does not exist`,
        {
          details: { fix: spec.id, file: path.join(shownDir, name) },
        },
      );
    }
    if (bytes > MAX_SOURCE_BYTES) throw invalid(path.join(shownDir, name), `patch too large (${bytes} bytes)`);
  }
  if (spec.trigger !== undefined && (await fileSize(path.join(dir, spec.trigger.source))) === undefined) {
    throw invalid(jsonFile, `/trigger/source: ${spec.trigger.source} does not exist in ${shownDir}`);
  }
  return { dir, shownDir, spec, sources: [], headers: [], patches };
}

/** Checks that only need one fix.json: names usable in C, no function named twice. */
function checkOwnNames(jsonFile: string, spec: FixSpec): void {
  const functions = spec.functions ?? [];
  functions.forEach((f, i) => {
    if (f.replacement.includes('.')) {
      throw invalid(jsonFile, `/functions/${i}/replacement: "${f.replacement}" is not a C identifier`);
    }
    if (f.replacement.startsWith(RESERVED_PREFIX)) {
      throw invalid(jsonFile, `/functions/${i}/replacement: names starting "${RESERVED_PREFIX}" are reserved`);
    }
  });
  const objects = new Set(functions.map((f) => normalizeObject(f.object)));
  (spec.symbols ?? []).forEach((s, i) => {
    if (!s.includes(':')) return;
    const { object } = parseSymbolRef(s);
    if (object === 'vmlinux') {
      throw invalid(
        jsonFile,
        `/symbols/${i}: write a vmlinux symbol without a prefix ("${s.slice(s.indexOf(':') + 1)}")`,
      );
    }
    if (!objects.has(object)) {
      throw invalid(
        jsonFile,
        `/symbols/${i}: "${s}" names a symbol of module ${object}, which this fix does not patch; ` +
          'a module symbol is reachable only from a fix that replaces a function of that module ' +
          '(its address is filled in when that module loads)',
      );
    }
  });
  const seenC = new Map<string, string>();
  for (const s of spec.symbols ?? []) {
    const c = symbolCName(s);
    const other = seenC.get(c);
    if (other !== undefined) throw invalid(jsonFile, `/symbols: "${s}" and "${other}" both map to LG_SYMBOL(${c})`);
    seenC.set(c, s);
  }
  const byFunction = new Map<string, number[]>();
  for (const f of functions) {
    const key = `${normalizeObject(f.object)}:${f.name}`;
    byFunction.set(key, [...(byFunction.get(key) ?? []), f.sympos ?? 0]);
  }
  for (const [key, positions] of byFunction) {
    // Two entries may name the same static function only at distinct, explicit positions.
    if (positions.length > 1 && (positions.includes(0) || new Set(positions).size !== positions.length)) {
      throw new LivegraftError(
        'FIX_DUPLICATE_FUNCTION',
        `${jsonFile}: function ${key.replace(':', ' ')} is listed more than once` +
          (positions.includes(0) ? ' (use distinct "sympos" values if they are different static functions)' : ''),
        { details: { fix: spec.id, function: key } },
      );
    }
  }
}

/**
 * Checks across fixes: every id once, every patched function owned by one
 * fix (livepatch can install only one replacement per function), and every
 * replacement symbol defined once in the module.
 */
export function checkFixSet(fixes: readonly LoadedFix[]): void {
  const ids = new Map<string, string>();
  const functions = new Map<string, string>();
  const replacements = new Map<string, string>();
  for (const fix of fixes) {
    const { id } = fix.spec;
    const prev = ids.get(id);
    if (prev !== undefined) {
      throw new LivegraftError('FIX_DUPLICATE_ID', `fix id ${id} is used by both ${prev} and ${fix.shownDir}`, {
        details: { id, dirs: [prev, fix.shownDir] },
      });
    }
    for (const need of fix.spec.requires ?? []) {
      if (!ids.has(need)) {
        const later = fixes.some((f) => f.spec.id === need);
        throw new LivegraftError(
          'FIX_REQUIREMENT_MISSING',
          `fix ${id} builds on fix ${need}, which ${later ? 'must come before it' : 'is not in this level'}: ` +
            `give ${need} earlier on the command line (a cumulative level applies its fixes in order)`,
          { details: { fix: id, requires: need, present: later } },
        );
      }
    }
    ids.set(id, fix.shownDir);
    for (const f of fix.spec.functions ?? []) {
      const key = `${normalizeObject(f.object)}:${f.name}:${f.sympos ?? 0}`;
      const owner = functions.get(key);
      if (owner !== undefined && owner !== id) {
        throw new LivegraftError(
          'FIX_DUPLICATE_FUNCTION',
          `fixes ${owner} and ${id} both replace ${f.name} in ${f.object}; merge them into one fix`,
          { details: { function: f.name, object: f.object, fixes: [owner, id] } },
        );
      }
      functions.set(key, id);
      const replOwner = replacements.get(f.replacement);
      if (replOwner !== undefined && replOwner !== id) {
        throw new LivegraftError(
          'FIX_DUPLICATE_FUNCTION',
          `fixes ${replOwner} and ${id} both use the replacement symbol ${f.replacement}; ` +
            'replacement names must be unique within a patch',
          { details: { replacement: f.replacement, fixes: [replOwner, id] } },
        );
      }
      replacements.set(f.replacement, id);
    }
  }
}
