import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Compile } from 'typebox/compile';
import { affectedIds, DAY, PROC_192, startWorld, T0, type World } from './compliance-world.ts';

interface Statement {
  vulnerability: { name: string };
  products: { '@id': string; identifiers?: { purl?: string }; subcomponents?: { '@id': string }[] }[];
  status: string;
  status_notes?: string;
  action_statement?: string;
}
interface Doc {
  '@context': string;
  '@id': string;
  statements: Statement[];
}

const schemaUrl = new URL('./fixtures/openvex_json_schema.json', import.meta.url);

describe('OpenVEX documents', () => {
  let w: World;
  let patchedId: string;
  let fixedCves: string[];
  let laterCve: string;
  let check: ReturnType<typeof Compile>;

  before(async () => {
    check = Compile(JSON.parse(await readFile(schemaUrl, 'utf8')) as Record<string, unknown>);
    const ids = [...(await affectedIds(PROC_192)).keys()];
    fixedCves = ids.slice(0, 2);
    laterCve = ids[2] ?? '';
    w = await startWorld();
    const p = await w.enroll('web-1.example', PROC_192);
    const s = await w.enroll('web-2.example', PROC_192);
    patchedId = p.hostId;
    await w.publishLevel(PROC_192, 1, fixedCves);
    await w.publishLevel(PROC_192, 2, [...fixedCves, laterCve]);
    w.setNow(T0 + DAY);
    await w.checkin(p.token, PROC_192, 1);
    await w.checkin(s.token, PROC_192, 0);
  });
  after(async () => {
    await w?.stop();
  });

  it('the schema itself rejects what OpenVEX forbids (so passing it means something)', () => {
    const ok = {
      '@context': 'https://openvex.dev/ns/v0.2.0',
      '@id': 'urn:uuid:x',
      author: 'a',
      timestamp: '2026-01-01T00:00:00Z',
      version: 1,
      statements: [
        { vulnerability: { name: 'CVE-2026-1' }, products: [{ '@id': 'pkg:generic/x@1' }], status: 'fixed' },
      ],
    };
    assert.equal(check.Check(ok), true);
    const affectedNoAction = structuredClone(ok);
    (affectedNoAction.statements[0] as { status: string }).status = 'affected';
    assert.equal(check.Check(affectedNoAction), false);
    const badJustification = structuredClone(ok) as unknown as { statements: Record<string, unknown>[] };
    Object.assign(badJustification.statements[0] ?? {}, { status: 'not_affected', justification: 'patched_live' });
    assert.equal(check.Check(badJustification), false);
  });

  it('states fixed (naming level and module) for live-patched CVEs and affected with an action for the rest', async () => {
    const r = await w.call('GET', `/hosts/${patchedId}/vex`);
    assert.equal(r.status, 200, r.text);
    const doc = r.json as Doc;
    assert.equal(check.Check(doc), true, JSON.stringify([...check.Errors(doc)].slice(0, 3)));
    assert.equal(doc['@context'], 'https://openvex.dev/ns/v0.2.0');
    assert.match(doc['@id'], /^urn:uuid:/);

    const fixed = doc.statements.filter((s) => s.status === 'fixed');
    assert.deepEqual(fixed.map((s) => s.vulnerability.name).sort(), [...fixedCves].sort());
    for (const s of fixed) {
      assert.match(s.status_notes ?? '', /live patch level 1 \(module livegraft_[0-9a-f]{12}_l1, fix LG-TEST-1\)/);
      const product = s.products[0];
      assert.ok(product?.['@id'].startsWith('pkg:generic/linux@6.1.0-56-amd64?kernel_id='));
      assert.match(product?.['@id'] ?? '', /&host=web-1\.example&/);
      assert.equal(
        product?.subcomponents?.[0]?.['@id'],
        'pkg:deb/debian/linux-image-6.1.0-56-amd64@6.1.192-2?arch=amd64',
      );
    }
    const open = doc.statements.filter((s) => s.status === 'affected');
    assert.ok(open.length > 0);
    assert.ok(open.every((s) => (s.action_statement ?? '').length > 0));
    const later = open.find((s) => s.vulnerability.name === laterCve);
    assert.match(
      later?.action_statement ?? '',
      /^Apply livegraft live patch level 2 \(module livegraft_[0-9a-f]{12}_l2\)/,
    );
    assert.ok(!open.some((s) => fixedCves.includes(s.vulnerability.name)));
  });

  it('groups hosts in the same situation into one statement in the fleet document', async () => {
    const doc = (await w.call('GET', '/vex')).json as Doc;
    assert.equal(check.Check(doc), true, JSON.stringify([...check.Errors(doc)].slice(0, 3)));
    const forCve = doc.statements.filter((s) => s.vulnerability.name === fixedCves[0]);
    assert.deepEqual(forCve.map((s) => [s.status, s.products.length]).sort(), [
      ['affected', 1],
      ['fixed', 1],
    ]);
    const shared = doc.statements.find((s) => s.status === 'affected' && s.vulnerability.name === laterCve);
    assert.equal(shared?.products.length, 2, 'both hosts lack level 2');
  });
});
