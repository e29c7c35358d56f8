import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KernelIdentity, PatchManifest } from '@livegraft/protocol';
import { effectiveRelease } from '@livegraft/protocol';
import { writeFileAtomic } from '../lib/fs-atomic.ts';

export const EFFECTIVE_VERSION_FILE = 'effective-version';
export const CVELIST_FILE = 'cvelist';
export const SCANNER_JSON_FILE = 'scanner.json';
/** World-readable: vulnerability scanners and config tools usually run unprivileged. */
const SCANNER_FILE_MODE = 0o644;

export interface ScannerView {
  schema: 1;
  kernel: { release: string; id: string };
  /** `<release>+lg<level>`, or the release when nothing is applied (like /proc/kcare/effective_version). */
  effectiveRelease: string;
  level: number;
  fixes: { id: string; title: string; cves: string[] }[];
  /** Every CVE the applied level fixes, sorted (like /proc/kcare/cvelist). */
  cves: string[];
  /** When the agent put this level in place; null when unknown or nothing is applied. */
  appliedAt: string | null;
}

export function scannerView(
  kernel: KernelIdentity,
  level: number,
  manifest: PatchManifest | undefined,
  appliedAt: string | null,
): ScannerView {
  const fixes = (manifest?.fixes ?? []).map((f) => ({ id: f.id, title: f.title, cves: [...f.cves] }));
  const cves = [...new Set([...(manifest?.cves ?? []), ...fixes.flatMap((f) => f.cves)])].sort();
  return {
    schema: 1,
    kernel: { release: kernel.release, id: kernel.id },
    effectiveRelease: effectiveRelease(kernel.release, level),
    level,
    fixes,
    cves,
    appliedAt: level > 0 ? appliedAt : null,
  };
}

function current(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Writes `<state>/effective-version`, `<state>/cvelist` and
 * `<state>/scanner.json`, each atomically (temp + fsync + rename) and only
 * when its content changed, so a scanner polling them never sees a torn file
 * and an unchanged host causes no writes. Returns the files rewritten.
 */
export function writeScannerFiles(stateDir: string, view: ScannerView): string[] {
  const files: [string, string][] = [
    [EFFECTIVE_VERSION_FILE, `${view.effectiveRelease}\n`],
    [CVELIST_FILE, view.cves.map((c) => `${c}\n`).join('')],
    [SCANNER_JSON_FILE, `${JSON.stringify(view, null, 2)}\n`],
  ];
  const written: string[] = [];
  for (const [name, text] of files) {
    const path = join(stateDir, name);
    if (current(path) === text) continue;
    writeFileAtomic(path, text, SCANNER_FILE_MODE);
    written.push(name);
  }
  return written;
}
