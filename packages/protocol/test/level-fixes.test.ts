import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from 'typebox';
import { commitText, fixLines, levelFixesOf, liveFixedCves, validator } from '../src/index.ts';

describe('level fixes', () => {
  const fixes = [
    {
      id: 'LG-1',
      title: 'KEYS: fix overflow',
      cves: ['CVE-2026-63824'],
      functions: [],
      kind: 'patch' as const,
      commits: [{ id: '0f1e2d3c4b5a69788796a5b4c3d2e1f001234567', subject: 'KEYS: fix overflow' }],
    },
    { id: 'LG-2', title: 'old', cves: ['CVE-2025-1'], functions: [] },
  ];
  const skipped = [{ id: 'LG-3', cves: ['CVE-2026-46266', 'CVE-2025-1'], reason: 'already fixed in 6.1.187' }];

  it('fills kind and commits for manifests that predate them', () => {
    const l = levelFixesOf({ fixes, skipped });
    assert.deepEqual(
      l.fixes.map((f) => [f.kind, f.commits.length]),
      [
        ['patch', 1],
        ['source', 0],
      ],
    );
    assert.deepEqual(levelFixesOf({ fixes }).skipped, []);
  });

  it('a CVE only a skipped fix names is not fixed live; one a built fix also names is', () => {
    assert.deepEqual(liveFixedCves({ cves: ['CVE-2025-1', 'CVE-2026-46266', 'CVE-2026-63824'], fixes, skipped }), [
      'CVE-2025-1',
      'CVE-2026-63824',
    ]);
  });

  it('cites commits the kernel way, short id then quoted subject', () => {
    assert.equal(commitText({ id: '0f1e2d3c4b5a69788796', subject: 's' }), '0f1e2d3c4b5a ("s")');
    assert.equal(commitText({ subject: 's' }), '("s")');
    assert.deepEqual(fixLines(levelFixesOf({ fixes, skipped }).fixes, skipped), [
      '  LG-1: KEYS: fix overflow [CVE-2026-63824]',
      '    patch from upstream 0f1e2d3c4b5a ("KEYS: fix overflow")',
      '  LG-2: old [CVE-2025-1]',
      '    hand-written C',
      '  not built: LG-3 [CVE-2026-46266, CVE-2025-1]: already fixed in 6.1.187',
    ]);
  });
});

describe('validator messages', () => {
  it('a union of literals says which values it takes, once', () => {
    const v = validator(
      Type.Object({ kind: Type.Union([Type.Literal('patch'), Type.Literal('source')]), n: Type.Integer() }),
      'thing',
    );
    assert.deepEqual(v.problems({ kind: 'binary', n: 1 }), [
      { path: '/kind', message: 'must be one of "patch", "source"' },
    ]);
  });
});
