import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { ComplianceReport, Severity, SlaPolicy } from '@livegraft/protocol';
import type { HistorySeries, OpenCve } from '@livegraft/protocol/dashboard';
import type { ComplianceHost } from '../compliance/exposure.ts';
import { HistoryRepository } from '../compliance/history.ts';
import { LevelCatalog } from '../compliance/levels.ts';
import type { ComplianceDatabase } from '../compliance/schema.ts';
import type { ComplianceService } from '../compliance/service.ts';
import { historyOrHostRow, hostWindows, slaOf } from '../compliance/windows.ts';
import { sortOpenCves } from './summaries.ts';

/**
 * The compliance numbers the dashboard shows (the report's summary, the
 * open-window history per day, the CVEs with open SLA windows), folded host
 * by host from the same windows the report is made of, without keeping the
 * windows: memory stays O(CVEs) whatever the fleet's size, and the event loop
 * gets a turn between batches of hosts.
 */

const DAY = 86_400_000;
/** Hosts whose histories are read at once. */
const HOSTS_PER_BATCH = 100;
/** The fold gives the event loop a turn at least this often, so requests are answered while it runs. */
const SLICE_MS = 15;
/**
 * A fold is reused for ten times as long as it took, between these bounds: a
 * small fleet gets fresh numbers every few seconds, a fleet whose fold takes a
 * minute gets them recomputed at most every few minutes (each answer says when).
 */
const MIN_REUSE_MS = 3_000;
const MAX_REUSE_MS = 5 * 60_000;
const REUSE_FACTOR = 10;
const GROUPS: [string, Severity[]][] = [
  ['critical', ['critical']],
  ['high', ['high']],
  ['other', ['medium', 'low', 'none', 'not rated']],
];

export interface ComplianceFold {
  generatedAt: string;
  summary: ComplianceReport['summary'];
  history: HistorySeries[];
  openCves: OpenCve[];
}

/** The first index of sorted `ts` whose value is >= t (ts.length if none). */
function firstAtOrAfter(ts: readonly number[], t: number): number {
  let lo = 0;
  let hi = ts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((ts[mid] ?? Infinity) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class ComplianceFolder {
  readonly #compliance: ComplianceService;
  readonly #history: HistoryRepository;
  readonly #levels: LevelCatalog;
  readonly #clock: () => Date;
  #running: Promise<ComplianceFold> | undefined;
  #last: { fold: ComplianceFold; at: number; reuseMs: number; days: number } | undefined;

  constructor(o: { db: Kysely<unknown>; compliance: ComplianceService; clock: () => Date }) {
    const db = o.db as Kysely<ComplianceDatabase>;
    this.#compliance = o.compliance;
    this.#history = new HistoryRepository(db);
    this.#levels = new LevelCatalog(db);
    this.#clock = o.clock;
  }

  /** The numbers now (or from a recent fold, see MAX_REUSE_MS); callers asking while a fold runs share it. */
  fold(historyDays: number): Promise<ComplianceFold> {
    const now = this.#clock().getTime();
    const last = this.#last;
    if (last !== undefined && last.days === historyDays && now >= last.at && now - last.at < last.reuseMs) {
      return Promise.resolve(last.fold);
    }
    this.#running ??= (async () => {
      const started = performance.now();
      const fold = await this.#fold(historyDays);
      const took = performance.now() - started;
      this.#last = {
        fold,
        at: Date.parse(fold.generatedAt),
        reuseMs: Math.min(MAX_REUSE_MS, Math.max(MIN_REUSE_MS, REUSE_FACTOR * took)),
        days: historyDays,
      };
      return fold;
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #fold(historyDays: number): Promise<ComplianceFold> {
    const now = this.#clock();
    const nowMs = now.getTime();
    const policy: SlaPolicy = await this.#compliance.policy();
    const hosts = await this.#compliance.exposure.hosts();
    const affectedOf = this.#compliance.exposure.affectedOfSegment;
    const levelCves = (h: ComplianceHost): Promise<string[]> => this.#levels.cves(h.kernelId, h.appliedLevel);

    const today = Math.floor(nowMs / DAY) * DAY;
    const ts: number[] = [];
    for (let d = historyDays; d >= 0; d--) ts.push(d === 0 ? nowMs : today - (d - 1) * DAY);
    const diffs = GROUPS.map(() => new Array<number>(ts.length + 1).fill(0));
    const seen = GROUPS.map(() => false);
    const open = new Map<string, OpenCve>();
    const s = { openWindows: 0, openBreaches: 0, closedLate: 0, upcoming: 0, closedWindows: 0, compliantHosts: 0 };
    let closedDays = 0;

    let sliceStart = performance.now();
    for (let i = 0; i < hosts.length; i += HOSTS_PER_BATCH) {
      const batch = hosts.slice(i, i + HOSTS_PER_BATCH);
      const histories = await this.#history.histories(batch.map((h) => h.id));
      for (const host of batch) {
        const history = await historyOrHostRow(host, histories.get(host.id), levelCves);
        let hostBreaches = 0;
        for (const w of hostWindows(history, affectedOf, now)) {
          const { due, end, breached } = slaOf(w, policy, nowMs);
          if (w.end === null) s.openWindows++;
          else {
            s.closedWindows++;
            // The report rounds each window's days to two decimals before averaging.
            closedDays += Math.round(((end - w.start) / DAY) * 100) / 100;
          }
          if (breached) {
            hostBreaches++;
            if (w.end === null) s.openBreaches++;
            else s.closedLate++;
          }
          if (due === null) continue;
          if (w.end === null && !breached) s.upcoming++;
          const g = GROUPS.findIndex(([, sevs]) => sevs.includes(w.info.severity));
          const diff = diffs[g];
          if (diff !== undefined) {
            seen[g] = true;
            const a = firstAtOrAfter(ts, w.start);
            const b = w.end === null ? ts.length : firstAtOrAfter(ts, w.end);
            if (b > a) {
              diff[a] = (diff[a] ?? 0) + 1;
              diff[b] = (diff[b] ?? 0) - 1;
            }
          }
          if (w.end !== null) continue;
          const dueAt = new Date(due).toISOString();
          const c = open.get(w.cve) ?? {
            id: w.cve,
            severity: w.info.severity,
            cvssScore: w.info.cvssScore,
            hosts: 0,
            breached: 0,
            nextDueAt: null,
          };
          c.hosts++;
          if (breached) c.breached++;
          if (c.nextDueAt === null || dueAt < c.nextDueAt) c.nextDueAt = dueAt;
          open.set(w.cve, c);
        }
        if (hostBreaches === 0) s.compliantHosts++;
        if (performance.now() - sliceStart >= SLICE_MS) {
          await yieldToLoop();
          sliceStart = performance.now();
        }
      }
    }

    const history: HistorySeries[] = [];
    GROUPS.forEach(([label, severities], g) => {
      if (!(seen[g] ?? false) && label === 'other') return;
      let running = 0;
      const diff = diffs[g] ?? [];
      history.push({
        label: `${label} (open)`,
        severities,
        points: ts.map((t, k) => {
          running += diff[k] ?? 0;
          return { t: new Date(t).toISOString(), v: running };
        }),
      });
    });
    return {
      generatedAt: now.toISOString(),
      summary: {
        hosts: hosts.length,
        compliantHosts: s.compliantHosts,
        openWindows: s.openWindows,
        openBreaches: s.openBreaches,
        closedLate: s.closedLate,
        upcoming: s.upcoming,
        closedWindows: s.closedWindows,
        meanDaysToRemediate: s.closedWindows === 0 ? null : Math.round((closedDays / s.closedWindows) * 100) / 100,
      },
      history,
      openCves: sortOpenCves([...open.values()]),
    };
  }
}
