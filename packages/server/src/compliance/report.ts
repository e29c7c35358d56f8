import type {
  ComplianceHostRow,
  ComplianceReport,
  CveDatasetStatus,
  ExposureWindow,
  SlaPolicy,
} from '@livegraft/protocol';
import type { ComplianceHost } from './exposure.ts';
import type { HostHistory } from './history.ts';
import { applyPolicy, historyOrHostRow, hostWindows, type AffectedOf } from './windows.ts';

export interface ReportInput {
  hosts: readonly ComplianceHost[];
  histories: ReadonlyMap<string, HostHistory>;
  /** The applied level's CVEs of hosts without recorded history (enrolled before history existed). */
  levelCves: (host: ComplianceHost) => Promise<string[]>;
  affectedOf: AffectedOf;
  policy: SlaPolicy;
  now: Date;
  filters: { feed?: string; tag?: string };
  dataset: CveDatasetStatus;
}

/** Every exposure window of the hosts under the policy. */
export async function allWindows(input: ReportInput): Promise<ExposureWindow[]> {
  const out: ExposureWindow[] = [];
  for (const host of input.hosts) {
    const history = await historyOrHostRow(host, input.histories.get(host.id), input.levelCves);
    for (const w of hostWindows(history, input.affectedOf, input.now))
      out.push(applyPolicy(w, host, input.policy, input.now));
  }
  return out;
}

const byDue = (a: ExposureWindow, b: ExposureWindow): number =>
  (a.dueAt ?? '').localeCompare(b.dueAt ?? '') || a.hostname.localeCompare(b.hostname) || a.cve.localeCompare(b.cve);

/** The compliance report: breaches, upcoming deadlines and a row per host. */
export function buildReport(input: ReportInput, windows: readonly ExposureWindow[]): ComplianceReport {
  const nowIso = input.now.toISOString();
  const inScope = windows.filter((w) => w.dueAt !== null);
  const breaches = inScope.filter((w) => w.breached).sort(byDue);
  const upcoming = inScope.filter((w) => w.end === null && !w.breached).sort(byDue);
  const closed = windows.filter((w) => w.end !== null);
  const rows = new Map<string, ComplianceHostRow>();
  for (const h of input.hosts) {
    rows.set(h.id, {
      hostId: h.id,
      hostname: h.hostname,
      release: h.release,
      appliedLevel: h.appliedLevel,
      lastCheckinAt: h.lastCheckinAt,
      openWindows: 0,
      openBreaches: 0,
      closedLate: 0,
      nextDueAt: null,
      compliant: true,
    });
  }
  for (const w of windows) {
    const row = rows.get(w.hostId);
    if (row === undefined) continue;
    if (w.end === null) row.openWindows++;
    if (w.breached && w.end === null) row.openBreaches++;
    if (w.breached && w.end !== null) row.closedLate++;
    if (w.end === null && !w.breached && w.dueAt !== null && (row.nextDueAt === null || w.dueAt < row.nextDueAt)) {
      row.nextDueAt = w.dueAt;
    }
  }
  for (const row of rows.values()) row.compliant = row.openBreaches === 0 && row.closedLate === 0;
  const hostRows = [...rows.values()];
  const meanDays =
    closed.length === 0 ? null : Math.round((closed.reduce((s, w) => s + w.days, 0) / closed.length) * 100) / 100;
  return {
    generatedAt: nowIso,
    policy: input.policy,
    filters: input.filters,
    dataset: input.dataset,
    summary: {
      hosts: hostRows.length,
      compliantHosts: hostRows.filter((r) => r.compliant).length,
      openWindows: windows.filter((w) => w.end === null).length,
      openBreaches: breaches.filter((w) => w.end === null).length,
      closedLate: breaches.filter((w) => w.end !== null).length,
      upcoming: upcoming.length,
      closedWindows: closed.length,
      meanDaysToRemediate: meanDays,
    },
    breaches,
    upcoming,
    hosts: hostRows,
  };
}
