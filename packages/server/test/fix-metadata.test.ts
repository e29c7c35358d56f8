import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Compile } from 'typebox/compile';
import type { HostExposure, HostRecord, PatchManifest, PatchRecord } from '@livegraft/protocol';
import { buildPatch } from './helpers.ts';
import { identity, startWorld, type World } from './compliance-world.ts';

/** Debian's 6.1.0-50 kernel: upstream 6.1.176, before the 6.1.177 fix of CVE-2026-63824. */
const PROC_50 =
  'Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-06-10)';
const CVE = 'CVE-2026-63824';
/** Fixed upstream in 6.1.178; here its fix is one the build left out. */
const SKIPPED_CVE = 'CVE-2026-63810';
const COMMIT = {
  id: '0f1e2d3c4b5a69788796a5b4c3d2e1f001234567',
  subject: 'KEYS: fix overflow in keyctl_pkey_params_get_2()',
};

function withUpstreamFix(m: PatchManifest): void {
  m.fixes = [
    {
      id: 'LG-CVE-2026-63824',
      title: COMMIT.subject,
      cves: [CVE],
      functions: [{ name: 'keyctl_pkey_params_get_2', object: 'vmlinux', sympos: 0 }],
      kind: 'patch',
      commits: [COMMIT],
    },
  ];
  m.skipped = [
    { id: 'LG-CVE-2026-63810', cves: [SKIPPED_CVE], reason: 'the change is __init code only: no function to redirect' },
  ];
  // Listed by mistake: a fix that is not in the module must not count as fixed live.
  m.cves = [CVE, SKIPPED_CVE];
}

interface Statement {
  vulnerability: { name: string };
  status: string;
  status_notes?: string;
  action_statement?: string;
  justification?: string;
}

describe('fix metadata (kind, upstream commits, skipped fixes) through the server', () => {
  let w: World;
  let host: { hostId: string; token: string };

  before(async () => {
    w = await startWorld();
    host = await w.enroll('keys-1.example', PROC_50);
  });
  after(async () => {
    await w?.stop();
  });

  it('a real CVE of the data is open on 6.1.0-50 without the patch', async () => {
    await w.checkin(host.token, PROC_50, 0);
    const e = (await w.call('GET', `/hosts/${host.hostId}/exposure`)).json as HostExposure;
    const open = e.effective.find((c) => c.id === CVE);
    assert.ok(open, `${CVE} should be open on 6.1.176`);
    assert.deepEqual(open.fixedIn, { version: '6.1.177', kind: 'stable' });
    assert.ok(e.effective.some((c) => c.id === SKIPPED_CVE));
    assert.deepEqual(e.mitigated, []);
  });

  it('and fixed live once the host runs the level carrying it; a skipped fix stays open', async () => {
    const before = (await w.call('GET', `/hosts/${host.hostId}/exposure`)).json as HostExposure;
    await w.publishLevel(PROC_50, 1, [CVE], withUpstreamFix);
    await w.checkin(host.token, PROC_50, 1);
    const e = (await w.call('GET', `/hosts/${host.hostId}/exposure`)).json as HostExposure;
    assert.equal(
      e.effective.some((c) => c.id === CVE),
      false,
    );
    assert.deepEqual(e.mitigated, [CVE]);
    assert.deepEqual(e.appliedCves, [CVE]);
    assert.ok(
      e.effective.some((c) => c.id === SKIPPED_CVE),
      'a fix left out of the module fixes nothing',
    );
    assert.equal(e.counts.total, before.counts.total - 1);
    assert.equal(e.counts.high, before.counts.high - 1);
  });

  it('levels and host detail carry each fix with its kind and commits, and the skipped fixes', async () => {
    const kernelId = identity(PROC_50).id;
    const list = (await w.call('GET', `/patches?kernelId=${kernelId}`)).json as PatchRecord[];
    assert.equal(list.length, 1);
    const rec = list[0] as PatchRecord;
    assert.deepEqual(rec.fixIds, ['LG-CVE-2026-63824']);
    assert.deepEqual(
      rec.fixes.map((f) => [f.id, f.kind, f.commits]),
      [['LG-CVE-2026-63824', 'patch', [COMMIT]]],
    );
    assert.deepEqual(rec.skipped, [
      {
        id: 'LG-CVE-2026-63810',
        cves: [SKIPPED_CVE],
        reason: 'the change is __init code only: no function to redirect',
      },
    ]);

    const h = (await w.call('GET', `/hosts/${host.hostId}`)).json as HostRecord;
    assert.equal(h.applied?.level, 1);
    assert.deepEqual(h.applied?.cves, [CVE]);
    assert.deepEqual(h.applied?.fixes[0]?.commits, [COMMIT]);
    assert.equal(h.applied?.fixes[0]?.kind, 'patch');
    assert.equal(h.applied?.skipped[0]?.id, 'LG-CVE-2026-63810');
    // The list stays lean: the fixes come with one host's detail only.
    const hosts = (await w.call('GET', '/hosts')).json as HostRecord[];
    assert.equal(hosts[0]?.applied, undefined);
  });

  it('an older manifest without kind or commits reads as hand-written C', async () => {
    const other = PROC_50.replace('6.1.176-1 (2026-06-10)', '6.1.176-1 (2026-06-11)');
    await w.publishLevel(other, 1, [CVE]);
    const list = (await w.call('GET', `/patches?kernelId=${identity(other).id}`)).json as PatchRecord[];
    assert.deepEqual(
      list[0]?.fixes.map((f) => [f.kind, f.commits]),
      [['source', []]],
    );
    assert.deepEqual(list[0]?.skipped, []);
  });

  it('OpenVEX: fixed names the fix and its upstream commit in status_notes; a skipped fix is no statement of ours', async () => {
    const check = Compile(
      JSON.parse(await readFile(new URL('./fixtures/openvex_json_schema.json', import.meta.url), 'utf8')) as Record<
        string,
        unknown
      >,
    );
    const doc = (await w.call('GET', `/hosts/${host.hostId}/vex`)).json as { statements: Statement[] };
    assert.equal(check.Check(doc), true, JSON.stringify([...check.Errors(doc)].slice(0, 3)));
    const fixed = doc.statements.filter((s) => s.vulnerability.name === CVE);
    assert.equal(fixed.length, 1);
    assert.equal(fixed[0]?.status, 'fixed');
    assert.match(
      fixed[0]?.status_notes ?? '',
      /live patch level 1 \(module livegraft_[0-9a-f]{12}_l1, fix LG-CVE-2026-63824\)\. Fix LG-CVE-2026-63824 carries upstream commit 0f1e2d3c4b5a \("KEYS: fix overflow in keyctl_pkey_params_get_2\(\)"\)\./,
    );
    // Left out of the module, the skipped fix's CVE is still open on this kernel: affected, with an action.
    const skipped = doc.statements.filter((s) => s.vulnerability.name === SKIPPED_CVE);
    assert.deepEqual(
      skipped.map((s) => s.status),
      ['affected'],
    );
    assert.ok((skipped[0]?.action_statement ?? '').length > 0);
  });

  it('/openapi.json describes the level and host answers, fixes and skipped fixes included', async () => {
    const doc = (await (await fetch(`${w.server.url}/openapi.json`)).json()) as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
      >;
    };
    const schemaOf = (path: string, method: string): string =>
      JSON.stringify(doc.paths[path]?.[method]?.responses['200']?.content?.['application/json']?.schema ?? null);
    const patches = schemaOf('/api/v1/patches', 'get');
    for (const word of ['"fixes"', '"commits"', '"kind"', '"skipped"', '"reason"'])
      assert.ok(patches.includes(word), word);
    assert.ok(schemaOf('/api/v1/hosts/{id}', 'get').includes('"applied"'));
    assert.ok(schemaOf('/api/v1/kernels/{kernelId}/latest', 'get').includes('"skipped"'));
  });

  describe('publishing validates the new manifest fields', () => {
    async function publish(tweak: (m: PatchManifest) => void): Promise<{ status: number; json: unknown }> {
      const k = identity(PROC_50);
      const p = buildPatch({ kernelId: k.id, level: 7, salt: String(Math.random()) });
      tweak(p.manifest);
      const up = await fetch(`${w.server.url}/api/v1/modules/${p.sha256}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${w.admin}`, 'content-type': 'application/octet-stream' },
        body: p.bytes,
      });
      assert.equal(up.ok, true);
      return w.call('POST', '/patches', { json: { manifest: p.manifest } });
    }

    it('accepts a manifest with kind, commits, sympos and skipped', async () => {
      const r = await publish(withUpstreamFix);
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assert.equal((r.json as PatchRecord).fixes[0]?.commits[0]?.id, COMMIT.id);
    });

    const malformed: [string, (m: PatchManifest) => void, RegExp][] = [
      [
        'an unknown kind',
        (m) => Object.assign(m.fixes[0] ?? {}, { kind: 'binary' }),
        /\/manifest\/fixes\/0\/kind: must be one of "patch", "source"/,
      ],
      [
        'a commit id that is not hex',
        (m) => Object.assign(m.fixes[0] ?? {}, { commits: [{ id: 'HEAD~1', subject: 'x' }] }),
        /commits\/0\/id/,
      ],
      [
        'a commit without a subject',
        (m) => Object.assign(m.fixes[0] ?? {}, { commits: [{ id: COMMIT.id }] }),
        /subject/,
      ],
      [
        'a skipped fix without a reason',
        (m) => Object.assign(m, { skipped: [{ id: 'LG-X', cves: [] }] }),
        /skipped\/0/,
      ],
      ['a negative sympos', (m) => Object.assign(m.fixes[0]?.functions[0] ?? {}, { sympos: -1 }), /sympos/],
    ];
    for (const [what, tweak, field] of malformed) {
      it(`refuses ${what} with a VALIDATION_FAILED naming the field`, async () => {
        const r = await publish(tweak);
        assert.equal(r.status, 400, JSON.stringify(r.json));
        const body = r.json as { code: string; message: string };
        assert.equal(body.code, 'VALIDATION_FAILED');
        assert.match(body.message, field);
      });
    }
  });
});
