import type { ExposureWindow, Severity } from '@livegraft/protocol';
import type { CvePage, HistorySeries, OpenCve } from '@livegraft/protocol/dashboard';

/** The numbers the dashboard shows, computed from the compliance windows on the server (pure functions). */

const DAY = 86_400_000;
/** How far back the overview's exposure chart looks. */
export const HISTORY_DAYS = 60;

const GROUPS: [string, Severity[]][] = [
  ['critical', ['critical']],
  ['high', ['high']],
  ['other', ['medium', 'low', 'none', 'not rated']],
];

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

/**
 * Windows under an SLA open at the end of each of the last `days` days (and
 * now), by severity group: a window counts at t when start <= t < end.
 * One pass over the windows whatever the number of days.
 */
export function exposureHistory(windows: readonly ExposureWindow[], now: Date, days = HISTORY_DAYS): HistorySeries[] {
  const nowMs = now.getTime();
  const today = Math.floor(nowMs / DAY) * DAY;
  const ts: number[] = [];
  for (let d = days; d >= 0; d--) ts.push(d === 0 ? nowMs : today - (d - 1) * DAY);
  const out: HistorySeries[] = [];
  for (const [label, severities] of GROUPS) {
    const diff = new Array<number>(ts.length + 1).fill(0);
    let any = false;
    for (const w of windows) {
      if (w.dueAt === null || !severities.includes(w.severity)) continue;
      const start = Date.parse(w.start);
      if (Number.isNaN(start)) continue;
      any = true;
      const end = w.end === null ? Infinity : Date.parse(w.end);
      const i = firstAtOrAfter(ts, start);
      const j = end === Infinity ? ts.length : firstAtOrAfter(ts, end);
      if (j <= i) continue;
      diff[i] = (diff[i] ?? 0) + 1;
      diff[j] = (diff[j] ?? 0) - 1;
    }
    if (!any && label === 'other') continue;
    let running = 0;
    const points = ts.map((t, k) => {
      running += diff[k] ?? 0;
      return { t: new Date(t).toISOString(), v: running };
    });
    out.push({ label: `${label} (open)`, severities, points });
  }
  return out;
}

/** CVEs with open windows under the SLA: breached ones first, then by due date, then by score. */
export function openCves(windows: readonly ExposureWindow[]): OpenCve[] {
  const byId = new Map<string, OpenCve>();
  for (const w of windows) {
    if (w.end !== null || w.dueAt === null) continue;
    const c = byId.get(w.cve) ?? {
      id: w.cve,
      severity: w.severity,
      cvssScore: w.cvssScore,
      hosts: 0,
      breached: 0,
      nextDueAt: null,
    };
    c.hosts++;
    if (w.breached) c.breached++;
    if (c.nextDueAt === null || w.dueAt < c.nextDueAt) c.nextDueAt = w.dueAt;
    byId.set(w.cve, c);
  }
  return [...byId.values()].sort(
    (a, b) =>
      b.breached - a.breached ||
      (a.nextDueAt ?? '~').localeCompare(b.nextDueAt ?? '~') ||
      (b.cvssScore ?? -1) - (a.cvssScore ?? -1) ||
      a.id.localeCompare(b.id),
  );
}

export const DEFAULT_CVE_PAGE = 50;

/** One page of the open CVEs whose id contains `q` (case-insensitive). */
export function cvePage(all: readonly OpenCve[], q: string | undefined, offset = 0, limit = DEFAULT_CVE_PAGE): CvePage {
  const needle = (q ?? '').trim().toUpperCase();
  const matching = needle === '' ? all : all.filter((c) => c.id.includes(needle));
  return {
    total: all.length,
    matching: matching.length,
    offset,
    limit,
    items: matching.slice(offset, offset + limit),
  };
}
