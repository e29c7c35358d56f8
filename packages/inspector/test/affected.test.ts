import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { affected, affectingPair } from '../src/affected.ts';
import { loadDefaultDataset } from '../src/dataset.ts';
import { parseVersion } from '../src/version.ts';
import { dbOf } from './helpers.ts';

/** Ids affecting upstream version v, through the public path (branch index). */
function ids(db: ReturnType<typeof dbOf>, v: string): string[] {
  return affected(db, v)
    .affected.map((f) => f.id)
    .sort();
}

describe('the affected rule on hand-made ranges', () => {
  const db = dbOf({
    'CVE-2000-0001': [['6.1.116', '6.1.124']], // backport into 6.1, fixed in 6.1
    'CVE-2000-0002': [['6.5', '6.9']], // mainline only
    'CVE-2000-0003': [
      ['6.5', '6.6.26'],
      ['6.5', '6.9'],
    ], // 6.6 has its own fix, 6.8 does not
    'CVE-2000-0004': [[null, '5.10.100']], // since the beginning, fixed in 5.10 only
    'CVE-2000-0005': [['6.12', null]], // never fixed
    'CVE-2000-0006': [['5.4.285', null]], // backported into 5.4, never fixed there
    'CVE-2000-0007': [[null, null]],
    'CVE-2000-0008': [
      ['2.6.19', '2.6.32.60'],
      ['2.6.19', '3.0'],
    ],
  });

  it('a stable introduction counts only in its own branch, from that sublevel', () => {
    assert.ok(ids(db, '6.1.116').includes('CVE-2000-0001'));
    assert.ok(ids(db, '6.1.123').includes('CVE-2000-0001'));
    assert.ok(!ids(db, '6.1.115').includes('CVE-2000-0001'));
    assert.ok(!ids(db, '6.6.10').includes('CVE-2000-0001'), 'i is stable in another branch');
    assert.ok(ids(db, '5.4.285').includes('CVE-2000-0006'));
    assert.ok(!ids(db, '5.4.284').includes('CVE-2000-0006'));
    assert.ok(!ids(db, '5.10.300').includes('CVE-2000-0006'), 'introduced in another branch');
  });

  it('a stable fix ends the range in its branch only; V equal to the fix is not affected', () => {
    assert.ok(!ids(db, '6.1.124').includes('CVE-2000-0001'));
    assert.ok(ids(db, '6.6.25').includes('CVE-2000-0003'));
    assert.ok(!ids(db, '6.6.26').includes('CVE-2000-0003'));
  });

  it('a mainline fix applies to branches without a stable fix and V < f', () => {
    assert.ok(ids(db, '6.6.10').includes('CVE-2000-0002'), '6.6 has no stable fix for 0002');
    assert.ok(ids(db, '6.8.3').includes('CVE-2000-0003'), '6.8 has no stable fix for 0003');
    assert.ok(
      !ids(db, '6.6.200').includes('CVE-2000-0003'),
      '6.6 has a stable fix, the mainline clause does not apply',
    );
    assert.ok(!ids(db, '6.9').includes('CVE-2000-0002'), 'the mainline fix release itself');
    assert.ok(!ids(db, '6.9.3').includes('CVE-2000-0002'));
    assert.ok(!ids(db, '6.4.20').includes('CVE-2000-0002'), 'before the mainline introduction');
    assert.ok(ids(db, '6.5').includes('CVE-2000-0002'), 'the introducing mainline release');
  });

  it('null first means since the beginning; a stable fix elsewhere does not cover other branches', () => {
    assert.ok(ids(db, '5.10.99').includes('CVE-2000-0004'));
    assert.ok(ids(db, '3.16.1').includes('CVE-2000-0007'));
    assert.ok(!ids(db, '5.10.100').includes('CVE-2000-0004'));
    assert.ok(!ids(db, '5.15.1').includes('CVE-2000-0004'), 'f is stable in another branch');
  });

  it('null second means not fixed: every later version is affected', () => {
    assert.ok(ids(db, '6.12.3').includes('CVE-2000-0005'));
    assert.ok(ids(db, '7.0.1').includes('CVE-2000-0005'));
    assert.ok(!ids(db, '6.11.9').includes('CVE-2000-0005'));
  });

  it('handles 2.6-era versions', () => {
    assert.ok(ids(db, '2.6.32.59').includes('CVE-2000-0008'));
    assert.ok(!ids(db, '2.6.32.60').includes('CVE-2000-0008'));
    assert.ok(ids(db, '2.6.39.4').includes('CVE-2000-0008'), 'no 2.6.39 stable fix, mainline fix 3.0 is later');
    assert.ok(!ids(db, '2.6.18').includes('CVE-2000-0008'));
    assert.ok(!ids(db, '3.0.1').includes('CVE-2000-0008'));
  });

  it('reports the fixed-in version for the branch, else the mainline fix, else null, and why', () => {
    const r = affected(db, '6.8.3');
    const f3 = r.affected.find((f) => f.id === 'CVE-2000-0003');
    assert.deepEqual(f3?.fixedIn, { version: '6.9', kind: 'mainline' });
    assert.match(f3?.why ?? '', /introduced in mainline 6\.5; fixed in mainline 6\.9/);
    const f1 = affected(db, '6.1.120').affected.find((f) => f.id === 'CVE-2000-0001');
    assert.deepEqual(f1?.fixedIn, { version: '6.1.124', kind: 'stable' });
    assert.match(f1?.why ?? '', /by a backport/);
    const f5 = affected(db, '6.12.3').affected.find((f) => f.id === 'CVE-2000-0005');
    assert.equal(f5?.fixedIn, null);
  });
});

describe('the shipped dataset', async () => {
  const db = await loadDefaultDataset();

  it('CVE-2025-21629 (fixed in 6.1.124, backported in 6.1.116) is affected at 6.1.120 only', () => {
    const has = (v: string): boolean => affected(db, v).affected.some((f) => f.id === 'CVE-2025-21629');
    assert.equal(has('6.1.120'), true);
    assert.equal(has('6.1.124'), false);
    assert.equal(has('6.1.115'), false);
    assert.equal(has('6.12.8'), true);
    assert.equal(has('6.13'), false);
    const f = affected(db, '6.1.120').affected.find((x) => x.id === 'CVE-2025-21629');
    assert.deepEqual(f?.fixedIn, { version: '6.1.124', kind: 'stable' });
    assert.equal(f?.severity, 'high');
    assert.equal(f?.cvssScore, 8.2);
  });

  it('the branch index agrees with the literal rule for every CVE at many versions', () => {
    const versions = ['4.19.300', '5.4.1', '5.4.290', '5.10.229', '5.15.171', '6.1', '6.1.56', '6.1.140', '6.1.192'];
    versions.push('6.6.60', '6.6.100', '6.8', '6.11.7', '6.12.9', '6.12.117', '6.13', '7.0.3', '2.6.32.71', '3.16.66');
    const entries = db.ordered();
    for (const v of versions) {
      const pv = parseVersion(v);
      const expected = entries.filter((e) => affectingPair(e, pv) >= 0).map((e) => e.record.id);
      const got = affected(db, v).affected.map((f) => f.id);
      assert.deepEqual(got.sort(), expected.sort(), `at ${v}`);
      assert.ok(expected.length > 0, `something affects ${v}`);
    }
  });

  it('records where it came from and carries the rejected ids', () => {
    assert.equal(db.sources[0]?.commit, 'd9dda40c8f21126303839427ebc8652167302488');
    assert.equal(db.sources[0]?.commitDate, '2026-08-21');
    assert.equal(db.entries.size, 14626);
    assert.ok(db.rejected.has('CVE-2019-25161'));
  });
});
