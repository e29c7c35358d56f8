import { fixedInFor, loadDefaultDataset, parseVersion, type CveDatabase } from '@livegraft/inspector';
import { compareVersions } from './version.ts';

/**
 * Why a kernel build at `upstream` already carries the fix for every one of
 * `cves`, according to the kernel CNA's records shipped with Livegraft (the
 * first stable version of the branch with the fix), or undefined when the
 * data does not say so for all of them.
 */
export function cnaFixedReason(db: CveDatabase, cves: readonly string[], upstream: string): string | undefined {
  if (cves.length === 0) return undefined;
  const version = parseVersion(upstream);
  const fixedIn: string[] = [];
  for (const id of cves) {
    const entry = db.entries.get(id);
    if (entry === undefined) return undefined;
    const fixed = fixedInFor(entry, version);
    if (fixed === null || fixed.kind !== 'stable' || compareVersions(upstream, fixed.version) < 0) return undefined;
    fixedIn.push(`${id} in ${fixed.version}`);
  }
  return `already fixed in ${upstream} (the CVE data names ${fixedIn.join(', ')})`;
}

let shared: Promise<CveDatabase> | undefined;

/** The shipped CVE dataset, loaded once per process and only when a build needs it. */
export function cveDatabase(): Promise<CveDatabase> {
  shared ??= loadDefaultDataset();
  return shared;
}
