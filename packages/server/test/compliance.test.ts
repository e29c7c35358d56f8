import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type {
  ComplianceReport,
  CveHosts,
  ExposureWindow,
  FleetExposure,
  HostExposure,
  SlaPolicy,
} from '@livegraft/protocol';
import { affectedIds, DAY, PROC_192, PROC_76, startWorld, T0, type World } from './compliance-world.ts';

function hasTool(name: string): boolean {
  return spawnSync(name, ['-v'], { stdio: 'ignore' }).error === undefined;
}

/**
 * Three hosts, one clock:
 *  - patched: 6.1.192-2, live patch level 1 (every critical CVE of its kernel) applied on day 10;
 *  - stale:   6.1.192-2, never patched;
 *  - upgraded: 6.1.76-1, reboots into 6.1.192-2 on day 39.
 * Reports are read on day 40 under a 30-day SLA for critical CVEs.
 */
describe('exposure and SLA compliance from real check-ins', () => {
  let w: World;
  let patched: string;
  let stale: string;
  let upgraded: string;
  let a192: Map<string, string>;
  let a76: Map<string, string>;
  let critical192: string[];
  let fixedByUpgrade: string;

  before(async () => {
    a192 = await affectedIds(PROC_192);
    a76 = await affectedIds(PROC_76);
    critical192 = [...a192].filter(([, s]) => s === 'critical').map(([id]) => id);
    assert.ok(critical192.length >= 2, 'the dataset has critical CVEs for Debian 6.1.192-2');
    const gone = [...a76].find(([id, s]) => s === 'critical' && !a192.has(id));
    assert.ok(gone !== undefined, 'some critical CVE of 6.1.76-1 is fixed in 6.1.192-2');
    fixedByUpgrade = gone[0];

    w = await startWorld();
    const p = await w.enroll('patched.example', PROC_192);
    const s = await w.enroll('stale.example', PROC_192);
    const u = await w.enroll('upgraded.example', PROC_76);
    patched = p.hostId;
    stale = s.hostId;
    upgraded = u.hostId;
    await w.checkin(p.token, PROC_192, 0);
    await w.checkin(s.token, PROC_192, 0);
    await w.checkin(u.token, PROC_76, 0);
    await w.publishLevel(PROC_192, 1, critical192);

    w.setNow(T0 + 10 * DAY);
    const appliedAt = new Date(T0 + 10 * DAY - 60_000).toISOString();
    await w.checkin(p.token, PROC_192, 1, {
      lastApply: { action: 'apply', fromLevel: 0, toLevel: 1, ok: true, durationMs: 900, at: appliedAt },
    });
    w.setNow(T0 + 40 * DAY);
    await w.checkin(p.token, PROC_192, 1);
    await w.checkin(s.token, PROC_192, 0);
    // Booted one day ago into the new kernel.
    await w.checkin(u.token, PROC_192, 0, { uptimeSec: 86_400 });
  });
  after(async () => {
    await w?.stop();
  });

  it('subtracts the CVEs of the applied level from the host exposure', async () => {
    const r = await w.call('GET', `/hosts/${patched}/exposure`);
    assert.equal(r.status, 200, r.text);
    const e = r.json as HostExposure;
    assert.equal(e.kernel, PROC_192);
    assert.equal(e.appliedLevel, 1);
    assert.deepEqual(e.appliedCves, [...critical192].sort());
    assert.deepEqual([...e.mitigated].sort(), [...critical192].sort());
    assert.equal(e.counts.critical, 0);
    assert.equal(e.counts.total, a192.size - critical192.length);
    assert.ok(e.effective.every((f) => !critical192.includes(f.id)));

    const st = (await w.call('GET', `/hosts/${stale}/exposure`)).json as HostExposure;
    assert.equal(st.counts.total, a192.size);
    assert.equal(st.counts.critical, critical192.length);
    assert.deepEqual(st.mitigated, []);
  });

  it('sums the fleet by severity and says which hosts a CVE leaves exposed', async () => {
    const f = (await w.call('GET', '/exposure')).json as FleetExposure;
    assert.equal(f.hosts, 3);
    assert.equal(f.counts.critical, 2 * critical192.length);
    assert.equal(f.hostsExposed.critical, 2);
    assert.equal(f.mitigated, critical192.length);

    const cve = critical192[0] ?? '';
    const c = (await w.call('GET', `/cves/${cve}`)).json as CveHosts;
    assert.equal(c.known, true);
    assert.deepEqual(
      c.fixedLive.map((h) => [h.hostname, h.level]),
      [['patched.example', 1]],
    );
    assert.deepEqual(c.exposed.map((h) => h.hostname).sort(), ['stale.example', 'upgraded.example']);

    const u = (await w.call('GET', `/cves/${fixedByUpgrade}`)).json as CveHosts;
    assert.deepEqual(
      u.fixedByUpgrade.map((h) => [h.hostname, h.at]),
      [['upgraded.example', new Date(T0 + 39 * DAY).toISOString()]],
    );
    assert.equal((await w.call('GET', '/cves/not-a-cve')).status, 400);
  });

  it('opens windows at first sight and closes them by live patch or by kernel upgrade', async () => {
    const pw = (await w.call('GET', `/hosts/${patched}/windows`)).json as ExposureWindow[];
    const c0 = pw.find((x) => x.cve === critical192[0]);
    assert.ok(c0 !== undefined);
    assert.equal(c0.start, new Date(T0).toISOString());
    assert.equal(c0.end, new Date(T0 + 10 * DAY - 60_000).toISOString(), 'closed at the apply time the agent reported');
    assert.equal(c0.closedBy, 'live-patch');
    assert.equal(c0.fixedByLevel, 1);
    assert.equal(c0.breached, false);
    assert.equal(c0.dueAt, new Date(T0 + 30 * DAY).toISOString());

    const uw = (await w.call('GET', `/hosts/${upgraded}/windows`)).json as ExposureWindow[];
    const g = uw.find((x) => x.cve === fixedByUpgrade);
    assert.ok(g !== undefined);
    assert.equal(g.closedBy, 'kernel-upgrade');
    assert.equal(g.end, new Date(T0 + 39 * DAY).toISOString());
    assert.equal(g.days, 39);
    assert.equal(g.breached, true, '39 days is past a 30-day SLA');
    // A CVE affecting both kernels stays open across the reboot.
    const both = critical192.find((id) => a76.has(id));
    if (both !== undefined) {
      const o = uw.find((x) => x.cve === both);
      assert.equal(o?.end, null);
      assert.equal(o?.release, '6.1.0-18-amd64', 'the window keeps the kernel it opened on');
    }
  });

  it('reports breaches, upcoming deadlines and per-host compliance under the policy set through the API', async () => {
    const policy: SlaPolicy = { critical: 30, high: null, medium: null, low: null, none: null, 'not rated': 60 };
    const put = await w.call('PUT', '/compliance/policy', { json: policy });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual((await w.call('GET', '/compliance/policy')).json, policy);
    assert.equal((await w.call('PUT', '/compliance/policy', { json: { ...policy, high: 0 } })).status, 400);

    const r = await w.call('GET', '/reports/compliance');
    assert.equal(r.status, 200, r.text);
    const rep = r.json as ComplianceReport;
    assert.deepEqual(rep.policy, policy);
    assert.equal(rep.summary.hosts, 3);
    const openBreach = rep.breaches.filter((b) => b.end === null);
    // Stale: every critical CVE open for 40 days. Upgraded: the critical CVEs of 6.1.192-2 it still has.
    const staleBreaches = openBreach.filter((b) => b.hostname === 'stale.example').map((b) => b.cve);
    assert.deepEqual(staleBreaches.sort(), [...critical192].sort());
    assert.ok(
      rep.breaches.some((b) => b.hostname === 'upgraded.example' && b.cve === fixedByUpgrade && b.end !== null),
    );
    assert.equal(rep.summary.openBreaches, openBreach.length);
    assert.ok(rep.breaches.every((b) => b.severity === 'critical' || b.severity === 'not rated'));
    // Not-rated CVEs have 60 days: open for 40, due on day 60.
    assert.ok(rep.upcoming.length > 0);
    assert.ok(rep.upcoming.every((u) => u.severity === 'not rated' && u.end === null && !u.breached));
    const staleUpcoming = rep.upcoming.filter((u) => u.hostname === 'stale.example');
    assert.ok(staleUpcoming.length > 0);
    assert.ok(staleUpcoming.every((u) => u.dueAt === new Date(T0 + 60 * DAY).toISOString()));
    // Opened when the host booted the new kernel on day 39.
    assert.ok(
      rep.upcoming.some((u) => u.hostname === 'upgraded.example' && u.dueAt === new Date(T0 + 99 * DAY).toISOString()),
    );
    const rows = new Map(rep.hosts.map((h) => [h.hostname, h]));
    assert.equal(rows.get('patched.example')?.openBreaches, 0);
    assert.equal(rows.get('patched.example')?.closedLate, 0);
    assert.equal(rows.get('patched.example')?.compliant, true);
    assert.equal(rows.get('stale.example')?.compliant, false);
    assert.equal(rows.get('stale.example')?.openBreaches, critical192.length);
    assert.equal(rep.summary.compliantHosts, 1);
  });

  it('writes the CSV form with every window under an SLA', async () => {
    const r = await w.call('GET', '/reports/compliance?format=csv');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/csv/);
    assert.match(
      r.headers.get('content-disposition') ?? '',
      /attachment; filename="livegraft-compliance-2026-10-11\.csv"/,
    );
    const lines = r.text.trimEnd().split('\r\n');
    assert.equal(
      lines[0],
      'host_id,hostname,cve,severity,cvss,kernel_release,kernel_id,exposed_since,fixed_at,fixed_by,fixed_by_level,due_at,days,status',
    );
    const staleLine = lines.find((l) => l.includes(',stale.example,') && l.includes(`,${critical192[0]},`));
    assert.ok(staleLine?.endsWith(',40,open-past-due'), staleLine);
    const fixedLine = lines.find((l) => l.includes(',patched.example,') && l.includes(`,${critical192[0]},`));
    assert.ok(fixedLine?.includes(',live-patch,1,'), fixedLine);
    assert.ok(fixedLine?.endsWith(',closed'), fixedLine);
  });

  it('writes a PDF with a valid cross-reference table that names hosts and CVEs', async (t) => {
    const r = await w.call('GET', '/reports/compliance?format=pdf');
    if (process.env['LIVEGRAFT_KEEP_PDF'] !== undefined) await writeFile(process.env['LIVEGRAFT_KEEP_PDF'], r.bytes);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/pdf');
    const pdf = r.bytes;
    assert.equal(pdf.subarray(0, 8).toString('latin1'), '%PDF-1.4');
    const text = pdf.toString('latin1');
    const startxref = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(text)?.[1]);
    assert.equal(text.slice(startxref, startxref + 5), 'xref\n');
    const [, count] = /^xref\n0 (\d+)\n/.exec(text.slice(startxref)) ?? [];
    const entries = text
      .slice(startxref)
      .split('\n')
      .slice(2, 2 + Number(count));
    entries.slice(1).forEach((e, i) => {
      assert.match(e, /^\d{10} 00000 n $/);
      const off = Number(e.slice(0, 10));
      assert.equal(text.slice(off, off + `${i + 1} 0 obj`.length), `${i + 1} 0 obj`, `object ${i + 1} offset`);
    });

    if (!hasTool('pdftotext')) {
      t.diagnostic('pdftotext not installed (apt-get install poppler-utils): skipping the rendered-text check');
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'lg-pdf-'));
    try {
      await writeFile(join(dir, 'r.pdf'), pdf);
      const out = spawnSync('pdftotext', ['-layout', join(dir, 'r.pdf'), '-'], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      for (const s of [
        'Livegraft kernel vulnerability compliance report',
        'patched.example',
        'stale.example',
        'upgraded.example',
        critical192[0] ?? '',
        fixedByUpgrade,
        'OPEN, PAST DUE',
        'critical: 30 days',
      ]) {
        assert.ok(out.stdout.includes(s), `PDF text has ${s}`);
      }
      assert.match(out.stdout, /page 1 of \d+/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps compliance views away from host tokens and anonymous callers', async () => {
    const enrolled = await w.enroll('nosy.example', PROC_192);
    assert.equal((await w.call('GET', `/hosts/${patched}/exposure`, { token: enrolled.token })).status, 403);
    assert.equal((await w.call('GET', '/reports/compliance', { token: null })).status, 401);
    assert.equal((await w.call('GET', '/hosts/nope/exposure')).status, 404);
  });
});
