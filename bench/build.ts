// bench/build: how long the builder takes from upstream patches to a livepatch
// module for one Debian kernel build. Prints one JSON document.
//
//   npm run bench -- build [--kernel 6.1.0-50-amd64] [--runs 3] [--only cold,one,multi,catalogue]
//                          [--cache-dir DIR] [--keep-cache] [--verbose]
//
// The cold run starts from an empty temporary cache directory: real downloads
// from the Debian archive, unpacking, preparing the source tree, the kallsyms
// boot, then the build of the one-file fix. The warm runs then reuse that
// cache (without cold: --cache-dir, else the default cache, prepared first if
// needed). Warm runs recompile (noCompileCache); one more run may take the
// compiled objects from the builder's cache. The temporary cache is removed at
// the end unless --keep-cache.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildPatch } from '../packages/builder/src/build.ts';
import { ensureKernelBuild, pickTestRelease, type KernelPart } from '../packages/builder/src/kernel/index.ts';
import { spawnRunner, type ProcessRunner } from '../packages/builder/src/runner.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CATALOGUE = path.join(ROOT, 'catalogue');
const ONE_FILE = 'CVE-2026-63824';
const MULTI_FILE = 'CVE-2026-46266';

const { values } = parseArgs({
  options: {
    kernel: { type: 'string' },
    runs: { type: 'string', default: '3' },
    only: { type: 'string', default: 'cold,one,multi,catalogue' },
    'cache-dir': { type: 'string' },
    'keep-cache': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});
const RUNS = Math.max(1, Number(values.runs));
const ONLY = new Set((values.only ?? '').split(',').filter((s) => s !== ''));
const log = (line: string): void => {
  if (values.verbose === true) process.stderr.write(`${line}\n`);
};

interface Call {
  command: string;
  kind: string;
  ms: number;
  /** Run while the kernel build was being fetched or prepared. */
  ensure: boolean;
}

/** What one build spent where: every program it ran is timed through the injected runner. */
interface Run {
  totalMs: number;
  /** ensureKernelBuild: 0–20 ms warm; downloads and preparation cold. */
  ensureMs: number;
  /** `patch` runs: reverse check, dry runs, applying (earlier fixes of the level too). */
  applyMs: number;
  /** `make <unit>.o` in the prepared source tree, unpatched and patched. */
  compileMs: number;
  /** `make M=... modules` against the headers: link of the copied object and the generated module. */
  linkMs: number;
  /**
   * The rest: reading the patches, the source-tree lock, the reproducibility
   * check against vmlinux/the .ko, the function diff, symbol resolution,
   * extraction, klp relocations after linking, the manifest.
   */
  analyseMs: number;
  compiles: number;
  functions: number;
  klpRelocations: number;
  skipped: number;
  /** Fixes whose compiled objects came from the builder's compile cache. */
  compileCacheHits: number;
  /** `<fix>: <function>@<object>` for every function the module replaces. */
  replaced: string[];
  loadavgBefore: number[];
  loadavgAfter: number[];
  /** Cold only: time per program (apt-get download, dpkg-deb, make, qemu...). */
  byCommand?: Record<string, { calls: number; ms: number }>;
}

function kindOf(command: string, args: readonly string[]): string {
  if (command === 'patch') return 'apply';
  if (command === 'make' && args.some((a) => a.startsWith('M='))) return 'link';
  if (command === 'make' && args.some((a) => a.startsWith('KCFLAGS='))) return 'compile';
  if (command === 'apt-get' && args[0] === 'download') return 'download';
  return 'other';
}

function timedRunner(calls: Call[], inEnsure: () => boolean): ProcessRunner {
  return async (command, args, options) => {
    const ensure = inEnsure();
    const t0 = performance.now();
    try {
      return await spawnRunner(command, args, options);
    } finally {
      calls.push({ command: path.basename(command), kind: kindOf(command, args), ms: performance.now() - t0, ensure });
    }
  };
}

const la = (): number[] => loadavg().map((x) => Math.round(x * 100) / 100);
const sum = (calls: readonly Call[], kind: string): number =>
  calls.filter((c) => c.kind === kind).reduce((a, c) => a + c.ms, 0);

async function oneBuild(
  release: string,
  fixDirs: string[],
  cacheDir: string | undefined,
  rebuild: boolean,
): Promise<Run> {
  const out = await mkdtemp(path.join(tmpdir(), 'lg-bench-out-'));
  const calls: Call[] = [];
  let ensuring = false;
  const run = timedRunner(calls, () => ensuring);
  let ensureMs = 0;
  const loadavgBefore = la();
  let cacheHits = 0;
  const t0 = performance.now();
  try {
    const result = await buildPatch({
      noCompileCache: rebuild,
      kernel: release,
      level: 1,
      fixDirs,
      outDir: out,
      cacheDir,
      run,
      log: (line) => {
        if (line.includes('from the cache')) cacheHits++;
        log(line);
      },
      ensureKernel: async (r: string, parts: KernelPart[]) => {
        const e0 = performance.now();
        ensuring = true;
        try {
          return await ensureKernelBuild(r, { cacheDir, run, log, parts });
        } finally {
          ensuring = false;
          ensureMs += performance.now() - e0;
        }
      },
    });
    const totalMs = performance.now() - t0;
    // Programs run while preparing the kernel build are not part of the fix's own phases.
    const fixCalls = calls.filter((c) => !c.ensure);
    const byCommand: Record<string, { calls: number; ms: number }> = {};
    for (const c of calls) {
      const key = c.kind === 'download' ? 'apt-get download' : c.command;
      const b = (byCommand[key] ??= { calls: 0, ms: 0 });
      b.calls++;
      b.ms += c.ms;
    }
    for (const b of Object.values(byCommand)) b.ms = Math.round(b.ms);
    const applyMs = sum(fixCalls, 'apply');
    const compileMs = sum(fixCalls, 'compile');
    const linkMs = sum(fixCalls, 'link');
    return {
      totalMs: Math.round(totalMs),
      ensureMs: Math.round(ensureMs),
      applyMs: Math.round(applyMs),
      compileMs: Math.round(compileMs),
      linkMs: Math.round(linkMs),
      analyseMs: Math.round(totalMs - ensureMs - applyMs - compileMs - linkMs),
      compiles: fixCalls.filter((c) => c.kind === 'compile').length,
      functions: result.manifest.fixes.reduce((a, f) => a + (f.functions?.length ?? 0), 0),
      klpRelocations: result.klpRelocations,
      skipped: result.skipped.length,
      compileCacheHits: cacheHits,
      replaced: result.manifest.fixes.flatMap((f) =>
        (f.functions ?? []).map((fn) => `${f.id}: ${fn.name}@${fn.object}`),
      ),
      loadavgBefore,
      loadavgAfter: la(),
      ...(ensureMs > 1000 ? { byCommand } : {}),
    };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function summarise(fixes: string[], runs: Run[]): Record<string, unknown> {
  const keys = ['totalMs', 'ensureMs', 'applyMs', 'compileMs', 'linkMs', 'analyseMs'] as const;
  return {
    fixes,
    runs: runs.length,
    ...Object.fromEntries(
      keys.map((k) => [`median${k[0]?.toUpperCase()}${k.slice(1)}`, median(runs.map((r) => r[k]))]),
    ),
    samples: runs,
  };
}

async function warm(
  release: string,
  fixes: string[],
  runs: number,
  cacheDir: string | undefined,
  rebuild = true,
): Promise<Record<string, unknown>> {
  const dirs = fixes.map((f) => path.join(CATALOGUE, f));
  const samples: Run[] = [];
  for (let i = 0; i < runs; i++) {
    samples.push(await oneBuild(release, dirs, cacheDir, rebuild));
    log(`${fixes.join('+')}: run ${i + 1}: ${samples.at(-1)?.totalMs} ms`);
  }
  return summarise(fixes, samples);
}

const started = new Date().toISOString();
const release = values.kernel ?? (await pickTestRelease(spawnRunner));
const report: Record<string, unknown> = {
  kernel: release,
  cpus: availableParallelism(),
  started,
  loadavgStart: la(),
};
// The cold run fills a fresh cache; the warm runs then use that cache, so no
// other build holding the default cache's source-tree lock delays them.
let cacheDir = values['cache-dir'];
let ownCache: string | undefined;
try {
  if (ONLY.has('cold')) {
    ownCache = await mkdtemp(path.join(tmpdir(), 'lg-bench-cache-'));
    cacheDir = ownCache;
    const r = await oneBuild(release, [path.join(CATALOGUE, ONE_FILE)], ownCache, true);
    const stamp = JSON.parse(await readFile(path.join(ownCache, 'kernels', release, 'prepared.json'), 'utf8')) as {
      parts: Record<string, { ms: number }>;
    };
    const debs = (await readdir(path.join(ownCache, 'debs'))).filter((d) => d.endsWith('.deb'));
    let debBytes = 0;
    for (const d of debs) debBytes += (await stat(path.join(ownCache, 'debs', d))).size;
    report.cold = {
      fixes: [ONE_FILE],
      ...r,
      partsMs: Object.fromEntries(Object.entries(stamp.parts).map(([k, v]) => [k, v.ms])),
      downloadedDebs: debs.length,
      downloadedBytes: debBytes,
    };
  }
  if (['one', 'multi', 'catalogue'].some((k) => ONLY.has(k))) {
    // Make sure the cache holds the prepared build, so the warm runs are warm.
    const t0 = performance.now();
    await ensureKernelBuild(release, { cacheDir, parts: ['image', 'headers', 'source', 'kallsyms'], log });
    report.warmEnsureMs = Math.round(performance.now() - t0);
    report.warmCache = ownCache !== undefined ? "the cold run's fresh cache" : (cacheDir ?? 'the default cache');
  }
  if (ONLY.has('one')) {
    report.oneFile = await warm(release, [ONE_FILE], RUNS, cacheDir);
    // The same build again, allowed to take the compiled objects from the builder's cache
    // (the first of these two runs fills it if the rebuilds did not).
    await oneBuild(release, [path.join(CATALOGUE, ONE_FILE)], cacheDir, false);
    report.oneFileCompileCached = await warm(release, [ONE_FILE], 1, cacheDir, false);
  }
  if (ONLY.has('multi')) report.multiFile = await warm(release, [MULTI_FILE], RUNS, cacheDir);
  if (ONLY.has('catalogue')) {
    const all = (await readdir(CATALOGUE, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && existsSync(path.join(CATALOGUE, e.name, 'fix.json')))
      .map((e) => e.name)
      .sort();
    report.catalogue = await warm(release, all, 1, cacheDir);
  }
} catch (err) {
  // Keep what was measured before the failure.
  process.stderr.write(`${JSON.stringify(report, null, 2)}\n`);
  throw err;
} finally {
  if (ownCache !== undefined && values['keep-cache'] === true) process.stderr.write(`kept the cache ${ownCache}\n`);
  else if (ownCache !== undefined) await rm(ownCache, { recursive: true, force: true });
}
report.loadavgEnd = la();
console.log(JSON.stringify(report, null, 2));
