import type { ComplianceUserspaceRow, UserspaceLevelRecord } from '@livegraft/protocol';
import type { UserspaceRepository } from './repository.ts';

/** The user-space rows of the compliance report for `hosts`: per library build, fixed and open CVEs. */
export async function userspaceReportRows(
  repo: UserspaceRepository,
  hosts: readonly { hostId: string; hostname: string }[],
): Promise<ComplianceUserspaceRow[]> {
  const all = await repo.allHostLibraries();
  const byBuild = new Map<string, UserspaceLevelRecord[]>();
  for (const l of await repo.list()) byBuild.set(l.buildId, [...(byBuild.get(l.buildId) ?? []), l]);
  const rows: ComplianceUserspaceRow[] = [];
  for (const h of hosts) {
    for (const lib of all.get(h.hostId) ?? []) {
      const levels = byBuild.get(lib.buildId) ?? [];
      const applied = lib.level > 0 ? lib.cves : [];
      const everywhere = lib.unpatched + lib.refused === 0;
      const open = new Set(everywhere ? [] : applied);
      for (const l of levels)
        if (l.published && !l.halted && l.level > lib.level)
          for (const c of l.cves) if (!applied.includes(c)) open.add(c);
      const info = levels[0];
      rows.push({
        hostId: h.hostId,
        hostname: h.hostname,
        soname: lib.soname,
        buildId: lib.buildId,
        package: info?.package ?? null,
        version: info?.version ?? null,
        level: lib.level,
        fixedCves: everywhere ? [...applied].sort() : [],
        openCves: [...open].sort(),
        patched: lib.patched,
        unpatched: lib.unpatched,
        refused: lib.refused,
      });
    }
  }
  return rows;
}
