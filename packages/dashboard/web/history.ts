import type { Series } from './charts.tsx';

/** RFC 4180 rows (quoted cells, doubled quotes); enough for the server's window CSV. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

const DAY = 86_400_000;
/** How far back the overview chart looks. */
export const HISTORY_DAYS = 60;

/**
 * Open exposure windows (with an SLA) per day, by severity: the number of
 * (host, CVE) pairs still exposed at the end of each day.
 */
export function exposureHistory(csv: string, now = Date.now(), days = HISTORY_DAYS): Series[] {
  const [header, ...rows] = parseCsv(csv);
  if (header === undefined) return [];
  const col = (name: string): number => header.indexOf(name);
  const [iStart, iEnd, iSev] = [col('exposed_since'), col('fixed_at'), col('severity')];
  const windows = rows
    .filter((r) => r.length === header.length)
    .map((r) => ({
      start: Date.parse(r[iStart] ?? ''),
      end: r[iEnd] === '' || r[iEnd] === undefined ? Infinity : Date.parse(r[iEnd] ?? ''),
      severity: r[iSev] ?? '',
    }))
    .filter((w) => !Number.isNaN(w.start));
  const groups: [string, string, (s: string) => boolean][] = [
    ['critical', 'sev-critical', (s) => s === 'critical'],
    ['high', 'sev-high', (s) => s === 'high'],
    ['other', 'sev-medium', (s) => s !== 'critical' && s !== 'high'],
  ];
  const today = Math.floor(now / DAY) * DAY;
  const out: Series[] = [];
  for (const [label, tone, match] of groups) {
    const mine = windows.filter((w) => match(w.severity));
    if (mine.length === 0 && label === 'other') continue;
    const points = [];
    for (let d = days; d >= 0; d--) {
      const t = d === 0 ? now : today - (d - 1) * DAY;
      points.push({ t, v: mine.filter((w) => w.start <= t && w.end > t).length });
    }
    out.push({ label: `${label} (open)`, tone, points });
  }
  return out;
}
