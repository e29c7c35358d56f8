import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ComplianceReport } from '@livegraft/protocol';
import { complianceReportPdf } from '../src/compliance/report-pdf.ts';
import { affectedIds, DAY, PROC_192, startWorld, T0, type World } from './compliance-world.ts';

/** The text pdftotext (poppler) reads from a PDF, as a reader's viewer would show it. */
async function pdfText(pdf: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lg-pdf-'));
  try {
    await writeFile(join(dir, 'r.pdf'), pdf);
    const out = spawnSync('pdftotext', ['-layout', join(dir, 'r.pdf'), '-'], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    return out.stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('compliance report PDF', () => {
  let w: World;
  let report: ComplianceReport;

  before(async () => {
    const critical = [...(await affectedIds(PROC_192)).entries()].filter(([, s]) => s === 'critical').map(([id]) => id);
    w = await startWorld();
    const late = await w.enroll('late.example', PROC_192);
    const open = await w.enroll('open.example', PROC_192);
    await w.checkin(late.token, PROC_192, 0);
    await w.checkin(open.token, PROC_192, 0);
    await w.publishLevel(PROC_192, 1, critical.slice(0, 1));
    // 40 days on: past the 30-day critical SLA. One host fixes one CVE now (late), the other nothing.
    w.setNow(T0 + 40 * DAY);
    await w.checkin(late.token, PROC_192, 1);
    await w.checkin(open.token, PROC_192, 0);
    const r = await w.call('GET', '/reports/compliance');
    assert.equal(r.status, 200, r.text);
    report = r.json as ComplianceReport;
  });
  after(async () => {
    await w?.stop();
  });

  it('prints host names in any script: Cyrillic and CJK are read back from the rendered PDF', async () => {
    const names = new Map([
      ['late.example', 'сервер-1'],
      ['open.example', '数据库'],
    ]);
    const rename = <T extends { hostname: string }>(rows: T[]): T[] =>
      rows.map((x) => ({ ...x, hostname: names.get(x.hostname) ?? x.hostname }));
    const unicode: ComplianceReport = {
      ...report,
      hosts: rename(report.hosts),
      breaches: rename(report.breaches),
      upcoming: rename(report.upcoming),
      filters: { tag: 'zürich-ü' },
    };
    const pdf = await complianceReportPdf(unicode, 'test');
    assert.equal(pdf.subarray(0, 8).toString('latin1'), '%PDF-1.4');
    assert.match(pdf.toString('latin1'), /\/FontFile2/, 'the fonts are embedded');
    const text = await pdfText(pdf);
    for (const s of ['сервер-1', '数据库', 'tag zürich-ü']) assert.ok(text.includes(s), `PDF text has ${s}`);
    assert.ok(!text.includes('?????'), 'no character became "?"');
  });

  it('splits open breaches from those closed late, with one status casing and UTC times', async () => {
    const openRows = report.breaches.filter((b) => b.end === null).length;
    const lateRows = report.breaches.filter((b) => b.end !== null).length;
    assert.ok(openRows > 0 && lateRows > 0, `${openRows} open, ${lateRows} closed late`);
    const text = await pdfText(await complianceReportPdf(report, 'test'));
    assert.ok(text.includes(`Open breaches: past due, still exposed (${openRows})`), 'open breaches table');
    assert.ok(text.includes(`Closed late: fixed after the due date (${lateRows})`), 'closed late table');
    assert.ok(!/Breaches \(\d+\)/.test(text), 'no mixed table');
    const openAt = text.indexOf('Open breaches:');
    const lateAt = text.indexOf('Closed late:');
    const upcomingAt = text.indexOf(`Upcoming deadlines (${report.upcoming.length})`);
    assert.ok(openAt < lateAt && lateAt < upcomingAt);
    const openPart = text.slice(openAt, lateAt);
    const latePart = text.slice(lateAt, upcomingAt);
    assert.ok(openPart.includes('OPEN, PAST DUE') && !openPart.includes('CLOSED LATE'));
    assert.ok(latePart.includes('CLOSED LATE') && !latePart.includes('OPEN, PAST DUE'));
    const rows = text.split('\n').filter((l) => /CVE-\d{4}-\d+/.test(l) && /\d{4}-\d{2}-\d{2}/.test(l));
    assert.ok(rows.length > 0);
    for (const row of rows) assert.match(row, /(OPEN, PAST DUE|CLOSED LATE|OPEN|CLOSED)\s*$/, row);
    assert.match(text, /Generated at: \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
    assert.match(text, /Exposed since \(UTC\)/);
    assert.match(text, /Last check-in \(UTC\)/);
  });
});
