import type { ComplianceUserspaceRow, UserspaceLevelRecord } from '@livegraft/protocol';
import { csvCell } from '../compliance/csv.ts';
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

export const USERSPACE_CSV_HEADER = [
  'host_id',
  'hostname',
  'library',
  'build_id',
  'package',
  'version',
  'level',
  'cve',
  'status',
  'patched_processes',
  'unpatched_processes',
  'refused_processes',
];

/**
 * The user-space part of the compliance report as CSV: one line per host,
 * library build and CVE, `fixed` (live-patched in every process mapping the
 * build) or `open` (a published level not applied, or processes still running
 * the old code); open lines first.
 */
export function userspaceCsv(rows: readonly ComplianceUserspaceRow[]): string {
  const lines = [USERSPACE_CSV_HEADER.join(',')];
  const out: { status: string; cells: (string | number | null)[] }[] = [];
  for (const r of rows) {
    const line = (cve: string, status: string) =>
      out.push({
        status,
        cells: [
          r.hostId,
          r.hostname,
          r.soname,
          r.buildId,
          r.package,
          r.version,
          r.level,
          cve,
          status,
          r.patched,
          r.unpatched,
          r.refused,
        ],
      });
    for (const c of r.openCves) line(c, 'open');
    for (const c of r.fixedCves) line(c, 'fixed');
  }
  out.sort((a, b) => (a.status === b.status ? 0 : a.status === 'open' ? -1 : 1));
  for (const o of out) lines.push(o.cells.map(csvCell).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** The rows of the PDF's user-space table: host, library, level, fixed and open CVEs, processes. */
export function userspacePdfRows(rows: readonly ComplianceUserspaceRow[]): string[][] {
  return rows.map((r) => [
    r.hostname,
    `${r.soname} (${r.package ?? '?'} ${r.version ?? ''})`.replace(' )', ')'),
    String(r.level),
    r.fixedCves.join(' ') || '-',
    r.openCves.join(' ') || '-',
    `${r.patched}/${r.unpatched}/${r.refused}`,
  ]);
}
