import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Commit } from './bundle.ts';

/** Fix directories read from a catalogue; more are ignored (and logged). */
const MAX_CATALOGUE_FIXES = 2000;
/** fix.json and the head of each patch are read up to this many bytes. */
const MAX_READ_BYTES = 64 * 1024;

/** A fix the shipped catalogue already carries. */
export interface CatalogueFix {
  id: string;
  cves: string[];
  commits: Commit[];
}

async function readHead(path: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(MAX_READ_BYTES);
    const { bytesRead } = await fh.read(buf, 0, MAX_READ_BYTES, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/**
 * The fixes of a catalogue directory (one sub-directory per fix, each with a
 * fix.json): ids, CVEs and upstream commits (from fix.json, else from the
 * patches' "From <sha>" headers). Unreadable entries are skipped.
 */
export async function readCatalogue(dir: string, log: Logger): Promise<CatalogueFix[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    log.warn({ err, dir }, 'the fix catalogue cannot be read; duplicates are checked against submitted fixes only');
    return [];
  }
  if (entries.length > MAX_CATALOGUE_FIXES) {
    log.warn({ dir, entries: entries.length }, `only the first ${MAX_CATALOGUE_FIXES} catalogue fixes are read`);
  }
  const out: CatalogueFix[] = [];
  for (const name of entries.sort().slice(0, MAX_CATALOGUE_FIXES)) {
    const text = await readHead(join(dir, name, 'fix.json'));
    if (text === undefined) continue;
    let spec: Record<string, unknown>;
    try {
      spec = JSON.parse(text) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof spec['id'] !== 'string') continue;
    const commits: Commit[] = [];
    if (Array.isArray(spec['commits'])) {
      for (const c of spec['commits'] as unknown[]) {
        const r = c as { id?: unknown; subject?: unknown };
        if (typeof r.subject === 'string')
          commits.push({ id: typeof r.id === 'string' ? r.id : null, subject: r.subject });
      }
    } else {
      for (const p of strings(spec['patches'])) {
        if (p.includes('/')) continue;
        const m = /^From ([0-9a-f]{40}) /.exec((await readHead(join(dir, name, p))) ?? '');
        if (m?.[1] !== undefined) commits.push({ id: m[1], subject: p });
      }
    }
    out.push({ id: spec['id'], cves: strings(spec['cves']), commits });
  }
  return out;
}
