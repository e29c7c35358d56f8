import type { CvePage, OpenCve } from '@livegraft/protocol/dashboard';

/** Paging and ordering of the open CVEs the dashboard lists. */

/** How far back the overview's exposure chart looks. */
export const HISTORY_DAYS = 60;

/** Breached ones first, then by due date, then by score. */
export function sortOpenCves(cves: OpenCve[]): OpenCve[] {
  return cves.sort(
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
