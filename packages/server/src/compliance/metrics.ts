import { Counter, Registry } from 'prom-client';

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
