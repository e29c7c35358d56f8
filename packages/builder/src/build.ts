import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LivegraftError, manifestValidator, moduleNameFor, type PatchManifest } from '@livegraft/protocol';
import { writeFilesAtomically } from './atomic-write.ts';
import { fixHeader, fixSubdir, kbuildFile, mainSource, MAIN_SOURCE, type PlacedFix } from './codegen.ts';
import { checkFixSet, GENERATED_HEADER, loadFix, type LoadedFix } from './fixes.ts';
import { DEFAULT_HEADERS_ROOTS, resolveHeaders, type HeadersRoots } from './headers.ts';
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
}

export interface BuildResult {
  manifest: PatchManifest;
  modulePath: string;
  manifestPath: string;
  headersDir: string;
  kernel: TargetKernel;
  /** Compiler and modpost warnings, paths pointing at the fixes. */
  warnings: string[];
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
): PatchManifest {
  return manifestValidator.parse({
    schema: 1,
    name,
    level,
    replace: true,
    kernel: { id: kernel.id, release: kernel.release, vermagic },
    fixes: fixes.map(({ spec }) => ({
      id: spec.id,
      title: spec.title,
      cves: spec.cves,
      functions: spec.functions.map((f) => ({ name: f.name, object: f.object })),
    })),
    cves: [...new Set(fixes.flatMap(({ spec }) => spec.cves))].sort(),
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

  const headersDir = await resolveHeaders(options.kernel, options.headersRoots ?? DEFAULT_HEADERS_ROOTS);
  const kernel = await targetKernel(headersDir, options.procVersionFile);
  const fixes: LoadedFix[] = [];
  for (const dir of options.fixDirs) fixes.push(await loadFix(dir));
  checkFixSet(fixes);

  const name = moduleNameFor(kernel.id, level);
  const buildDir = await mkdtemp(path.join(options.tmpRoot ?? tmpdir(), 'livegraft-build-'));
  try {
    const placed = await placeFixes(buildDir, fixes);
    const gen = { moduleName: name, level, kernelId: kernel.id, release: kernel.release, builder: BUILDER_ID };
    await writeFile(path.join(buildDir, 'Kbuild'), kbuildFile({ ...gen, fixes: placed }));
    await writeFile(path.join(buildDir, MAIN_SOURCE), mainSource({ ...gen, fixes: placed }));
    const subdirs = new Map(placed.map((p) => [p.subdir, p.fix.shownDir]));
    const make = await runKbuild(
      options.run ?? spawnRunner,
      headersDir,
      { buildDir, subdirs },
      options.makeTimeoutMs ?? MAKE_TIMEOUT_MS,
      options.signal,
    );

    let ko: Buffer;
    try {
      ko = await readFile(path.join(buildDir, `${name}.ko`));
    } catch (err) {
      throw new LivegraftError('BUILD_FAILED', `make succeeded but produced no ${name}.ko`, {
        cause: err,
        details: { output: make.output.split('\n').slice(-30).join('\n') },
      });
    }
    const { vermagic } = checkBuiltModule(ko, { name, level, release: kernel.release, kernelId: kernel.id });
    const manifest = manifestFor(name, level, kernel, vermagic, fixes, ko, (options.now ?? (() => new Date()))());
    if (options.signal?.aborted === true) throw new LivegraftError('CANCELLED', 'build cancelled');
    const modulePath = path.join(outDir, manifest.module.file);
    const manifestPath = path.join(outDir, `${name}.json`);
    await writeFilesAtomically([
      { file: modulePath, data: ko },
      { file: manifestPath, data: `${JSON.stringify(manifest, null, 2)}\n` },
    ]);
    return { manifest, modulePath, manifestPath, headersDir, kernel, warnings: make.warnings };
  } finally {
    await rm(buildDir, { recursive: true, force: true });
  }
}
