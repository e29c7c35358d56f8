import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cnaFixedReason, cveDatabase } from '../src/patch/cna-fixed.ts';

describe('already fixed according to the shipped CVE data', () => {
  it('names the stable version that fixed every CVE of the fix', async () => {
    const db = await cveDatabase();
    // CVE-2026-63824 entered 6.1 in 6.1.177.
    assert.equal(
      cnaFixedReason(db, ['CVE-2026-63824'], '6.1.187'),
      'already fixed in 6.1.187 (the CVE data names CVE-2026-63824 in 6.1.177)',
    );
    assert.equal(cnaFixedReason(db, ['CVE-2026-63824'], '6.1.177')?.startsWith('already fixed in 6.1.177'), true);
  });

  it('says nothing for an older build, an unknown CVE, or a fix without CVEs', async () => {
    const db = await cveDatabase();
    assert.equal(cnaFixedReason(db, ['CVE-2026-63824'], '6.1.176'), undefined);
    assert.equal(cnaFixedReason(db, ['CVE-2026-63824', 'CVE-1999-0001'], '6.1.187'), undefined);
    assert.equal(cnaFixedReason(db, [], '6.1.187'), undefined);
  });
});
