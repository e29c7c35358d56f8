import type { CoverageReport, ExposureWindow } from '@livegraft/protocol';

/**
 * RFC 4180 cell. A leading = + - @ (or tab/CR) is prefixed with ' so that a
 * spreadsheet never evaluates a host-chosen name as a formula.
 */
export function csvCell(value: string | number | null): string {
  let s = value === null ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export const WINDOW_CSV_HEADER = [
  'host_id',
  'hostname',
  'cve',
  'severity',
  'cvss',
  'kernel_release',
  'kernel_id',
  'exposed_since',
  'fixed_at',
  'fixed_by',
  'fixed_by_level',
  'due_at',
  'days',
  'status',
];

export function windowStatus(w: ExposureWindow): string {
  if (w.end === null) return w.breached ? 'open-past-due' : 'open';
  return w.breached ? 'closed-late' : 'closed';
}

/** Every window with an SLA, one per line, breaches first. */
export function windowsCsv(windows: readonly ExposureWindow[]): string {
  const lines = [WINDOW_CSV_HEADER.join(',')];
  const rank = (w: ExposureWindow): number =>
    ['open-past-due', 'closed-late', 'open', 'closed'].indexOf(windowStatus(w));
  const sorted = windows
    .filter((w) => w.dueAt !== null)
    .sort(
      (a, b) =>
        rank(a) - rank(b) ||
        a.hostname.localeCompare(b.hostname) ||
        a.cve.localeCompare(b.cve) ||
        a.start.localeCompare(b.start),
    );
  for (const w of sorted) {
    lines.push(
      [
        w.hostId,
        w.hostname,
        w.cve,
        w.severity,
        w.cvssScore,
        w.release,
        w.kernelId,
        w.start,
        w.end,
        w.closedBy,
        w.fixedByLevel,
        w.dueAt,
        w.days,
        windowStatus(w),
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return `${lines.join('\r\n')}\r\n`;
}

export const COVERAGE_CSV_HEADER = [
  'cve',
  'severity',
  'cvss',
  'kernel_id',
  'kernel_release',
  'state',
  'version',
  'level',
  'hosts_applied',
  'hosts',
  'fix_id',
  'reason',
];

/** The build pipeline's coverage: one line per CVE and fleet kernel build. */
export function coverageCsv(report: CoverageReport): string {
  const release = new Map(report.kernels.map((k) => [k.kernelId, k.release]));
  const lines = [COVERAGE_CSV_HEADER.join(',')];
  for (const r of report.rows) {
    for (const c of r.cells) {
      lines.push(
        [
          r.cve,
          r.severity,
          r.cvss,
          c.kernelId,
          release.get(c.kernelId) ?? '',
          c.state,
          c.version,
          c.level,
          c.hostsApplied,
          c.hosts,
          c.fixId,
          c.reason,
        ]
          .map(csvCell)
          .join(','),
      );
    }
  }
  return `${lines.join('\r\n')}\r\n`;
}
