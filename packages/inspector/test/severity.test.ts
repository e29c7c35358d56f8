import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { affected } from '../src/affected.ts';
import { loadDefaultDataset } from '../src/dataset.ts';
import { exposure, exposureSummary } from '../src/exposure.ts';
import { renderInspection, renderInspectionJson } from '../src/render.ts';
import { cvss3BaseScore, severityBucket } from '../src/severity.ts';
import { dbOf } from './helpers.ts';

describe('severity', () => {
  it('buckets CVSS 3.x scores by the rating scale, and no score as not rated', () => {
    assert.equal(severityBucket(10), 'critical');
    assert.equal(severityBucket(9.0), 'critical');
    assert.equal(severityBucket(8.9), 'high');
    assert.equal(severityBucket(7.0), 'high');
    assert.equal(severityBucket(6.9), 'medium');
    assert.equal(severityBucket(4.0), 'medium');
    assert.equal(severityBucket(3.9), 'low');
    assert.equal(severityBucket(0.1), 'low');
    assert.equal(severityBucket(0), 'none');
    assert.equal(severityBucket(null), 'not rated');
    assert.equal(severityBucket(undefined), 'not rated');
  });

  it('computes base scores from vectors', () => {
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H'), 7.8);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H'), 5.5);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N'), 6.1);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H'), 10);
    assert.equal(cvss3BaseScore('CVSS:3.0/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N'), 1.6);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N'), 0);
    assert.throws(() => cvss3BaseScore('CVSS:2.0/AV:N'), { code: 'CVSS_VECTOR_INVALID' });
    assert.throws(() => cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H'), { code: 'CVSS_VECTOR_INVALID' });
    assert.throws(() => cvss3BaseScore('CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), {
      code: 'CVSS_VECTOR_INVALID',
    });
  });

  it('every scored CVE in the shipped dataset has the score its vector computes to', async () => {
    const db = await loadDefaultDataset();
    let n = 0;
    for (const e of db.entries.values()) {
      const c = e.record.cvss3;
      if (c === undefined || c === null) continue;
      n++;
      assert.equal(cvss3BaseScore(c.vector), c.score, e.record.id);
    }
    assert.ok(n > 5000);
  });

  it('findings carry their bucket and counts add up, not-rated included', () => {
    const db = dbOf({
      'CVE-2001-0001': { ranges: [[null, null]], cvss3: { vector: 'v', score: 9.8, severity: 'CRITICAL' } },
      'CVE-2001-0002': { ranges: [[null, null]], cvss3: { vector: 'v', score: 7.8, severity: 'HIGH' } },
      'CVE-2001-0003': { ranges: [[null, null]], cvss3: { vector: 'v', score: 5.5, severity: 'MEDIUM' } },
      'CVE-2001-0004': { ranges: [[null, null]], cvss3: { vector: 'v', score: 2.0, severity: 'LOW' } },
      'CVE-2001-0005': { ranges: [[null, null]], cvss3: { vector: 'v', score: 0, severity: 'NONE' } },
      'CVE-2001-0006': { ranges: [[null, null]] },
      'CVE-2001-0007': { ranges: [[null, null]], cvss3: null },
    });
    const r = affected(db, '6.1.1');
    assert.deepEqual(r.counts, { critical: 1, high: 1, medium: 1, low: 1, none: 1, 'not rated': 2, total: 7 });
    assert.deepEqual(
      r.affected.map((f) => f.severity),
      ['critical', 'high', 'medium', 'low', 'none', 'not rated', 'not rated'],
    );
    const text = renderInspection(r);
    assert.ok(text.indexOf('CRITICAL (1)') < text.indexOf('HIGH (1)'));
    assert.match(text, /NOT RATED \(2\)/);
    assert.deepEqual(JSON.parse(renderInspectionJson(r)).counts, r.counts);
  });
});

describe('exposure', () => {
  const db = dbOf({
    'CVE-2002-0001': { ranges: [['6.1.10', '6.1.20']], cvss3: { vector: 'v', score: 9.1, severity: 'CRITICAL' } },
    'CVE-2002-0002': { ranges: [['6.1.10', '6.1.20']], cvss3: { vector: 'v', score: 7.0, severity: 'HIGH' } },
    'CVE-2002-0003': [['6.1.10', '6.1.20']],
    'CVE-2002-0004': [['6.1.30', '6.1.40']],
  });

  it('subtracts exactly the applied CVEs that affect the kernel', () => {
    const e = exposure(db, '6.1.15', ['CVE-2002-0001', 'CVE-2002-0004', 'CVE-2099-0001']);
    assert.deepEqual(
      e.effective.map((f) => f.id),
      ['CVE-2002-0002', 'CVE-2002-0003'],
    );
    assert.deepEqual(e.mitigated, ['CVE-2002-0001']);
    assert.deepEqual(e.notApplicable, ['CVE-2002-0004', 'CVE-2099-0001']);
    assert.deepEqual(e.counts, { critical: 0, high: 1, medium: 0, low: 0, none: 0, 'not rated': 1, total: 2 });
    assert.equal(e.inspection.counts.total, 3);
  });

  it('the summary agrees with the full computation', () => {
    const applied = ['CVE-2002-0001', 'CVE-2002-0001', 'CVE-2002-0004'];
    const s = exposureSummary(db, '6.1.15', applied);
    assert.deepEqual(s.counts, exposure(db, '6.1.15', applied).counts);
    assert.equal(s.mitigated, 1);
  });

  it('with nothing applied, exposure is the affected list', () => {
    const e = exposure(db, '6.1.15', []);
    assert.equal(e.counts.total, 3);
    assert.deepEqual(e.mitigated, []);
  });
});
