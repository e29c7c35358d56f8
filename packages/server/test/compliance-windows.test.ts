// The pieces the compliance report and the dashboard's compliance fold share:
// a host's history (recorded, or one segment from its host row) and a
// window's due date and breach under the SLA policy.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SlaPolicy } from '@livegraft/protocol';
import type { ComplianceHost } from '../src/compliance/exposure.ts';
import type { HostHistory } from '../src/compliance/history.ts';
import { historyOrHostRow, hostWindows, slaOf, type RawWindow } from '../src/compliance/windows.ts';

const DAY = 86_400_000;
const host: ComplianceHost = {
  id: 'h1',
  hostname: 'web-1',
  kernelId: 'k1',
  release: '6.1.0-28-amd64',
  procVersion: 'Linux version 6.1.0-28-amd64 ... Debian 6.1.119-1',
  machine: 'x86_64',
  appliedLevel: 2,
  enrolledAt: '2026-01-01T00:00:00.000Z',
  lastCheckinAt: '2026-01-10T00:00:00.000Z',
};
const policy: SlaPolicy = { critical: 7, high: 30, medium: 90, low: null, none: null, 'not rated': null };

describe('compliance windows shared by the report and the dashboard', () => {
  test('a recorded history is used as it is', async () => {
    const recorded: HostHistory = {
      kernels: [
        {
          seq: 1,
          kernelId: 'k0',
          release: 'r0',
          procVersion: 'p0',
          firstSeen: '2025-12-01T00:00:00.000Z',
          lastSeen: '2025-12-02T00:00:00.000Z',
        },
      ],
      levels: [],
    };
    let asked = 0;
    const h = await historyOrHostRow(host, recorded, () => {
      asked++;
      return Promise.resolve([]);
    });
    assert.equal(h, recorded);
    assert.equal(asked, 0, 'the level catalogue is not read');
  });

  test('without one (or an empty one), one segment from the host row: its kernel and level since enrolment', async () => {
    for (const recorded of [undefined, { kernels: [], levels: [] }]) {
      const h = await historyOrHostRow(host, recorded, (x) =>
        Promise.resolve([`CVE-FOR-${x.kernelId}-${x.appliedLevel}`]),
      );
      assert.deepEqual(h, {
        kernels: [
          {
            seq: 1,
            kernelId: 'k1',
            release: '6.1.0-28-amd64',
            procVersion: host.procVersion,
            firstSeen: host.enrolledAt,
            lastSeen: host.lastCheckinAt,
          },
        ],
        levels: [{ seq: 1, kernelId: 'k1', level: 2, cves: ['CVE-FOR-k1-2'], from: host.enrolledAt, to: null }],
      });
    }
    const never = await historyOrHostRow({ ...host, lastCheckinAt: null }, undefined, () => Promise.resolve([]));
    assert.equal(never.kernels[0]?.lastSeen, host.enrolledAt);
  });

  test('a window is due its severity’s SLA days after it opened; open ones are judged at now', () => {
    const start = Date.parse('2026-01-01T00:00:00.000Z');
    const w = (severity: 'critical' | 'low', end: number | null): RawWindow => ({
      cve: 'CVE-2026-0001',
      info: { severity, cvssScore: null, published: null },
      kernel: hostWindowsKernel,
      start,
      end,
      closedBy: null,
      fixedByLevel: null,
    });
    assert.deepEqual(slaOf(w('critical', start + 3 * DAY), policy, start + 100 * DAY), {
      due: start + 7 * DAY,
      end: start + 3 * DAY,
      breached: false,
    });
    assert.deepEqual(slaOf(w('critical', null), policy, start + 8 * DAY), {
      due: start + 7 * DAY,
      end: start + 8 * DAY,
      breached: true,
    });
    assert.deepEqual(slaOf(w('low', null), policy, start + 800 * DAY), {
      due: null,
      end: start + 800 * DAY,
      breached: false,
    });
  });

  test('the one-segment history opens windows from the host row', async () => {
    const h = await historyOrHostRow(host, undefined, () => Promise.resolve([]));
    const windows = hostWindows(
      h,
      () => new Map([['CVE-2026-0002', { severity: 'high' as const, cvssScore: 7.5, published: null }]]),
      new Date('2026-01-20T00:00:00.000Z'),
    );
    assert.deepEqual(
      windows.map((x) => [x.cve, new Date(x.start).toISOString(), x.end]),
      [['CVE-2026-0002', host.enrolledAt, null]],
    );
  });
});

const hostWindowsKernel = {
  seq: 1,
  kernelId: 'k1',
  release: '6.1.0-28-amd64',
  procVersion: 'p',
  firstSeen: '2026-01-01T00:00:00.000Z',
  lastSeen: '2026-01-10T00:00:00.000Z',
};
