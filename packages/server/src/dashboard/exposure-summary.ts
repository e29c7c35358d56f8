import { SEVERITIES, type SeverityCounts } from '@livegraft/protocol';
import type { DashboardOverview } from '@livegraft/protocol/dashboard';
import { emptyCounts, kernelString, type ComplianceHost, type ExposureService } from '../compliance/exposure.ts';

/**
 * The fleet's exposure totals (what GET /exposure sums, without its row per
 * host). A host's exposure depends only on its kernel and the level it runs,
 * so it is evaluated once per (kernel, level) and counted for every host on it.
 */
export async function fleetExposureSummary(
  exposure: ExposureService,
): Promise<NonNullable<DashboardOverview['exposure']>> {
  const groups = new Map<string, { host: ComplianceHost; size: number }>();
  const hosts = await exposure.hosts();
  for (const h of hosts) {
    const key = `${h.kernelId}\0${kernelString(h.procVersion, h.release)}\0${h.appliedLevel}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { host: h, size: 1 });
    else g.size++;
  }
  const counts: SeverityCounts = emptyCounts();
  const hostsExposed: SeverityCounts = emptyCounts();
  let mitigated = 0;
  let unevaluated = 0;
  for (const { host, size } of groups.values()) {
    const e = await exposure.hostExposure(host);
    if (e.error !== undefined) unevaluated += size;
    for (const s of [...SEVERITIES, 'total'] as const) {
      counts[s] += e.counts[s] * size;
      if (e.counts[s] > 0) hostsExposed[s] += size;
    }
    mitigated += e.mitigated.length * size;
  }
  return { hosts: hosts.length, unevaluated, counts, hostsExposed, mitigated };
}
