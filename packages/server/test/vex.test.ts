import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parseConfig } from '../src/config.ts';
import { debianPackageOf } from '../src/compliance/vex.ts';
import { affectedIds, DAY, PROC_192, PROC_76, startWorld, T0, type World } from './compliance-world.ts';

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
  author: string;
  version: number;
  timestamp: string;
  last_updated: string;
  statements: (Statement & { justification?: string; impact_statement?: string })[];
}

const schemaUrl = new URL('./fixtures/openvex_json_schema.json', import.meta.url);
const AUTHOR = 'https://security.example.org/';

/** ajv (draft 2020-12, formats checked) with the OpenVEX 0.2.0 schema, as scanners validate documents. */
async function openVexSchema(): Promise<{ Check(doc: unknown): boolean; Errors(doc: unknown): unknown[] }> {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
  addFormats.default(ajv);
  ajv.addFormat('iri', /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$/);
  const validate = ajv.compile(JSON.parse(await readFile(schemaUrl, 'utf8')) as object);
  return {
    Check: (doc) => validate(doc),
    Errors: (doc) => (validate(doc) ? [] : (validate.errors ?? [])),
  };
}

describe('OpenVEX documents', () => {
  let w: World;
  let patchedId: string;
  let patchedToken: string;
  let fixedCves: string[];
  let laterCve: string;
  let notAffectedCve: string;
  let check: Awaited<ReturnType<typeof openVexSchema>>;

  before(async () => {
    check = await openVexSchema();
    const ids = [...(await affectedIds(PROC_192)).keys()];
    fixedCves = ids.slice(0, 2);
    laterCve = ids[2] ?? '';
    // Known to the CVE data, affects 6.1.76 but no longer 6.1.192-2.
    const newer = await affectedIds(PROC_192);
    notAffectedCve = [...(await affectedIds(PROC_76)).keys()].find((id) => !newer.has(id)) ?? '';
    assert.notEqual(notAffectedCve, '');
    w = await startWorld({ vexAuthor: AUTHOR });
    const p = await w.enroll('web-1.example', PROC_192);
    const s = await w.enroll('web-2.example', PROC_192);
    patchedId = p.hostId;
    patchedToken = p.token;
    await w.publishLevel(PROC_192, 1, [...fixedCves, notAffectedCve]);
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
    const both = structuredClone(ok) as unknown as { statements: Record<string, unknown>[] };
    Object.assign(both.statements[0] ?? {}, {
      status: 'not_affected',
      justification: 'vulnerable_code_not_present',
      impact_statement: 'x',
    });
    assert.equal(check.Check(both), false, 'a justification or an impact statement, not both');
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
      // Qualifiers in canonical (sorted) order.
      assert.match(
        product?.['@id'] ?? '',
        /^pkg:generic\/linux@6\.1\.0-56-amd64\?host=web-1\.example&host_id=[0-9a-f-]+&kernel_id=[0-9a-f]{64}$/,
      );
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

  it('a CVE the kernel is not affected by is not_affected with a justification, as exposure says', async () => {
    const exposure = (await w.call('GET', `/hosts/${patchedId}/exposure`)).json as { notApplicable: string[] };
    assert.ok(exposure.notApplicable.includes(notAffectedCve), 'exposure: not applicable');
    const doc = (await w.call('GET', `/hosts/${patchedId}/vex`)).json as Doc;
    const about = doc.statements.filter((s) => s.vulnerability.name === notAffectedCve);
    assert.deepEqual(
      about.map((s) => [s.status, s.justification]),
      [['not_affected', 'vulnerable_code_not_present']],
    );
    assert.match(about[0]?.status_notes ?? '', /does not contain the code/);
    assert.equal(about[0]?.impact_statement, undefined);
  });

  it('names the configured author; a value that is neither an IRI nor an email is refused at start', async () => {
    const doc = (await w.call('GET', '/vex')).json as Doc;
    assert.equal(doc.author, AUTHOR);
    assert.equal(parseConfig({ vexAuthor: 'security@example.org' }).vexAuthor, 'security@example.org');
    assert.throws(
      () => parseConfig({ vexAuthor: 'Livegraft patch server' }),
      (e: Error & { code?: string }) =>
        e.code === 'CONFIG_INVALID' && /--vex-author .*not an IRI .* or an email address/.test(e.message),
    );
  });

  it('gives a Debian kernel its package subcomponent even when the CVE data does not know the version', async () => {
    const proc = PROC_192.replace('Debian 6.1.192-2 (2026-11-16)', 'Debian 6.1.192-97 (2026-11-20)');
    const h = await w.enroll('web-3.example', proc);
    await w.checkin(h.token, proc, 0);
    const doc = (await w.call('GET', `/hosts/${h.hostId}/vex`)).json as Doc;
    assert.equal(check.Check(doc), true, JSON.stringify([...check.Errors(doc)].slice(0, 3)));
    const product = doc.statements[0]?.products[0];
    assert.equal(
      product?.subcomponents?.[0]?.['@id'],
      'pkg:deb/debian/linux-image-6.1.0-56-amd64@6.1.192-97?arch=amd64',
    );
    assert.match(product?.['@id'] ?? '', /\?host=web-3\.example&host_id=/);
  });

  it('reads the Debian package version from /proc/version, not the compiler version or another branch', () => {
    assert.equal(debianPackageOf(PROC_192, '6.1.0-56-amd64'), '6.1.192-2');
    const custom =
      'Linux version 6.6.30 (me@box) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP';
    assert.equal(debianPackageOf(custom, '6.6.30'), null);
  });

  it('keeps @id and version while the statements stay the same, across restarts; a change bumps the version', async () => {
    const get = async (): Promise<Doc> => (await w.call('GET', `/hosts/${patchedId}/vex`)).json as Doc;
    const first = await get();
    w.setNow(T0 + 2 * DAY);
    const again = await get();
    assert.deepEqual(again, first, 'same statements, same document');
    await w.restart();
    assert.deepEqual(await get(), first, 'the same after a restart');
    const fleet = (await w.call('GET', '/vex')).json as Doc;
    assert.notEqual(fleet['@id'], first['@id'], 'the fleet document is another document');

    // The host applies level 2: laterCve becomes fixed.
    await w.checkin(patchedToken, PROC_192, 2);
    const changed = await get();
    assert.equal(changed['@id'], first['@id']);
    assert.equal(changed.version, first.version + 1);
    assert.equal(changed.timestamp, first.timestamp, 'issued at version 1');
    assert.equal(changed.last_updated, new Date(T0 + 2 * DAY).toISOString());
    assert.ok(changed.statements.some((s) => s.status === 'fixed' && s.vulnerability.name === laterCve));
  });
});
