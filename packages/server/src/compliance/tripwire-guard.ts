import { Counter, type Registry } from 'prom-client';

/**
 * What one host may do to the tripwire store. A real exploit attempt makes a
 * handful of events; a host token that floods is a stolen or broken one.
 */
export interface TripwireLimits {
  /** Reports accepted at once per host, then `reportsPerMinute`. */
  reportsBurst: number;
  reportsPerMinute: number;
  /** Events kept per host (within the retention period); more are dropped and counted. */
  maxEventsPerHost: number;
  /** Events older than this (by arrival) are deleted. */
  retentionDays: number;
  /** One alert (log warning and webhook) per host and CVE within this window; repeats are only counted. */
  alertWindowMs: number;
}

export const TRIPWIRE_LIMITS: Readonly<TripwireLimits> = {
  reportsBurst: 10,
  reportsPerMinute: 6,
  maxEventsPerHost: 5_000,
  retentionDays: 180,
  alertWindowMs: 60 * 60_000,
};

/** Host/CVE pairs remembered for deduplication at most; the oldest are forgotten first. */
const MAX_ALERT_KEYS = 100_000;

/** Remembers when each host/CVE pair last alerted (per server node). */
export class AlertDeduper {
  readonly #last = new Map<string, number>();
  readonly #windowMs: number;

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** The CVEs of these that have not alerted for this host within the window; they count as alerted now. */
  take(hostId: string, cves: Iterable<string>, nowMs: number): string[] {
    const out: string[] = [];
    for (const cve of new Set(cves)) {
      const key = `${hostId}\0${cve}`;
      const last = this.#last.get(key);
      if (last !== undefined && nowMs - last < this.#windowMs) continue;
      this.#last.delete(key);
      this.#last.set(key, nowMs);
      out.push(cve);
    }
    while (this.#last.size > MAX_ALERT_KEYS) {
      const oldest = this.#last.keys().next();
      if (oldest.done === true) break;
      this.#last.delete(oldest.value);
    }
    return out;
  }
}

/** Events refused or dropped, by reason: `not_applied` (a CVE the host's level does not carry) or `host_cap`. */
export function tripwireRefusedCounter(registry: Registry): Counter<'reason'> {
  const name = 'livegraft_tripwire_refused_events_total';
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<'reason'>;
  return new Counter({
    name,
    help: 'Tripwire events not stored: suspicious (CVE not in the host applied level) or over the per-host cap',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
}
