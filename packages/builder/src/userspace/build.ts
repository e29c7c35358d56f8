import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  LivegraftError,
  userspaceFixSpecValidator,
  userspaceManifestValidator,
  type UserspaceFixSpec,
  type UserspaceFunction,
  type UserspaceManifest,
} from '@livegraft/protocol';
import { SHF_ALLOC, SHF_EXECINSTR, SHT_PROGBITS, STB_GLOBAL, STT_FUNC } from '../elf/constants.ts';
import { writeRelocatable } from '../elf/write.ts';
import { ObjectModel } from '../klp/model.ts';
import type { Refusal } from '../klp/types.ts';
import { withFileLock } from '../kernel/lock.ts';
import { checkApplies, applyPatch } from '../patch/apply.ts';
import { headerChangeIsHarmless, parsePatch, type ParsedPatch } from '../patch/parse.ts';
import { withTreeEdits } from '../patch/tree-edit.ts';
import { binaryTree, sourceTree, type SourceContext } from './debian-source.ts';
import { diffUserspaceUnit, type UserspaceDiff } from './diff.ts';
import { CodeBlock } from './link.ts';
import { recipeFor } from './recipes.ts';
import { loadSharedLibrary, uniqueSymbol, type SharedLibrary } from './shlib.ts';
import { matchesShipped, matchUnit, type UnitMatch } from './verify.ts';

const MAX_FIX_JSON_BYTES = 256 * 1024;
const MAX_LIBRARY_BYTES = 256 * 1024 * 1024;
const BUILD_LOCK_TIMEOUT_MS = 60 * 60_000;
/** A 5-byte jmp rel32 goes over each function entry. */
const JUMP_BYTES = 5;

export interface UserspaceFix {
  dir: string;
  spec: UserspaceFixSpec;
}

export async function readUserspaceFix(fixDir: string): Promise<UserspaceFix> {
  const dir = path.resolve(fixDir);
  const file = path.join(dir, 'fix.json');
  const st = await stat(file).catch(() => undefined);
  if (st === undefined) throw new LivegraftError('USERSPACE_FIX_INVALID', `${dir} has no fix.json`);
  if (st.size > MAX_FIX_JSON_BYTES) throw new LivegraftError('USERSPACE_FIX_INVALID', `${file} is too large`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new LivegraftError('USERSPACE_FIX_INVALID', `${file} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return { dir, spec: userspaceFixSpecValidator.parse(json) };
}

export interface UserspaceBuildOptions extends SourceContext {
  fixes: UserspaceFix[];
  level: number;
  outDir: string;
  builder?: string;
  now?: () => Date;
}

export interface UserspaceBuildResult {
  manifest: UserspaceManifest;
  manifestPath: string;
  objectPath: string;
  /** Per unit: how many of its functions the rebuild reproduced byte for byte (relocations masked). */
  matches: Record<string, UnitMatch>;
  /** Functions that changed only in __LINE__ constants, per unit. */
  lineOnly: Record<string, string[]>;
  warnings: string[];
  timings: { downloadSec: number; extractSec: number; configureSec: number; compileSec: number; totalSec: number };
}

function refused(what: string, refusals: Refusal[]): LivegraftError {
  return new LivegraftError(
    'USERSPACE_PATCH_REFUSED',
    `${what}:\n  ${refusals.map((r) => `${r.unit}: ${r.reason}`).join('\n  ')}`,
    { details: { refusals } },
  );
}

/** The C files the patches change; header and build changes must not change code or layouts. */
function unitsOf(patches: { fix: string; parsed: ParsedPatch }[]): string[] {
  const units = new Set<string>();
  const refusals: Refusal[] = [];
  for (const { fix, parsed } of patches) {
    for (const f of parsed.files) {
      if (f.kind === 'c') units.add(f.path);
      else if (f.kind === 'header') {
        const h = headerChangeIsHarmless(f);
        if (!h.ok)
          refusals.push({
            symbol: f.path,
            unit: f.path,
            reason: `${fix}: the patch changes ${f.path} beyond prototypes and macros (${h.line.trim()}): a struct layout or inline code change cannot be carried into running processes`,
          });
      } else if (f.kind === 'assembly' || f.kind === 'build')
        refusals.push({
          symbol: f.path,
          unit: f.path,
          reason: `${fix}: the patch changes ${f.path} (${f.kind}), which the builder does not rebuild`,
        });
    }
  }
  if (refusals.length > 0) throw refused('the patches cannot be live-patched', refusals);
  if (units.size === 0) throw new LivegraftError('USERSPACE_PATCH_EMPTY', 'the patches change no C file');
  return [...units].sort();
}

async function loadLibrary(ctx: SourceContext, spec: UserspaceFixSpec): Promise<{ lib: SharedLibrary; bytes: Buffer }> {
  const version = spec.source.version;
  const root = await binaryTree(ctx, spec.library.package, version);
  const file = path.join(root, spec.library.path);
  const st = await stat(file).catch(() => undefined);
  if (st === undefined || st.size > MAX_LIBRARY_BYTES)
    throw new LivegraftError(
      'USERSPACE_LIBRARY_MISSING',
      `${spec.library.package} ${version} has no ${spec.library.path}`,
    );
  const bytes = await readFile(file);
  let debug: Buffer | undefined;
  if (spec.library.debugPackage !== undefined) {
    const probe = loadSharedLibrary(bytes);
    const dbgRoot = await binaryTree(ctx, spec.library.debugPackage, version);
    const dbgFile = path.join(
      dbgRoot,
      'usr/lib/debug/.build-id',
      probe.buildId.slice(0, 2),
      `${probe.buildId.slice(2)}.debug`,
    );
    debug = await readFile(dbgFile).catch(() => {
      throw new LivegraftError(
        'USERSPACE_DEBUG_MISSING',
        `${spec.library.debugPackage} ${version} has no debug file for build-id ${probe.buildId}`,
      );
    });
  }
  return { lib: loadSharedLibrary(bytes, debug), bytes };
}

function sonameOf(libPath: string): string {
  return path.basename(libPath);
}

/**
 * Builds one cumulative user-space level for one library build: rebuilds the
 * changed translation units from the Debian source package with Debian's
 * flags, checks the rebuilt originals against the shipped library, applies
 * the fixes' patches, diffs function by function and links the changed
 * functions into one code object with the manifest the helper applies.
 */
export async function buildUserspaceLevel(opts: UserspaceBuildOptions): Promise<UserspaceBuildResult> {
  const t0 = performance.now();
  const first = opts.fixes[0];
  if (first === undefined) throw new LivegraftError('USERSPACE_FIX_INVALID', 'no fixes given');
  const { spec } = first;
  for (const f of opts.fixes) {
    const s = f.spec;
    if (
      s.source.package !== spec.source.package ||
      s.source.version !== spec.source.version ||
      s.library.package !== spec.library.package ||
      s.library.path !== spec.library.path
    )
      throw new LivegraftError(
        'USERSPACE_FIX_MIXED',
        `${s.id} is for ${s.library.path} of ${s.source.package} ${s.source.version}, ${spec.id} for ${spec.library.path} of ${spec.source.package} ${spec.source.version}: a level is for one library build`,
      );
  }
  const recipe = recipeFor(spec.source.package);
  const tree = await sourceTree(opts, spec.source.package, spec.source.version);
  const { lib } = await loadLibrary(opts, spec);
  const soname = sonameOf(spec.library.path);

  const patches: { fix: string; file: string; parsed: ParsedPatch }[] = [];
  for (const f of opts.fixes) {
    for (const p of f.spec.patches) {
      const file = path.join(f.dir, p);
      const text = await readFile(file, 'utf8');
      patches.push({ fix: f.spec.id, file, parsed: parsePatch(text, `${f.spec.id}/${p}`) });
    }
  }
  const units = unitsOf(patches);
  const what = `${spec.source.package} ${spec.source.version}`;

  const work = path.join(opts.outDir, '.work');
  await mkdir(work, { recursive: true });
  const timing = { configureSec: 0, compileSec: 0 };
  const objects = await withFileLock(
    path.join(tree.dir, '..', '.build.lock'),
    async () => {
      const env = await recipe.env(opts, tree.dir);
      const c0 = performance.now();
      const buildDir = await recipe.configure(opts, tree.dir, env);
      const c1 = performance.now();
      timing.configureSec = (c1 - c0) / 1000;
      const out = new Map<string, { original: Buffer; patched: Buffer }>();
      const originals = new Map<string, Buffer>();
      for (const u of units) {
        const o = await recipe.compile(opts, tree.dir, buildDir, u, soname, env);
        const keep = path.join(work, `${u.replace(/\//g, '__')}.orig.o`);
        await copyFile(o, keep);
        originals.set(u, await readFile(keep));
      }
      const touched = [...new Set(patches.flatMap((p) => p.parsed.files.map((f) => f.path)))];
      await withTreeEdits(tree.dir, touched, async () => {
        for (const p of patches) {
          const run = {
            run: opts.run,
            treeDir: tree.dir,
            patchFile: p.file,
            shown: `${p.fix}/${path.basename(p.file)}`,
            strip: p.parsed.strip,
            ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
          };
          await checkApplies(run, what);
          await applyPatch(run, what);
        }
        for (const u of units) {
          const o = await recipe.compile(opts, tree.dir, buildDir, u, soname, env);
          out.set(u, { original: originals.get(u) ?? Buffer.alloc(0), patched: await readFile(o) });
        }
      });
      // Leave the tree's objects as the unpatched build made them.
      for (const u of units) await recipe.compile(opts, tree.dir, buildDir, u, soname, env);
      timing.compileSec = (performance.now() - c1) / 1000;
      return out;
    },
    { timeoutMs: BUILD_LOCK_TIMEOUT_MS, signal: opts.signal, what: `the ${what} source tree` },
  );

  const diffs: UserspaceDiff[] = [];
  const matches: Record<string, UnitMatch> = {};
  const lineOnly: Record<string, string[]> = {};
  const refusals: Refusal[] = [];
  const block = new CodeBlock(lib);
  const functions: UserspaceFunction[] = [];
  const fixesOfFunction = (name: string): string[] => {
    // Every fix of the level whose patches touch the unit; the differ cannot tell patches of one unit apart.
    const unit = diffs.find((d) => d.changed.some((c) => c.originalName === name))?.unit;
    return [...new Set(patches.filter((p) => p.parsed.files.some((f) => f.path === unit)).map((p) => p.fix))];
  };
  for (const u of units) {
    const objs = objects.get(u);
    if (objs === undefined) continue;
    const d = diffUserspaceUnit(objs.original, objs.patched, { unit: u });
    diffs.push(d);
    refusals.push(...d.refusals);
    lineOnly[u] = d.lineOnly;
    const om = new ObjectModel(objs.original);
    matches[u] = matchUnit(om, lib, u);
    const origByName = new Map(om.functions().map((f) => [f.name, f]));
    for (const c of d.changed) {
      const ls = uniqueSymbol(lib, c.originalName, u);
      const of = origByName.get(c.originalName);
      if (ls === undefined || of === undefined) {
        refusals.push({
          symbol: c.originalName,
          unit: u,
          reason: `${c.originalName} changes but the shipped library has no symbol for it (inlined, or local without debug symbols)`,
        });
        continue;
      }
      if (ls.size < JUMP_BYTES) {
        refusals.push({
          symbol: c.originalName,
          unit: u,
          reason: `${c.originalName} is ${ls.size} bytes, too short for a ${JUMP_BYTES}-byte jump`,
        });
        continue;
      }
      const m = matchesShipped(om, of, lib, ls);
      if (!m.ok) {
        refusals.push({
          symbol: c.originalName,
          unit: u,
          reason: `the rebuilt ${c.originalName} does not match the shipped library (${m.reason ?? ''}): the rebuild does not reproduce Debian's build`,
        });
      }
    }
  }
  if (refusals.length > 0) throw refused(`cannot build a live patch of ${soname} from ${what}`, refusals);
  if (diffs.every((d) => d.changed.length === 0))
    throw new LivegraftError(
      'USERSPACE_NO_CHANGE',
      `the patches change no function of ${soname} (only __LINE__ constants or nothing): nothing to live-patch`,
    );

  for (const d of diffs) {
    const objs = objects.get(d.unit);
    if (objs === undefined || d.changed.length === 0) continue;
    const pm = new ObjectModel(objs.patched);
    const om = new ObjectModel(objs.original);
    const shipped = new Map<string, number>();
    for (const f of om.functions()) {
      const ls = lib.symbols.get(f.name);
      if (ls?.length !== 1 || ls[0] === undefined) continue;
      if (matchesShipped(om, f, lib, ls[0]).ok) shipped.set(f.name, ls[0].offset);
    }
    block.learn(om, d.unit, shipped);
    // A section of static data keeps its layout when the patch changed no object in it (else refused above).
    const sameLayout = (sec: { name: string; size: number }): boolean =>
      om.elf.sections.some((o) => o.name === sec.name && o.size === sec.size);
    const replaces = new Map(d.changed.map((c) => [c.name, c.originalName]));
    block.addUnit(
      pm,
      d.unit,
      [...d.changed.map((c) => c.name), ...d.carriedChildren, ...d.added],
      replaces,
      d.correlation,
      sameLayout,
    );
  }
  if (block.refusals.length > 0) throw refused(`cannot link the new code of ${soname}`, block.refusals);
  const { text, relocs } = block.finish();
  for (const p of block.placed) {
    if (p.replaces === undefined) continue;
    const ls = uniqueSymbol(lib, p.replaces, soname);
    if (ls === undefined) continue;
    functions.push({
      symbol: p.replaces,
      local: ls.local,
      offset: ls.offset,
      size: ls.size,
      sha256: lib.sha256At(ls.offset, ls.size),
      codeOffset: p.codeOffset,
      fixes: fixesOfFunction(p.replaces),
    });
  }

  const object = writeRelocatable({
    sections: [{ name: '.text', type: SHT_PROGBITS, flags: SHF_ALLOC | SHF_EXECINSTR, addralign: 4096, data: text }],
    symbols: block.placed.map((p) => ({
      name: `livegraft.${p.name}`,
      type: STT_FUNC,
      bind: STB_GLOBAL,
      section: 0,
      value: p.codeOffset,
      size: 0,
    })),
  });
  const base = soname.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const file = `lg-${base}-${lib.buildId.slice(0, 12)}-${opts.level}.o`;
  const cves = [...new Set(opts.fixes.flatMap((f) => f.spec.cves))].sort();
  const manifest: UserspaceManifest = {
    schema: 1,
    kind: 'userspace',
    library: {
      buildId: lib.buildId,
      soname,
      package: spec.library.package,
      version: spec.source.version,
      sourcePackage: spec.source.package,
      arch: 'amd64',
      path: spec.library.path,
    },
    level: opts.level,
    functions,
    relocs,
    code: {
      file,
      sha256: createHash('sha256').update(object).digest('hex'),
      size: object.length,
      textSize: text.length,
    },
    fixes: opts.fixes.map((f) => ({
      id: f.spec.id,
      title: f.spec.title,
      cves: f.spec.cves,
      functions: functions.filter((fn) => fn.fixes.includes(f.spec.id)).map((fn) => fn.symbol),
      ...(f.spec.commits !== undefined ? { commits: f.spec.commits } : {}),
    })),
    cves,
    builtAt: (opts.now?.() ?? new Date()).toISOString(),
    builder: (opts.builder ?? 'livegraft-builder').slice(0, 64),
  };
  userspaceManifestValidator.parse(manifest);
  const objectPath = path.join(opts.outDir, file);
  const manifestPath = path.join(opts.outDir, `lg-${base}-${lib.buildId.slice(0, 12)}-${opts.level}.json`);
  await writeFile(objectPath, object);
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return {
    manifest,
    manifestPath,
    objectPath,
    matches,
    lineOnly,
    warnings: block.warnings,
    timings: {
      downloadSec: tree.downloadSec,
      extractSec: tree.extractSec,
      configureSec: timing.configureSec,
      compileSec: timing.compileSec,
      totalSec: (performance.now() - t0) / 1000,
    },
  };
}
