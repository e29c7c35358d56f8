import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ComplianceReport, ExposureWindow } from '@livegraft/protocol';
import { renderText } from '../src/report.ts';

function window(hostname: string, end: string | null): ExposureWindow {
  return {
    hostname,
    cve: 'CVE-2026-1000',
    severity: 'critical',
    start: '2026-08-01T10:00:00.000Z',
    dueAt: '2026-08-31T10:00:00.000Z',
    end,
    closedBy: end === null ? null : 'live-patch',
    days: 40,
    breached: true,
  } as unknown as ExposureWindow;
}

describe('livegraft report compliance (text)', () => {
  it('lists open breaches before those closed late, with the PDF statuses and UTC times', () => {
    const report = {
      generatedAt: '2026-09-10T12:34:56.000Z',
      summary: { compliantHosts: 0, hosts: 2, openBreaches: 1, closedLate: 1, upcoming: 0, openWindows: 1 },
      policy: { critical: 30, high: 30, medium: null, low: null, none: null, 'not rated': null },
      breaches: [window('late.example', '2026-09-10T10:00:00.000Z'), window('open.example', null)],
      hosts: [],
    } as unknown as ComplianceReport;
    const text = renderText(report);
    assert.match(text, /^compliance at 2026-09-10 12:34 UTC:/);
    assert.match(text, /SINCE \(UTC\)\s+DUE \(UTC\)\s+FIXED \(UTC\)\s+DAYS\s+STATUS/);
    const open = text.split('\n').findIndex((l) => l.startsWith('open.example'));
    const late = text.split('\n').findIndex((l) => l.startsWith('late.example'));
    assert.ok(open > 0 && open < late, 'open breaches first');
    assert.match(text.split('\n')[open] ?? '', /OPEN, PAST DUE\s*$/);
    assert.match(text.split('\n')[late] ?? '', /CLOSED LATE\s*$/);
  });
});
