import { Counter, Gauge, Registry } from 'prom-client';

export const TRIPWIRE_COUNTER = 'livegraft_tripwire_events_total';

export interface ComplianceMetrics {
  registry: Registry;
  tripwireEvents: Counter<'cve'>;
}

/**
 * The compliance counters, on the server's metrics registry when it has one
 * (the /metrics route serves that registry), else on a registry of their own.
 */
export function complianceMetrics(registry: Registry = new Registry()): ComplianceMetrics {
  const existing = registry.getSingleMetric(TRIPWIRE_COUNTER);
  const tripwireEvents =
    existing instanceof Counter
      ? (existing as Counter<'cve'>)
      : new Counter({
          name: TRIPWIRE_COUNTER,
          help: 'Exploit attempts blocked by live patches (LG_TRIPWIRE hits reported by agents), by CVE',
          labelNames: ['cve'] as const,
          registers: [registry],
        });
  return { registry, tripwireEvents };
}

export const SLA_BREACH_GAUGE = 'livegraft_sla_open_breaches';
/** The compliance report behind the gauge is recomputed at most this often, however often Prometheus scrapes. */
export const SLA_GAUGE_MAX_AGE_MS = 60_000;

/**
 * livegraft_sla_open_breaches: exposure windows still open past their SLA due
 * date, fleet-wide, and hosts with at least one. Read from the compliance
 * report when scraped, at most once a minute.
 */
export function registerSlaGauge(
  registry: Registry,
  summary: () => Promise<{ openBreaches: number; hostsInBreach: number }>,
  now: () => number = Date.now,
): void {
  if (registry.getSingleMetric(SLA_BREACH_GAUGE) !== undefined) return;
  let cached: { at: number; value: { openBreaches: number; hostsInBreach: number } } | undefined;
  new Gauge({
    name: SLA_BREACH_GAUGE,
    help: 'CVE exposure windows open past their SLA due date (scope="windows"), and hosts with one (scope="hosts")',
    labelNames: ['scope'] as const,
    registers: [registry],
    async collect() {
      const t = now();
      if (cached === undefined || t - cached.at >= SLA_GAUGE_MAX_AGE_MS || t < cached.at) {
        cached = { at: t, value: await summary() };
      }
      this.set({ scope: 'windows' }, cached.value.openBreaches);
      this.set({ scope: 'hosts' }, cached.value.hostsInBreach);
    },
  });
}
