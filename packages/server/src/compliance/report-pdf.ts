import type { ComplianceReport, CoverageCell, CoverageReport, ExposureWindow, SlaPolicy } from '@livegraft/protocol';
import { PdfWriter, type PdfFontFiles, type TextStyle } from './pdf.ts';
import { userspacePdfRows } from '../userspace/report.ts';
import { datasetLines } from './dataset-text.ts';

/** A4 landscape: wide enough for the window tables. */
const PAGE_WIDTH = 842;
const PAGE_HEIGHT = 595;
const MARGIN = 40;
const BODY: TextStyle = { size: 8.5 };
const BODY_BOLD: TextStyle = { size: 8.5, bold: true };
const ROW_HEIGHT = 12;
/** Rows per table in the PDF; the CSV and JSON forms carry all of them. */
export const MAX_PDF_TABLE_ROWS = 5_000;

interface Column {
  title: string;
  /** Share of the usable width. */
  weight: number;
}

/** Flowing layout on top of PdfWriter: a cursor that starts new pages as needed. */
class Layout {
  readonly pdf: PdfWriter;
  page = -1;
  y = 0;
  readonly #footer: string;

  constructor(pdf: PdfWriter, footer: string) {
    this.pdf = pdf;
    this.#footer = footer;
    this.newPage();
  }

  get usable(): number {
    return this.pdf.width - 2 * MARGIN;
  }

  newPage(): void {
    this.page = this.pdf.addPage();
    this.y = this.pdf.height - MARGIN;
  }

  /** Starts a new page unless `height` more points fit above the footer. */
  need(height: number): void {
    if (this.y - height < MARGIN + 20) this.newPage();
  }

  line(text: string, style: TextStyle = BODY, gapAfter = 3): void {
    this.need(style.size + gapAfter);
    this.y -= style.size;
    this.pdf.text(this.page, MARGIN, this.y, this.pdf.fitText(text, this.usable, style), style);
    this.y -= gapAfter;
  }

  heading(text: string): void {
    this.need(40);
    this.y -= 10;
    this.line(text, { size: 12, bold: true }, 6);
  }

  table(columns: Column[], rows: string[][], empty: string): void {
    if (rows.length === 0) {
      this.line(empty);
      return;
    }
    const total = columns.reduce((s, c) => s + c.weight, 0);
    const widths = columns.map((c) => (c.weight / total) * this.usable);
    const drawRow = (cells: string[], style: TextStyle, shade: boolean): void => {
      this.need(ROW_HEIGHT);
      const top = this.y;
      if (shade) this.pdf.box(this.page, MARGIN, top - ROW_HEIGHT, this.usable, ROW_HEIGHT, 0.9);
      let x = MARGIN;
      cells.forEach((cell, i) => {
        const w = widths[i] ?? 0;
        this.pdf.text(this.page, x + 2, top - ROW_HEIGHT + 3.2, this.pdf.fitText(cell, w - 4, style), style);
        x += w;
      });
      this.y -= ROW_HEIGHT;
      this.pdf.line(this.page, MARGIN, this.y, MARGIN + this.usable, this.y, shade ? 0.8 : 0.25);
    };
    const header = (): void =>
      drawRow(
        columns.map((c) => c.title),
        BODY_BOLD,
        true,
      );
    this.need(ROW_HEIGHT * 3);
    header();
    const shown = rows.slice(0, MAX_PDF_TABLE_ROWS);
    for (const r of shown) {
      const before = this.page;
      this.need(ROW_HEIGHT);
      if (this.page !== before) header();
      drawRow(r, BODY, false);
    }
    if (rows.length > shown.length) {
      this.line(`... ${rows.length - shown.length} more rows; the CSV report has all of them.`);
    }
    this.y -= 4;
  }

  footers(): void {
    const n = this.pdf.pageCount;
    for (let p = 0; p < n; p++) {
      this.pdf.text(p, MARGIN, MARGIN - 14, this.pdf.fitText(this.#footer, this.usable - 80, { size: 7 }), { size: 7 });
      this.pdf.text(p, this.pdf.width - MARGIN - 60, MARGIN - 14, `page ${p + 1} of ${n}`, { size: 7 });
    }
  }
}

export function policyText(policy: SlaPolicy): string {
  const parts = (Object.entries(policy) as [string, number | null][]).map(
    ([sev, days]) => `${sev}: ${days === null ? 'no SLA' : `${days} days`}`,
  );
  return parts.join(', ');
}

const day = (iso: string | null): string => (iso === null ? '-' : iso.slice(0, 10));
/** A time to the minute, in UTC, said so. */
export const utc = (iso: string | null): string =>
  iso === null ? '-' : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;

/** One casing for every status (the CSV's machine form is open-past-due, closed-late, open, closed). */
export function windowStatus(w: ExposureWindow): string {
  if (w.end === null) return w.breached ? 'OPEN, PAST DUE' : 'OPEN';
  return w.breached ? 'CLOSED LATE' : 'CLOSED';
}

function windowRow(w: ExposureWindow): string[] {
  const status = windowStatus(w);
  const fixed =
    w.end === null
      ? '-'
      : `${day(w.end)} ${w.closedBy === 'live-patch' ? `live patch L${w.fixedByLevel ?? '?'}` : 'kernel upgrade'}`;
  return [
    w.hostname,
    w.cve,
    w.severity,
    w.cvssScore === null ? '-' : w.cvssScore.toFixed(1),
    w.release,
    day(w.start),
    day(w.dueAt),
    fixed,
    w.days.toFixed(1),
    status,
  ];
}

const WINDOW_COLUMNS: Column[] = [
  { title: 'Host', weight: 12 },
  { title: 'CVE', weight: 10 },
  { title: 'Severity', weight: 6.5 },
  { title: 'CVSS', weight: 4 },
  { title: 'Kernel', weight: 11.5 },
  { title: 'Exposed since (UTC)', weight: 13.5 },
  { title: 'Due (UTC)', weight: 7.5 },
  { title: 'Fixed (UTC)', weight: 14 },
  { title: 'Days', weight: 4.5 },
  { title: 'Status', weight: 11.5 },
];

/** The compliance report as a PDF an auditor can read. */
export async function complianceReportPdf(
  report: ComplianceReport,
  producer: string,
  fonts?: PdfFontFiles,
): Promise<Buffer> {
  const title = 'Livegraft kernel vulnerability compliance report';
  const pdf = new PdfWriter({
    width: PAGE_WIDTH,
    height: PAGE_HEIGHT,
    title,
    createdAt: new Date(report.generatedAt),
    producer,
    ...(fonts === undefined ? {} : { fonts }),
  });
  const s = report.summary;
  const filters = [
    report.filters.feed === undefined ? undefined : `feed ${report.filters.feed}`,
    report.filters.tag === undefined ? undefined : `tag ${report.filters.tag}`,
  ].filter((x) => x !== undefined);
  const L = new Layout(pdf, `${title}, generated ${utc(report.generatedAt)}`);
  L.line(title, { size: 18, bold: true }, 10);
  L.line(`Generated at: ${utc(report.generatedAt)} (all times in this report are UTC)`);
  L.line(`Scope: ${filters.length === 0 ? 'all enrolled hosts' : filters.join(', ')}`);
  for (const t of datasetLines(report.dataset)) L.line(t);
  L.line(`SLA policy (days from exposure start to remediation): ${policyText(report.policy)}`);
  L.line(
    'Exposure starts at the later of the CVE publication and the host first running the affected kernel; it ends when a live patch fixing the CVE is applied or the host boots an unaffected kernel.',
  );

  L.heading('Summary');
  L.table(
    [
      { title: 'Measure', weight: 3 },
      { title: 'Value', weight: 1 },
    ],
    [
      ['Hosts', String(s.hosts)],
      ['Compliant hosts (no breach)', String(s.compliantHosts)],
      ['Open exposure windows', String(s.openWindows)],
      ['Open breaches (past due)', String(s.openBreaches)],
      ['Windows closed late', String(s.closedLate)],
      ['Upcoming deadlines (open, within SLA)', String(s.upcoming)],
      ['Closed windows', String(s.closedWindows)],
      [
        'Mean days to remediate (closed windows)',
        s.meanDaysToRemediate === null ? '-' : s.meanDaysToRemediate.toFixed(1),
      ],
    ],
    '',
  );

  // Open and closed-late breaches are different things to act on: one table each.
  const openBreaches = report.breaches.filter((w) => w.end === null);
  const closedLate = report.breaches.filter((w) => w.end !== null);
  L.heading(`Open breaches: past due, still exposed (${openBreaches.length})`);
  L.table(WINDOW_COLUMNS, openBreaches.map(windowRow), 'No open exposure is past its due date.');

  L.heading(`Closed late: fixed after the due date (${closedLate.length})`);
  L.table(WINDOW_COLUMNS, closedLate.map(windowRow), 'No window was closed late.');

  L.heading(`Upcoming deadlines (${report.upcoming.length})`);
  L.table(WINDOW_COLUMNS, report.upcoming.map(windowRow), 'No open exposure within an SLA.');

  L.heading(`Hosts (${report.hosts.length})`);
  L.table(
    [
      { title: 'Host', weight: 16 },
      { title: 'Kernel', weight: 14 },
      { title: 'Level', weight: 5 },
      { title: 'Last check-in (UTC)', weight: 12 },
      { title: 'Open', weight: 6 },
      { title: 'Open breaches', weight: 9 },
      { title: 'Closed late', weight: 8 },
      { title: 'Next due (UTC)', weight: 9 },
      { title: 'Compliant', weight: 7 },
    ],
    report.hosts.map((h) => [
      h.hostname,
      h.release,
      String(h.appliedLevel),
      h.lastCheckinAt === null ? 'never' : utc(h.lastCheckinAt),
      String(h.openWindows),
      String(h.openBreaches),
      String(h.closedLate),
      day(h.nextDueAt),
      h.compliant ? 'yes' : 'NO',
    ]),
    'No hosts.',
  );
  if (report.userspace !== undefined && report.userspace.length > 0) {
    L.heading(`User-space libraries (${report.userspace.length})`);
    L.line(
      'Per host and library build: the CVEs live-patched in every process that maps it, and those still open (a published level not applied, or processes still running the old code). Processes: patched/unpatched/refused.',
    );
    L.table(
      [
        { title: 'Host', weight: 14 },
        { title: 'Library', weight: 18 },
        { title: 'Level', weight: 5 },
        { title: 'Fixed CVEs', weight: 22 },
        { title: 'Open CVEs', weight: 22 },
        { title: 'Processes', weight: 9 },
      ],
      userspacePdfRows(report.userspace),
      '',
    );
  }
  if (report.coverage !== undefined) coverageSection(L, report.coverage);
  L.footers();
  return await pdf.toBuffer();
}

/** Kernel builds shown side by side in the PDF's coverage table; the JSON and CSV have them all. */
const PDF_COVERAGE_KERNELS = 6;
/** Rows in the PDF's coverage table. */
const PDF_COVERAGE_ROWS = 400;

function coverageText(c: CoverageCell): string {
  if (c.state === 'applied') return `applied ${c.hostsApplied}/${c.hosts}`;
  if (c.state === 'fixed-in-build') return c.version === null ? 'fixed in build' : `fixed in ${c.version}`;
  if (c.level !== null && (c.state === 'released' || c.state === 'validated' || c.state === 'built')) {
    return `${c.state} L${c.level}`;
  }
  return c.state;
}

/** CVE x kernel build, for the CVEs not fixed or absent on every build. */
function coverageSection(L: Layout, cov: CoverageReport): void {
  const open = cov.rows.filter((r) => r.cells.some((c) => c.state !== 'not-affected' && c.state !== 'fixed-in-build'));
  const kernels = cov.kernels.slice(0, PDF_COVERAGE_KERNELS);
  L.heading(`Coverage: CVE x kernel build (${open.length} of ${cov.rows.length} CVEs open on some build)`);
  L.line(
    'For each CVE affecting a kernel build of the fleet, or named by a submitted fix: applied on N of M hosts, released, validated, built, queued, failed, not live-patchable, fixed in the build, not affected, or no fix.',
  );
  if (cov.kernels.length > kernels.length) {
    L.line(
      `The first ${kernels.length} of ${cov.kernels.length} kernel builds are shown; the JSON and CSV reports have all.`,
    );
  }
  if (open.length > PDF_COVERAGE_ROWS) {
    L.line(`The first ${PDF_COVERAGE_ROWS} of ${open.length} CVEs are shown; the JSON and CSV reports have all.`);
  }
  L.table(
    [
      { title: 'CVE', weight: 11 },
      { title: 'CVSS', weight: 4.5 },
      ...kernels.map((k) => ({ title: `${k.release} (${k.hosts} hosts)`, weight: 12 })),
    ],
    open
      .slice(0, PDF_COVERAGE_ROWS)
      .map((r) => [
        r.cve,
        r.cvss === null ? '-' : r.cvss.toFixed(1),
        ...r.cells.slice(0, kernels.length).map(coverageText),
      ]),
    'Every CVE is fixed in the build or does not reach it.',
  );
}
