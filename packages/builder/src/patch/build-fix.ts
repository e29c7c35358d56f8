import { existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError, type FixCommit } from '@livegraft/protocol';
import type { LoadedFix } from '../fixes.ts';
import type { ProcessRunner } from '../runner.ts';
import { diffObjects } from '../klp/diff.ts';
import type { DiffResult, ExtractUnit, Refusal } from '../klp/types.ts';
import { appliesInReverse, applyPatch, checkApplies, type PatchRun } from './apply.ts';
import { compileUnits, type CompiledUnit, type CompileTree } from './compile.ts';
import { headerChangeIsHarmless, parsePatch, type ParsedPatch } from './parse.ts';
import type { CveDatabase } from '@livegraft/inspector';
import { cnaFixedReason } from './cna-fixed.ts';
import { fixKey, readCachedCompile, writeCachedCompile, type CachedCompile } from './fix-cache.ts';
import { withTreeEdits } from './tree-edit.ts';
import { alreadyFixedReason } from './version.ts';

/** What the factory made of one fix for one kernel build. */
export type PatchFixOutcome =
  | {
      status: 'built';
      fix: LoadedFix;
      commits: FixCommit[];
      /**
       * `afterEarlier`: the unit was also changed by an earlier fix of the level,
       * so its "original" is that fix's result, not the shipped code.
       */
      units: {
        unit: string;
        target: string;
        original: Buffer;
        patched: Buffer;
        diff: DiffResult;
        afterEarlier: boolean;
      }[];
      /** The patch runs, so later fixes of the same level can build on this one. */
      runs: PatchRun[];
      touched: string[];
      /** The compile cache key, which later fixes built on top of this one include in theirs. */
      key?: string;
    }
  | { status: 'skipped'; fix: LoadedFix; commits: FixCommit[]; reason: string };

export interface PatchFixContext {
  run: ProcessRunner;
  tree: CompileTree;
  /** `uname -r` of the target, for messages. */
  release: string;
  /** The target's upstream version (6.1.176). */
  upstreamVersion: string;
  /** Exclusive use of the source tree while it is patched. */
  withTree: <T>(fn: () => Promise<T>) => Promise<T>;
  log: (line: string) => void;
  signal?: AbortSignal;
  /**
   * Earlier fixes of the same cumulative level, applied first (in order):
   * a later fix may need what an earlier one added (a helper, a prototype),
   * and its diff then holds only its own change.
   */
  earlier?: readonly { runs: readonly PatchRun[]; touched: readonly string[]; key?: string }[];
  /** The shipped CVE data, for fixes whose fix.json names no fixedIn. */
  cveData?: () => Promise<CveDatabase>;
  /** Where compiled objects are kept between builds, and the kernel build they are for. */
  cache?: { dir: string; kernel: { release: string; debianVersion: string } };
}

function refuse(fix: LoadedFix, refusals: readonly Refusal[]): LivegraftError {
  const lines = refusals.map((r) => `  ${r.unit}: ${r.symbol}: ${r.reason}`);
  return new LivegraftError('NOT_LIVE_PATCHABLE', `fix ${fix.spec.id} cannot be applied live:\n${lines.join('\n')}`, {
    details: { fix: fix.spec.id, refusals },
  });
}

/** Commits named by fix.json, else by the patch headers. */
function commitsOf(fix: LoadedFix, parsed: readonly ParsedPatch[]): FixCommit[] {
  if (fix.spec.commits !== undefined && fix.spec.commits.length > 0) return fix.spec.commits;
  return parsed.flatMap((p) => {
    if (!p.commit) return [];
    const id = p.upstreamCommit ?? p.commit.id;
    return [id === undefined ? { subject: p.commit.subject } : { id, subject: p.commit.subject }];
  });
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** The .c units to compile, after refusing what cannot be live-patched at the source level. */
function unitsOf(fix: LoadedFix, parsed: readonly ParsedPatch[]): string[] {
  const refusals: Refusal[] = [];
  const units = new Set<string>();
  for (const p of parsed) {
    for (const f of p.files) {
      if (f.kind === 'c') {
        if (f.op === 'delete')
          refusals.push({ unit: f.path, symbol: f.path, reason: 'the patch deletes a source file' });
        else if (f.op === 'add')
          refusals.push({
            unit: f.path,
            symbol: f.path,
            reason: 'the patch adds a new source file, which the kernel build does not know',
          });
        else units.add(f.path);
      } else if (f.kind === 'assembly') {
        refusals.push({ unit: f.path, symbol: f.path, reason: 'assembly cannot be live-patched' });
      } else if (f.kind === 'build') {
        refusals.push({
          unit: f.path,
          symbol: f.path,
          reason: 'the patch changes the build (Makefile/Kconfig): the running kernel was built without it',
        });
      } else if (f.kind === 'header') {
        const h = headerChangeIsHarmless(f);
        if (!h.ok) {
          refusals.push({
            unit: f.path,
            symbol: f.path,
            reason: `the header change is more than prototypes or macros ("${h.line.trim().slice(0, 80)}"): it may change a layout or inline code in every unit that includes it`,
          });
        }
      }
    }
  }
  if (refusals.length > 0) throw refuse(fix, refusals);
  if (units.size === 0) {
    throw new LivegraftError('NOT_LIVE_PATCHABLE', `fix ${fix.spec.id}: its patches change no C source of the kernel`, {
      details: { fix: fix.spec.id },
    });
  }
  return [...units].sort();
}

/** The diff of compiled objects: refusals, no change, or the functions to carry. */
function finish(
  fix: LoadedFix,
  ctx: PatchFixContext,
  commits: FixCommit[],
  runs: PatchRun[],
  key: string | undefined,
  compiled: CachedCompile,
): PatchFixOutcome {
  if (compiled.status === 'skipped') return { status: 'skipped', fix, commits, reason: compiled.reason ?? 'skipped' };
  const out: Extract<PatchFixOutcome, { status: 'built' }>['units'] = [];
  const refusals: Refusal[] = [];
  for (const u of compiled.units) {
    const diff = diffObjects(u.original, u.patched, { unit: u.unit });
    refusals.push(...diff.refusals);
    out.push({ ...u, diff });
  }
  if (refusals.length > 0) throw refuse(fix, refusals);
  if (out.every((u) => u.diff.noChange)) {
    return { status: 'skipped', fix, commits, reason: `compiles to no change in ${ctx.release}'s configuration` };
  }
  return {
    status: 'built',
    fix,
    commits,
    units: out.filter((u) => !u.diff.noChange),
    runs,
    touched: compiled.touched,
    ...(key === undefined ? {} : { key }),
  };
}

/**
 * Builds one fix from its patches for one prepared kernel tree: checks it is
 * not already fixed there, that it applies, compiles the touched units
 * original and patched (or takes both from the cache), and diffs them
 * function by function. The tree is restored whatever happens.
 */
export async function buildPatchFix(fix: LoadedFix, ctx: PatchFixContext): Promise<PatchFixOutcome> {
  // fix.json's fixedIn wins; without it the shipped CVE data may know.
  const fixedBy =
    fix.spec.fixedIn !== undefined
      ? alreadyFixedReason(fix.spec.fixedIn, ctx.upstreamVersion)
      : ctx.cveData === undefined
        ? undefined
        : cnaFixedReason(await ctx.cveData(), fix.spec.cves, ctx.upstreamVersion);
  const parsed: ParsedPatch[] = [];
  for (const name of fix.patches) {
    const text = await readFile(path.join(fix.dir, name), 'utf8');
    const shown = path.join(fix.shownDir, name);
    parsed.push(parsePatch(text, shown, (p) => existsSync(path.join(ctx.tree.sourceDir, p))));
  }
  const commits = commitsOf(fix, parsed);
  if (fixedBy !== undefined) return { status: 'skipped', fix, commits, reason: fixedBy };
  const units = unitsOf(fix, parsed);
  const runs: PatchRun[] = parsed.map((p, i) => ({
    run: ctx.run,
    treeDir: ctx.tree.sourceDir,
    patchFile: path.join(fix.dir, fix.patches[i] ?? ''),
    shown: p.shown,
    strip: p.strip,
    signal: ctx.signal,
  }));
  const touched = [...new Set(parsed.flatMap((p) => p.files.map((f) => f.path)))];
  const earlier = ctx.earlier ?? [];
  const earlierTouched = new Set(earlier.flatMap((e) => e.touched));

  // Earlier fixes matter to this one's objects only through shared files or headers.
  const mine = new Set(touched);
  const relevant = earlier.filter((e) => e.touched.some((t) => t.endsWith('.h') || mine.has(t)));
  const key =
    ctx.cache === undefined || relevant.some((e) => e.key === undefined)
      ? undefined
      : await fixKey(
          ctx.cache.kernel,
          fix,
          relevant.map((e) => e.key ?? ''),
        );
  if (ctx.cache !== undefined && key !== undefined) {
    const hit = await readCachedCompile(ctx.cache.dir, key);
    if (hit) {
      ctx.log(`${fix.spec.id}: compiled objects from the cache`);
      return finish(fix, ctx, commits, runs, key, hit);
    }
  }

  const compiled = await ctx.withTree(async (): Promise<CachedCompile> => {
    for (const u of units) {
      if (
        !(await exists(path.join(ctx.tree.sourceDir, u))) &&
        !parsed.some((p) => p.files.some((f) => f.path === u && f.op === 'add'))
      ) {
        throw new LivegraftError(
          'PATCH_DOES_NOT_APPLY',
          `fix ${fix.spec.id}: ${u} is not in the ${ctx.release} source tree`,
        );
      }
    }
    // Already in this tree: every patch applies in reverse.
    let reversed = 0;
    for (const r of runs) if (await appliesInReverse(r)) reversed++;
    if (reversed === runs.length) {
      return {
        status: 'skipped',
        reason: `already fixed in ${ctx.upstreamVersion} (the patch is in this kernel's source)`,
        commits,
        touched,
        units: [],
      };
    }
    const { original, patched } = await withTreeEdits(ctx.tree.sourceDir, [...earlierTouched, ...touched], async () => {
      for (const e of earlier) for (const r of e.runs) await applyPatch(r, ctx.release);
      for (const r of runs) await checkApplies(r, ctx.release);
      ctx.log(`${fix.spec.id}: compiling ${units.length} unit(s) unpatched`);
      const before = await compileUnits(ctx.run, ctx.tree, units, ctx.signal);
      for (const r of runs) {
        await checkApplies(r, ctx.release);
        await applyPatch(r, ctx.release);
      }
      ctx.log(`${fix.spec.id}: compiling ${units.length} unit(s) patched`);
      return { original: before, patched: await compileUnits(ctx.run, ctx.tree, units, ctx.signal) };
    });
    return {
      status: 'built',
      commits,
      touched,
      units: original.flatMap((o) => {
        const p = patched.find((x) => x.unit === o.unit);
        return p === undefined
          ? []
          : [
              {
                unit: o.unit,
                target: o.target,
                afterEarlier: earlierTouched.has(o.unit),
                original: o.object,
                patched: p.object,
              },
            ];
      }),
    };
  });
  if (ctx.cache !== undefined && key !== undefined) await writeCachedCompile(ctx.cache.dir, key, compiled);
  return finish(fix, ctx, commits, runs, key, compiled);
}

/** The units of built fixes, ready for one extraction. */
export function extractUnitsOf(outcomes: readonly PatchFixOutcome[]): ExtractUnit[] {
  return outcomes.flatMap((o) =>
    o.status === 'built'
      ? o.units.map((u) => ({ unit: u.unit, patched: u.patched, diff: u.diff, object: u.target }))
      : [],
  );
}

export type { CompiledUnit };
