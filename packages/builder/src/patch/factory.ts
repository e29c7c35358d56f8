import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { readElf, type ElfFile } from '../elf/index.ts';
import type { LoadedFix } from '../fixes.ts';
import { extractPatchObject } from '../klp/extract.ts';
import type { KlpReloc, PatchedFunction } from '../klp/types.ts';
import { readKallsyms, withSourceTreeLock, SOURCE_MAKE_ARGS, type KernelBuild } from '../kernel/index.ts';
import type { ProcessRunner } from '../runner.ts';
import { cveDatabase } from './cna-fixed.ts';
import { buildPatchFix, extractUnitsOf, type PatchFixOutcome } from './build-fix.ts';
import {
  assertReproducible,
  compareWithModule,
  compareWithVmlinux,
  type Mismatch,
  type ReproResult,
} from './reproducible.ts';
import {
  KernelSymbolResolver,
  moduleSymbolsOf,
  parseSymvers,
  type KallsymsSymbol,
  type ModuleSymbols,
} from './resolver.ts';

/** Module.symvers of a distribution kernel is a few MB. */
const MAX_SYMVERS_BYTES = 32 * 1024 * 1024;

export interface FactoryInput {
  fixes: readonly LoadedFix[];
  kernel: KernelBuild;
  run: ProcessRunner;
  /** Build even when the unpatched code does not match the shipped kernel. */
  force: boolean;
  /** Keeps compiled objects per fix and kernel build; none when undefined. */
  cacheDir?: string;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface CopiedFunctionOut extends PatchedFunction {
  fixId: string;
}

export interface FactoryOutput {
  outcomes: PatchFixOutcome[];
  /** The relocatable object with every copied function; undefined when no fix needed one. */
  object: Buffer | undefined;
  functions: CopiedFunctionOut[];
  klpRelocs: KlpReloc[];
  repro: { compared: number; matched: number; mismatches: Mismatch[] };
}

/** Finds `<name>.ko` under the image's lib/modules tree ('-' and '_' are the same to the kernel). */
export async function moduleFileIndex(modulesDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > 12) return;
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p, depth + 1);
      else if (e.name.endsWith('.ko')) out.set(e.name.slice(0, -3).replaceAll('-', '_'), p);
    }
  };
  await walk(path.join(modulesDir, 'kernel'), 0);
  return out;
}

/**
 * Builds every patch fix for one kernel build: per fix the compile-twice
 * diff, then one reproducibility check, one symbol resolution and one
 * extraction for all of them together.
 */
export async function runFactory(input: FactoryInput): Promise<FactoryOutput> {
  const { kernel } = input;
  const tree = { sourceDir: kernel.sourceDir, makeVars: SOURCE_MAKE_ARGS };
  const outcomes: PatchFixOutcome[] = [];
  for (const fix of input.fixes) {
    outcomes.push(
      await buildPatchFix(fix, {
        run: input.run,
        tree,
        release: kernel.release,
        upstreamVersion: kernel.upstreamVersion,
        withTree: (fn) => withSourceTreeLock(kernel, fn, { signal: input.signal }),
        log: input.log,
        signal: input.signal,
        cveData: cveDatabase,
        earlier: outcomes.flatMap((o) =>
          o.status === 'built'
            ? [{ runs: o.runs, touched: o.touched, ...(o.key === undefined ? {} : { key: o.key }) }]
            : [],
        ),
        ...(input.cacheDir === undefined
          ? {}
          : {
              cache: { dir: input.cacheDir, kernel: { release: kernel.release, debianVersion: kernel.debianVersion } },
            }),
      }),
    );
    const last = outcomes[outcomes.length - 1];
    if (last?.status === 'skipped') input.log(`${fix.spec.id}: skipped: ${last.reason}`);
  }
  const built = outcomes.filter((o) => o.status === 'built');
  const empty = { compared: 0, matched: 0, mismatches: [] };
  if (built.length === 0) return { outcomes, object: undefined, functions: [], klpRelocs: [], repro: empty };

  // Everything the checks and the resolver need, read once.
  const kallsyms: KallsymsSymbol[] = (await readKallsyms(kernel)).filter((k) => k.module === undefined);
  const byName = new Map<string, KallsymsSymbol[]>();
  for (const k of kallsyms) byName.set(k.name, [...(byName.get(k.name) ?? []), k]);
  const symvers = parseSymvers(
    (await readFile(path.join(kernel.headersDir, 'Module.symvers'))).subarray(0, MAX_SYMVERS_BYTES).toString('utf8'),
  );
  const koFiles = await moduleFileIndex(kernel.modulesDir);
  const modules = new Map<string, { elf: ElfFile; symbols: ModuleSymbols } | null>();
  const loadModule = async (name: string): Promise<{ elf: ElfFile; symbols: ModuleSymbols } | null> => {
    if (!modules.has(name)) {
      const file = koFiles.get(name);
      if (file === undefined) modules.set(name, null);
      else {
        const elf = readElf(await readFile(file));
        modules.set(name, { elf, symbols: moduleSymbolsOf(elf) });
      }
    }
    return modules.get(name) ?? null;
  };
  let vmlinux: ElfFile | undefined;
  const originals = new Map<string, ElfFile>();
  const results: ReproResult[] = [];
  for (const o of built) {
    for (const u of o.units) {
      const orig = readElf(u.original);
      if (!originals.has(u.unit)) originals.set(u.unit, orig);
      // A unit an earlier fix already changed was checked against the shipped kernel with that fix.
      if (u.afterEarlier) continue;
      if (u.target === 'vmlinux') {
        vmlinux ??= readElf(await readFile(kernel.vmlinux));
        results.push(compareWithVmlinux(u.unit, orig, vmlinux, byName));
      } else {
        const mod = await loadModule(u.target);
        if (mod === null) {
          throw new LivegraftError(
            'UNIT_NOT_BUILT',
            `${u.unit} belongs to module ${u.target}, which ${kernel.release} does not ship`,
          );
        }
        results.push(compareWithModule(u.unit, orig, mod.elf));
      }
    }
  }
  const mismatches = assertReproducible(results, kernel.release, input.force);
  for (const m of mismatches) input.log(`warning: ${m.unit}: ${m.function}: ${m.reason} (--force)`);
  // Every module a unit is linked into is loaded before resolution starts.
  for (const o of built) for (const u of o.units) if (u.target !== 'vmlinux') await loadModule(u.target);
  for (const exporter of new Set(symvers.values()))
    if (exporter !== 'vmlinux' && !modules.has(exporter)) modules.set(exporter, null);

  const resolver = new KernelSymbolResolver({
    symvers,
    kallsyms,
    originals,
    moduleSymbols: (name) => {
      const m = modules.get(name);
      return m === null || m === undefined ? undefined : m.symbols;
    },
  });
  const units = extractUnitsOf(outcomes);
  const extracted = extractPatchObject(units, resolver);
  if (extracted.refusals.length > 0) {
    const lines = extracted.refusals.map((r) => `  ${r.unit}: ${r.symbol}: ${r.reason}`);
    throw new LivegraftError(
      'NOT_LIVE_PATCHABLE',
      `the patched code cannot be carried into a live patch:\n${lines.join('\n')}`,
      {
        details: { refusals: extracted.refusals },
      },
    );
  }
  const fixOfUnit = new Map<string, string>();
  for (const o of built) for (const u of o.units) fixOfUnit.set(u.unit, o.fix.spec.id);
  const functions = extracted.functions.map((f) => ({ ...f, fixId: fixOfUnit.get(f.unit) ?? '' }));
  const sum = results.reduce((a, r) => ({ compared: a.compared + r.compared, matched: a.matched + r.matched }), {
    compared: 0,
    matched: 0,
  });
  return {
    outcomes,
    object: extracted.object,
    functions,
    klpRelocs: extracted.klpRelocs,
    repro: { ...sum, mismatches },
  };
}
