import type { HostRecord } from '@livegraft/protocol';
import type { DashboardOverview } from '@livegraft/protocol/dashboard';
import { countHostStatuses } from '@livegraft/protocol/dashboard-rules';
import type { RouteContext } from '../context.ts';
import { fleetHostOf } from '../db/hosts.ts';
import { fleetExposureSummary } from './exposure-summary.ts';

/**
 * An answer is reused for ten times as long as it took to make, at most
 * this long, and only while no change was announced to the live dashboards
 * (they reload on such an event and must see it): a big fleet's heartbeats
 * are counted at most every few seconds however many dashboards are open.
 */
const MAX_REUSE_MS = 30_000;
const REUSE_FACTOR = 10;

/** The overview's counts: hosts by status (the rules the dashboard uses) and the fleet's exposure totals. */
export class OverviewCounter {
  readonly #ctx: RouteContext;
  readonly #changes: () => number;
  readonly #last = new Map<boolean, { answer: DashboardOverview; at: number; reuseMs: number; gen: number }>();
  readonly #running = new Map<boolean, { answer: Promise<DashboardOverview>; gen: number }>();

  /** `changes` goes up with every change announced to the live dashboards. */
  constructor(ctx: RouteContext, changes: () => number) {
    this.#ctx = ctx;
    this.#changes = changes;
  }

  /** With or without the exposure totals (null for a role that may not read compliance data). */
  get(withExposure: boolean): Promise<DashboardOverview> {
    const gen = this.#changes();
    const last = this.#last.get(withExposure);
    const now = performance.now();
    if (last !== undefined && last.gen === gen && now - last.at < last.reuseMs) return Promise.resolve(last.answer);
    const running = this.#running.get(withExposure);
    if (running !== undefined && running.gen === gen) return running.answer;
    const mine = {
      gen,
      answer: this.#count(withExposure, gen).finally(() => {
        if (this.#running.get(withExposure) === mine) this.#running.delete(withExposure);
      }),
    };
    this.#running.set(withExposure, mine);
    return mine.answer;
  }

  async #count(withExposure: boolean, gen: number): Promise<DashboardOverview> {
    const started = performance.now();
    const ctx = this.#ctx;
    const live = (await ctx.hosts.list()).filter((h) => (h.revokedAt ?? null) === null);
    const desired = await ctx.fleet.desiredFor(live.map(fleetHostOf));
    const now = ctx.clock();
    const statuses = countHostStatuses(
      live.map((h: HostRecord) => ({ ...h, desired: desired.get(h.id) ?? null })),
      ctx.config.checkinIntervalSec,
      now.getTime(),
    );
    const answer: DashboardOverview = {
      generatedAt: now.toISOString(),
      checkinIntervalSec: ctx.config.checkinIntervalSec,
      hosts: { total: live.length, ...statuses },
      exposure: withExposure ? await fleetExposureSummary(ctx.compliance.exposure) : null,
    };
    const took = performance.now() - started;
    this.#last.set(withExposure, {
      answer,
      at: performance.now(),
      reuseMs: Math.min(MAX_REUSE_MS, REUSE_FACTOR * took),
      gen,
    });
    return answer;
  }
}
