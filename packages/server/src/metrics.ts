import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ApplyResult } from '@livegraft/protocol';

export interface MetricsSources {
  hostsByState: () => Promise<{ feed: string; state: string; count: number }[]>;
  feedLevels: () => Promise<{ feed: string; kernelId: string; level: number }[]>;
  sseConnections: () => number;
  /** Hosts silent for more than twice the check-in interval, per feed. */
  staleHosts?: () => Promise<{ feed: string; count: number }[]>;
  /** Hosts whose agent reported a clock more than CLOCK_SKEW_WARN_SEC from the server's, per feed. */
  clockSkewedHosts?: () => Promise<{ feed: string; count: number }[]>;
}

/**
 * Prometheus metrics of one server instance, in its own registry (never the
 * global one, so two servers in one process do not mix). Fleet gauges are
 * read from the database when scraped.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly checkinSeconds: Histogram<'outcome'>;
  readonly pushSeconds: Histogram;
  readonly applyOutcomes: Counter<'action' | 'result'>;
  readonly rolloutHalts: Counter;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    this.checkinSeconds = new Histogram({
      name: 'livegraft_checkin_duration_seconds',
      help: 'Time to handle a host check-in',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.pushSeconds = new Histogram({
      name: 'livegraft_push_latency_seconds',
      help: 'Time from a change (publish, promotion, rollback, pin) to its event being written to a host stream',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.applyOutcomes = new Counter({
      name: 'livegraft_apply_results_total',
      help: 'Apply results reported by agents',
      labelNames: ['action', 'result'],
      registers,
    });
    this.rolloutHalts = new Counter({
      name: 'livegraft_rollout_halts_total',
      help: 'Levels halted automatically after a failure report',
      registers,
    });
    new Gauge({
      name: 'livegraft_sse_connections',
      help: 'Open push streams on this node',
      registers,
      collect() {
        this.set(src.sseConnections());
      },
    });
    new Gauge({
      name: 'livegraft_hosts',
      help: 'Enrolled, not revoked hosts by feed and state',
      labelNames: ['feed', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const r of await src.hostsByState()) this.set({ feed: r.feed, state: r.state }, r.count);
      },
    });
    const stale = src.staleHosts;
    if (stale !== undefined) {
      new Gauge({
        name: 'livegraft_hosts_stale',
        help: 'Enrolled, not revoked hosts with no check-in for more than twice the check-in interval, by feed',
        labelNames: ['feed'],
        registers,
        async collect() {
          this.reset();
          for (const r of await stale()) this.set({ feed: r.feed }, r.count);
        },
      });
    }
    const skewed = src.clockSkewedHosts;
    if (skewed !== undefined) {
      new Gauge({
        name: 'livegraft_hosts_clock_skewed',
        help: "Enrolled, not revoked hosts whose clock was more than 5 minutes from the server's at their last check-in, by feed",
        labelNames: ['feed'],
        registers,
        async collect() {
          this.reset();
          for (const r of await skewed()) this.set({ feed: r.feed }, r.count);
        },
      });
    }
    new Gauge({
      name: 'livegraft_feed_level',
      help: 'Current patch level of each feed per kernel build',
      labelNames: ['feed', 'kernel_id'],
      registers,
      async collect() {
        this.reset();
        for (const r of await src.feedLevels()) this.set({ feed: r.feed, kernel_id: r.kernelId }, r.level);
      },
    });
  }

  countApply(r: ApplyResult): void {
    this.applyOutcomes.inc({ action: r.action, result: r.ok ? 'ok' : 'failed' });
  }
}
