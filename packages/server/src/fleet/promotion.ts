import type { FeedRepository } from '../db/feeds.ts';
import type { HostRepository } from '../db/hosts.ts';
import { haltKey } from './desired.ts';
import { inMaintenanceWindow } from './windows.ts';

export interface Promotion {
  from: string;
  to: string;
  kernelId: string;
  level: number;
  previous: number;
}

export interface PromotionDeps {
  feeds: FeedRepository;
  hosts: HostRepository;
  clock: () => Date;
}

const since = (iso: string, now: Date): number => (now.getTime() - Date.parse(iso)) / 1000;

/**
 * One pass over every promotion rule (or one feed's). For each feed level
 * that the next feed lacks: the delay since it landed must have passed; if
 * the rule counts hosts, enough of them must run it patched, continuously
 * for healthySec; it must not be halted (a failure halts it); and the next
 * feed's maintenance window, if any, must be open; and a next feed that
 * requires validation takes only a validated level. Writes are conditional,
 * so nodes evaluating at once promote each level once.
 */
export async function evaluatePromotions(d: PromotionDeps, onlyFeed?: string): Promise<Promotion[]> {
  const now = d.clock();
  const feeds = await d.feeds.list();
  const byName = new Map(feeds.map((f) => [f.name, f]));
  const halted = new Set((await d.feeds.halts()).map((h) => haltKey(h.kernelId, h.level)));
  const validated = feeds.some((f) => f.requireValidated) ? await d.feeds.validatedLevels() : new Set<string>();
  const done: Promotion[] = [];
  for (const feed of feeds) {
    if (onlyFeed !== undefined && feed.name !== onlyFeed) continue;
    const rule = feed.promotion;
    const dest = feed.promotesTo === null ? undefined : byName.get(feed.promotesTo);
    if (rule === null || dest === undefined) continue;
    const countsHosts = rule.minHosts !== undefined || rule.minPercent !== undefined;
    if (!countsHosts && rule.afterSec === undefined && rule.healthySec === undefined) continue;
    const destLevels = new Map((await d.feeds.levels({ feed: dest.name })).map((r) => [r.kernel_id, r.level]));
    for (const row of await d.feeds.levels({ feed: feed.name })) {
      if (row.level === 0 || (destLevels.get(row.kernel_id) ?? 0) >= row.level) continue;
      if (halted.has(haltKey(row.kernel_id, row.level))) continue;
      // A feed that requires validation is never promoted an unproven level.
      if (dest.requireValidated && !validated.has(haltKey(row.kernel_id, row.level))) continue;
      const delayOk = rule.afterSec === undefined || since(row.set_at, now) >= rule.afterSec;
      let healthyOk: boolean;
      if (countsHosts) {
        const { total, applied } = await d.hosts.appliedStats(feed.name, row.kernel_id, row.level);
        const met =
          (rule.minHosts === undefined || applied >= rule.minHosts) &&
          (rule.minPercent === undefined || (total > 0 && (applied * 100) / total >= rule.minPercent));
        let healthySince = row.healthy_since;
        if (met && healthySince === null) {
          healthySince = now.toISOString();
          await d.feeds.setHealthySince(feed.name, row.kernel_id, row.level, healthySince);
        } else if (!met && healthySince !== null) {
          healthySince = null;
          await d.feeds.setHealthySince(feed.name, row.kernel_id, row.level, null);
        }
        healthyOk = healthySince !== null && since(healthySince, now) >= (rule.healthySec ?? 0);
      } else {
        healthyOk = rule.healthySec === undefined || since(row.set_at, now) >= rule.healthySec;
      }
      if (!delayOk || !healthyOk || !inMaintenanceWindow(dest.windows, now)) continue;
      const change = { feed: dest.name, kernelId: row.kernel_id, level: row.level, source: 'promotion' as const };
      const moved = await d.feeds.setLevel({ ...change, allowDowngrade: false, onlyUpward: true }, now);
      if (moved !== undefined) {
        done.push({
          from: feed.name,
          to: dest.name,
          kernelId: row.kernel_id,
          level: row.level,
          previous: moved.previous,
        });
      }
    }
  }
  return done;
}
