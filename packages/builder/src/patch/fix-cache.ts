import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FixCommit } from '@livegraft/protocol';
import type { LoadedFix } from '../fixes.ts';

/**
 * What compiling one fix for one kernel build produced: enough to redo the
 * diff and extraction without touching the kernel tree. Keyed by everything
 * that decides the compiled objects.
 */
export interface CachedCompile {
  status: 'built' | 'skipped';
  reason?: string;
  commits: FixCommit[];
  touched: string[];
  units: { unit: string; target: string; afterEarlier: boolean; original: Buffer; patched: Buffer }[];
}

interface Stored {
  status: 'built' | 'skipped';
  reason?: string;
  commits: FixCommit[];
  touched: string[];
  units: { unit: string; target: string; afterEarlier: boolean; original: string; patched: string }[];
}

/** Bump when what is stored (or how it is compiled) changes meaning. */
const CACHE_FORMAT = 'fix-objects/1';
/** Objects of one unit are well under this; a bigger file is not ours. */
const MAX_CACHED_OBJECT = 64 * 1024 * 1024;

/**
 * The cache key of a fix compiled for a kernel build: the build, the fix's
 * patches, and the keys of the earlier fixes of the level it was compiled
 * on top of (only those that change a file it touches, or a header).
 */
export async function fixKey(
  kernel: { release: string; debianVersion: string },
  fix: LoadedFix,
  earlier: readonly string[],
): Promise<string> {
  const h = createHash('sha256').update(`${CACHE_FORMAT}\0${kernel.release}\0${kernel.debianVersion}\0`);
  // The patches decide the objects; fix.json's prose, scores and trigger do not.
  for (const p of fix.patches) h.update(`\0${p}\0`).update(await readFile(path.join(fix.dir, p)));
  for (const e of earlier) h.update(`\0earlier:${e}`);
  return h.digest('hex');
}

function entryDir(cacheDir: string, key: string): string {
  return path.join(cacheDir, 'fix-objects', key.slice(0, 2), key);
}

export async function readCachedCompile(cacheDir: string, key: string): Promise<CachedCompile | undefined> {
  const dir = entryDir(cacheDir, key);
  let stored: Stored;
  try {
    stored = JSON.parse(await readFile(path.join(dir, 'entry.json'), 'utf8')) as Stored;
  } catch {
    return undefined;
  }
  try {
    const units: CachedCompile['units'] = [];
    for (const u of stored.units) {
      const original = await readFile(path.join(dir, u.original));
      const patched = await readFile(path.join(dir, u.patched));
      if (original.length > MAX_CACHED_OBJECT || patched.length > MAX_CACHED_OBJECT) return undefined;
      units.push({ unit: u.unit, target: u.target, afterEarlier: u.afterEarlier, original, patched });
    }
    return { ...stored, units };
  } catch {
    // A damaged entry is a miss; the next build writes it again.
    return undefined;
  }
}

/** Stores an entry whole or not at all (written beside, then renamed into place). */
export async function writeCachedCompile(cacheDir: string, key: string, entry: CachedCompile): Promise<void> {
  const dir = entryDir(cacheDir, key);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const units: Stored['units'] = [];
  for (const [i, u] of entry.units.entries()) {
    await writeFile(path.join(tmp, `${i}.orig.o`), u.original);
    await writeFile(path.join(tmp, `${i}.patched.o`), u.patched);
    units.push({
      unit: u.unit,
      target: u.target,
      afterEarlier: u.afterEarlier,
      original: `${i}.orig.o`,
      patched: `${i}.patched.o`,
    });
  }
  const stored: Stored = {
    status: entry.status,
    ...(entry.reason === undefined ? {} : { reason: entry.reason }),
    commits: entry.commits,
    touched: entry.touched,
    units,
  };
  await writeFile(path.join(tmp, 'entry.json'), JSON.stringify(stored));
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  await rename(tmp, dir);
}
