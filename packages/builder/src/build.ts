import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LivegraftError, manifestValidator, moduleNameFor, type PatchManifest } from '@livegraft/protocol';
import { identityWarnings } from './identity-functions.ts';
import { writeFilesAtomically } from './atomic-write.ts';
import {
  COPIED_OBJECT,
  SYMBOLS_OBJECT,
  fixHeader,
  fixSubdir,
  kbuildFile,
  mainSource,
  MAIN_SOURCE,
  type CopiedFunction,
  type PlacedFix,
} from './codegen.ts';
import { checkFixSet, GENERATED_HEADER, isPatchFix, loadFix, type LoadedFix } from './fixes.ts';
import { DEFAULT_HEADERS_ROOTS, resolveHeaders, type HeadersRoots } from './headers.ts';
import { defaultCacheDir, ensureKernelBuild, type KernelBuild, type KernelPart } from './kernel/index.ts';
import { writeKlpRelocations } from './klp/postlink.ts';
import type { KlpReloc } from './klp/types.ts';
import { runFactory, type FactoryOutput } from './patch/factory.ts';
import { resolveSlots, slotLookupFor, symbolSlotsObject } from './symbol-slots.ts';
import { runKbuild, MAKE_TIMEOUT_MS } from './kbuild.ts';
import { targetKernel, type TargetKernel } from './kernel-id.ts';
import { checkBuiltModule } from './module-check.ts';
import { spawnRunner, type ProcessRunner } from './runner.ts';

export const BUILDER_ID = 'livegraft-builder/0.1.0';
/** Highest level the manifest schema accepts. */
const MAX_LEVEL = 1_000_000;
/** Fixes in one cumulative patch (the manifest allows this many). */
const MAX_FIXES = 500;

export interface BuildOptions {
  /** A headers directory or a kernel release (`uname -r`). */
  kernel: string;
  /** Cumulative patch level, 1 and up. */
  level: number;
  /** Fix directories, each holding fix.json and its sources. Order is kept. */
  fixDirs: readonly string[];
  /** Where the .ko and .json go; default the current directory. */
  outDir?: string;
  /** A file whose first line replaces the /proc/version reconstructed from the headers. */
  procVersionFile?: string;
  /** Runs make; default spawns it. */
  run?: ProcessRunner;
  /** Stamps builtAt; default the system clock. */
  now?: () => Date;
  headersRoots?: HeadersRoots;
  /** Parent of the temporary build directory; default the OS temp dir. */
  tmpRoot?: string;
  makeTimeoutMs?: number;
  /** Cancels the build: make is killed, the build directory removed, nothing written. */
  signal?: AbortSignal;
  /** Where downloaded and prepared kernel builds are kept; default the user's cache. */
  cacheDir?: string;
  /** Build from patches even when the unpatched code does not match the shipped kernel. */
  force?: boolean;
  /** Compile every fix again instead of reusing objects compiled for the same fix and kernel build. */
  noCompileCache?: boolean;
  /** Progress lines (downloads, compiles); default silent. */
  log?: (line: string) => void;
  /** Gets a kernel build's artefacts; default ensureKernelBuild (injectable for tests). */
  ensureKernel?: (release: string, parts: KernelPart[]) => Promise<KernelBuild>;
}

export interface BuildResult {
  manifest: PatchManifest;
  modulePath: string;
  manifestPath: string;
  headersDir: string;
  kernel: TargetKernel;
  /** Compiler and modpost warnings, paths pointing at the fixes. */
  warnings: string[];
  /** Fixes not in the module, with the reason (already fixed, compiles to no change). */
  skipped: { id: string; cves: string[]; reason: string }[];
  /** For fixes built from patches: how the unpatched code compared with the shipped kernel. */
  reproducibility?: FactoryOutput['repro'];
  /** Livepatch relocations written into the module. */
  klpRelocations: number;
}

function usage(message: string): LivegraftError {
  return new LivegraftError('USAGE', message);
}

async function checkOutDir(outDir: string): Promise<void> {
  let isDir = false;
  try {
    isDir = (await stat(outDir)).isDirectory();
  } catch {
    // Reported below.
  }
  if (!isDir) throw new LivegraftError('OUT_DIR_INVALID', `output directory ${outDir} does not exist`);
}

/** Copies each fix into its own subdirectory of the build tree, with its livegraft.h. */
async function placeFixes(buildDir: string, fixes: readonly LoadedFix[]): Promise<PlacedFix[]> {
  const placed: PlacedFix[] = [];
  for (const [i, fix] of fixes.entries()) {
    const subdir = fixSubdir(i, fix.spec.id);
    const dest = path.join(buildDir, subdir);
    await mkdir(dest);
    for (const name of [...fix.sources, ...fix.headers])
      await copyFile(path.join(fix.dir, name), path.join(dest, name));
    await writeFile(path.join(dest, GENERATED_HEADER), fixHeader(fix, BUILDER_ID));
    placed.push({ fix, subdir });
  }
  return placed;
}

function manifestFor(
  name: string,
  level: number,
  kernel: TargetKernel,
  vermagic: string,
  fixes: readonly LoadedFix[],
  ko: Uint8Array,
  builtAt: Date,
  factory: FactoryOutput | undefined,
  skipped: BuildResult['skipped'],
): PatchManifest {
  return manifestValidator.parse({
    schema: 1,
    name,
    level,
    replace: true,
    kernel: { id: kernel.id, release: kernel.release, vermagic },
    fixes: fixes.map((fix) => {
      const { spec } = fix;
      if (!isPatchFix(fix)) {
        return {
          id: spec.id,
          title: spec.title,
          cves: spec.cves,
          kind: 'source' as const,
          functions: (spec.functions ?? []).map((f) =>
            f.sympos ? { name: f.name, object: f.object, sympos: f.sympos } : { name: f.name, object: f.object },
          ),
        };
      }
      const outcome = factory?.outcomes.find((o) => o.fix === fix);
      return {
        id: spec.id,
        title: spec.title,
        cves: spec.cves,
        kind: 'patch' as const,
        ...(outcome && outcome.commits.length > 0 ? { commits: outcome.commits } : {}),
        functions: (factory?.functions ?? [])
          .filter((f) => f.fixId === spec.id)
          .map((f) =>
            f.sympos ? { name: f.name, object: f.object, sympos: f.sympos } : { name: f.name, object: f.object },
          ),
      };
    }),
    cves: [...new Set(fixes.flatMap(({ spec }) => spec.cves))].sort(),
    ...(skipped.length > 0 ? { skipped } : {}),
    module: {
      file: `${name}.ko`,
      sha256: createHash('sha256').update(ko).digest('hex'),
      size: ko.byteLength,
    },
    builtAt: builtAt.toISOString(),
    builder: BUILDER_ID,
  });
}

/**
 * The LG_SYMBOL pointers of hand-written fixes: resolved against the target's
 * kallsyms (fetched for the release when not already at hand) and filled by
 * klp relocations when the patch loads. Undefined when no fix declares one.
 */
async function symbolSlotsFor(
  fixes: readonly LoadedFix[],
  release: string,
  known: KernelBuild | undefined,
  ensure: (release: string, parts: KernelPart[]) => Promise<KernelBuild>,
): Promise<ReturnType<typeof symbolSlotsObject> | undefined> {
  if (!fixes.some((f) => (f.spec.symbols ?? []).length > 0)) return undefined;
  const kb = known?.parts.includes('kallsyms') === true ? known : await ensure(release, ['image', 'kallsyms']);
  return symbolSlotsObject(resolveSlots(fixes, await slotLookupFor(kb, fixes)));
}

/** Livepatch installs one replacement per function: two fixes may not both replace the same one. */
function checkNoOverlap(fixes: readonly LoadedFix[], copied: readonly CopiedFunction[]): void {
  const owner = new Map<string, string>();
  const claim = (object: string, fn: string, sympos: number, id: string): void => {
    const key = `${object.replaceAll('-', '_')}:${fn}:${sympos}`;
    const prev = owner.get(key);
    if (prev !== undefined && prev !== id) {
      throw new LivegraftError(
        'FIX_DUPLICATE_FUNCTION',
        `fixes ${prev} and ${id} both change ${fn} in ${object}; build them as one fix (list both patches in one fix.json)`,
        { details: { function: fn, object, fixes: [prev, id] } },
      );
    }
    owner.set(key, id);
  };
  for (const f of copied) claim(f.object, f.name, f.sympos, f.fixId);
  for (const fix of fixes)
    for (const f of fix.spec.functions ?? []) claim(f.object, f.name, f.sympos ?? 0, fix.spec.id);
}

/**
 * Builds one cumulative livepatch module from every given fix, for one exact
 * kernel build, and writes `<name>.ko` plus its manifest `<name>.json`.
 * Nothing is written to outDir unless the whole build and every check passed.
 */
export async function buildPatch(options: BuildOptions): Promise<BuildResult> {
  const { level } = options;
  if (!Number.isInteger(level) || level < 1 || level > MAX_LEVEL) {
    throw usage(`level must be an integer from 1 to ${MAX_LEVEL}, got ${String(level)}`);
  }
  if (options.fixDirs.length === 0) throw usage('give at least one fix directory');
  if (options.fixDirs.length > MAX_FIXES) throw usage(`at most ${MAX_FIXES} fixes fit in one patch`);
  const outDir = path.resolve(options.outDir ?? '.');
  await checkOutDir(outDir);

  // A headers directory is checked before anything else: it is the first thing a typo breaks.
  const looksLikeDir = options.kernel.includes('/');
  const givenHeaders = looksLikeDir
    ? await resolveHeaders(options.kernel, options.headersRoots ?? DEFAULT_HEADERS_ROOTS)
    : undefined;
  const fixes: LoadedFix[] = [];
  for (const dir of options.fixDirs) fixes.push(await loadFix(dir));
  checkFixSet(fixes);
  const patchFixes = fixes.filter(isPatchFix);
  const log = options.log ?? (() => undefined);
  const run = options.run ?? spawnRunner;

  // Headers: an installed tree when there is one and no patch needs the
  // sources; otherwise the kernel build is fetched into the cache.
  let headersDir: string;
  let kernelBuild: KernelBuild | undefined;
  const ensure =
    options.ensureKernel ??
    ((release: string, parts: KernelPart[]) =>
      ensureKernelBuild(release, { cacheDir: options.cacheDir, run, log, signal: options.signal, parts }));
  if (patchFixes.length > 0) {
    if (looksLikeDir) {
      throw usage(
        `fixes built from patches (${patchFixes.map((f) => f.spec.id).join(', ')}) need a kernel release such as 6.1.0-50-amd64, ` +
          "not a headers directory: the builder fetches that build's source, config and symbols",
      );
    }
    kernelBuild = await ensure(options.kernel, ['image', 'headers', 'source', 'kallsyms']);
    headersDir = kernelBuild.headersDir;
  } else {
    try {
      headersDir =
        givenHeaders ?? (await resolveHeaders(options.kernel, options.headersRoots ?? DEFAULT_HEADERS_ROOTS));
    } catch (err) {
      if (looksLikeDir || (options.ensureKernel === undefined && !/^\d+\.\d+\.\d+-\d+-amd64$/.test(options.kernel)))
        throw err;
      // Not installed here: a Debian build is fetched from the archive into the cache.
      try {
        kernelBuild = await ensure(options.kernel, ['headers']);
      } catch (fetchErr) {
        if (!(fetchErr instanceof LivegraftError) || fetchErr.code !== 'KERNEL_BUILD_UNKNOWN') throw fetchErr;
        const local = err as LivegraftError;
        throw new LivegraftError('HEADERS_NOT_FOUND', `${local.message}\nNor can it be fetched: ${fetchErr.message}`, {
          cause: fetchErr,
          details: { ...(local.details ?? {}), archive: fetchErr.details },
        });
      }
      headersDir = kernelBuild.headersDir;
    }
  }
  const kernel = await targetKernel(headersDir, options.procVersionFile);

  const factory =
    kernelBuild !== undefined && patchFixes.length > 0
      ? await runFactory({
          fixes: patchFixes,
          kernel: kernelBuild,
          run,
          force: options.force === true,
          log,
          signal: options.signal,
          cacheDir: options.noCompileCache === true ? undefined : (options.cacheDir ?? defaultCacheDir()),
        })
      : undefined;
  const skipped: BuildResult['skipped'] = (factory?.outcomes ?? []).flatMap((o) =>
    o.status === 'skipped' ? [{ id: o.fix.spec.id, cves: o.fix.spec.cves, reason: o.reason }] : [],
  );
  const included = fixes.filter((f) => !skipped.some((s) => s.id === f.spec.id));
  if (included.length === 0) {
    throw new LivegraftError(
      'NOTHING_TO_BUILD',
      `nothing to build for ${kernel.release}:\n${skipped.map((s) => `  ${s.id}: ${s.reason}`).join('\n')}`,
      { details: { skipped } },
    );
  }
  const copied: CopiedFunction[] = (factory?.functions ?? []).map((f) => ({
    name: f.name,
    object: f.object,
    sympos: f.sympos,
    newSymbol: f.newSymbol,
    fixId: f.fixId,
  }));
  checkNoOverlap(included, copied);
  const slots = await symbolSlotsFor(included, kernel.release, kernelBuild, ensure);

  const name = moduleNameFor(kernel.id, level);
  const buildDir = await mkdtemp(path.join(options.tmpRoot ?? tmpdir(), 'livegraft-build-'));
  try {
    const placed = await placeFixes(buildDir, included);
    const gen = { moduleName: name, level, kernelId: kernel.id, release: kernel.release, builder: BUILDER_ID, copied };
    if (factory?.object !== undefined && copied.length > 0) {
      await writeFile(path.join(buildDir, COPIED_OBJECT), factory.object);
      // modpost reads every object's .cmd file (for srcversion); a prebuilt object has no sources to sum.
      await writeFile(
        path.join(buildDir, `.${COPIED_OBJECT}.cmd`),
        '# prebuilt by livegraft-build from patched objects\n',
      );
    }
    if (slots !== undefined) {
      await writeFile(path.join(buildDir, SYMBOLS_OBJECT), slots.object);
      await writeFile(
        path.join(buildDir, `.${SYMBOLS_OBJECT}.cmd`),
        '# prebuilt by livegraft-build: LG_SYMBOL pointers\n',
      );
    }
    await writeFile(path.join(buildDir, 'Kbuild'), kbuildFile({ ...gen, fixes: placed }));
    await writeFile(path.join(buildDir, MAIN_SOURCE), mainSource({ ...gen, fixes: placed }));
    const subdirs = new Map(placed.map((p) => [p.subdir, p.fix.shownDir]));
    const make = await runKbuild(
      run,
      headersDir,
      { buildDir, subdirs },
      options.makeTimeoutMs ?? MAKE_TIMEOUT_MS,
      options.signal,
    );

    let linked: Buffer;
    try {
      linked = await readFile(path.join(buildDir, `${name}.ko`));
    } catch (err) {
      throw new LivegraftError('BUILD_FAILED', `make succeeded but produced no ${name}.ko`, {
        cause: err,
        details: { output: make.output.split('\n').slice(-30).join('\n') },
      });
    }
    const klpRelocs: KlpReloc[] = copied.length > 0 ? (factory?.klpRelocs ?? []) : [];
    let ko =
      klpRelocs.length > 0 && factory?.object !== undefined
        ? writeKlpRelocations(linked, klpRelocs, { patchObject: factory.object })
        : linked;
    if (slots !== undefined) ko = writeKlpRelocations(ko, slots.relocs, { patchObject: slots.object });
    const { vermagic } = checkBuiltModule(ko, { name, level, release: kernel.release, kernelId: kernel.id });
    const manifest = manifestFor(
      name,
      level,
      kernel,
      vermagic,
      included,
      ko,
      (options.now ?? (() => new Date()))(),
      factory,
      skipped,
    );
    if (options.signal?.aborted === true) throw new LivegraftError('CANCELLED', 'build cancelled');
    const modulePath = path.join(outDir, manifest.module.file);
    const manifestPath = path.join(outDir, `${name}.json`);
    await writeFilesAtomically([
      { file: modulePath, data: ko },
      { file: manifestPath, data: `${JSON.stringify(manifest, null, 2)}\n` },
    ]);
    return {
      manifest,
      modulePath,
      manifestPath,
      headersDir,
      kernel,
      warnings: [
        ...make.warnings,
        ...identityWarnings([
          ...copied,
          ...included.flatMap((fix) =>
            (fix.spec.functions ?? []).map((f) => ({ name: f.name, object: f.object, fixId: fix.spec.id })),
          ),
        ]),
      ],
      skipped,
      ...(factory ? { reproducibility: factory.repro } : {}),
      klpRelocations: klpRelocs.length + (slots?.relocs.length ?? 0),
    };
  } finally {
    await rm(buildDir, { recursive: true, force: true });
  }
}
