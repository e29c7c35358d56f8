// User-space levels on the server: recorded with their code object, signed
// into TUF beside the kernel levels, and offered per library build-id at
// check-in, with halts (by an operator or a host's crash-loop guard), pins
// and rollbacks. The fixture is a real level built from Debian's glibc
// 2.36-9+deb12u7 source package (CVE-2025-0395 and CVE-2026-0915).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  userspaceTargetCustomValidator,
  userspaceTargetPath,
  type ApiError,
  type CheckinRequest,
  type CheckinResponse,
  type ComplianceReport,
  type EnrollResponse,
  type HostUserspaceLibrary,
  type UserspaceLevelRecord,
  type UserspaceLibraryStatus,
  type UserspaceManifest,
} from '@livegraft/protocol';
import { kernelIdentity, startHarness, type Answer, type CallInit } from './helpers.ts';
import { startFleetHarness } from './fleet-helpers.ts';
import { pgSkip, startPostgres, type PgCluster } from './pg-harness.ts';
import { TestClient } from './tuf-helpers.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'userspace');
const manifest = JSON.parse(
  readFileSync(join(FIXTURES, 'lg-libc-so-6-58254ca97202-1.json'), 'utf8'),
) as UserspaceManifest;
const object = readFileSync(join(FIXTURES, manifest.code.file));
const buildId = manifest.library.buildId;
/** The PDF's text is checked when poppler's pdftotext is there (apt-get install poppler-utils). */
const hasPdfToText = spawnSync('pdftotext', ['-v']).error === undefined;

/** What the suite needs of a running server. */
interface Served {
  server: { url: string };
  registrationKey: string;
  call: (method: string, path: string, init?: CallInit) => Promise<Answer>;
  stop: () => Promise<void>;
}

let cluster: Promise<PgCluster> | undefined;
after(async () => {
  if (cluster !== undefined) await (await cluster).stop();
});

userspaceSuite('SQLite', () => startHarness(), false);
userspaceSuite(
  'PostgreSQL',
  async () => {
    cluster ??= startPostgres();
    return startFleetHarness({ database: await (await cluster).createDatabase() });
  },
  pgSkip,
);

function userspaceSuite(name: string, start: () => Promise<Served>, skip: string | false): void {
  describe(`user-space levels (${name})`, { skip }, () => {
    let h: Served;
    let host: EnrollResponse;
    let client: TestClient;
    before(async () => {
      h = await start();
      const res = await h.call('POST', '/hosts/enroll', {
        token: null,
        json: { registrationKey: h.registrationKey, hostname: 'app1', kernel: kernelIdentity(), agentVersion: '0.1.0' },
      });
      assert.equal(res.status, 201, res.bytes.toString());
      host = res.json as EnrollResponse;
      client = await TestClient.create(h.server.url, host.root);
    });
    after(async () => {
      await client?.remove();
      await h?.stop();
    });

    const status = (over: Partial<UserspaceLibraryStatus> = {}): UserspaceLibraryStatus => ({
      buildId,
      soname: 'libc.so.6',
      level: 0,
      cves: [],
      patched: 0,
      unpatched: 3,
      refused: 0,
      ...over,
    });
    async function checkin(libs: UserspaceLibraryStatus[]): Promise<CheckinResponse> {
      const body: CheckinRequest = {
        kernel: kernelIdentity(),
        appliedLevel: 0,
        state: 'unpatched',
        agentVersion: '0.1.0',
        uptimeSec: 1,
        userspace: libs,
      };
      const res = await h.call('POST', '/hosts/checkin', { token: host.token, json: body });
      assert.equal(res.status, 200, res.bytes.toString());
      return res.json as CheckinResponse;
    }

    it('refuses a code object that is not the manifest’s', async () => {
      const res = await h.call('POST', '/userspace/levels', {
        json: { manifest, object: Buffer.concat([object, Buffer.from([0])]).toString('base64'), publish: true },
      });
      assert.equal(res.status, 400, res.bytes.toString());
      assert.equal((res.json as ApiError).code, 'MANIFEST_MISMATCH');
    });

    it('records and publishes a level; TUF signs its code object with the manifest as custom data', async () => {
      const res = await h.call('POST', '/userspace/levels', {
        json: { manifest, object: object.toString('base64'), publish: true },
      });
      assert.equal(res.status, 201, res.bytes.toString());
      const rec = res.json as UserspaceLevelRecord;
      assert.equal(rec.published, true);
      assert.deepEqual(rec.cves, ['CVE-2025-0395', 'CVE-2026-0915']);
      assert.deepEqual(rec.functions, ['__assert_fail_base', '_nss_dns_getnetbyaddr_r']);
      assert.equal(rec.target, userspaceTargetPath(buildId, 1, manifest.code.file));

      const u = client.updater();
      await u.refresh();
      const info = await u.getTargetInfo(rec.target);
      assert.ok(info !== undefined, 'the level is a signed target');
      const out = join(client.dir, 'targets', manifest.code.file);
      await rm(out, { force: true });
      await u.downloadTarget(info, out);
      assert.ok((await readFile(out)).equals(object));
      assert.deepEqual(userspaceTargetCustomValidator.parse(info.custom).livegraft.userspace, manifest);

      const again = await h.call('POST', '/userspace/levels', {
        json: { manifest, object: object.toString('base64'), publish: true },
      });
      assert.equal(again.status, 200, 'the same level again is a no-op');
    });

    it('a level is immutable: other code under the same build-id and level is refused', async () => {
      const other = Buffer.from(object);
      other.writeUInt8(other.readUInt8(other.length - 1) ^ 1, other.length - 1);
      const m = { ...manifest, code: { ...manifest.code, sha256: createHash('sha256').update(other).digest('hex') } };
      const res = await h.call('POST', '/userspace/levels', {
        json: { manifest: m, object: other.toString('base64') },
      });
      assert.equal(res.status, 409, res.bytes.toString());
      assert.equal((res.json as ApiError).code, 'LEVEL_EXISTS');
    });

    it('check-ins report libraries and get the level per build-id', async () => {
      const a = await checkin([status()]);
      assert.deepEqual(a.userspace, [
        {
          buildId,
          level: 1,
          reason: 'feed',
          allowDowngrade: false,
          target: userspaceTargetPath(buildId, 1, manifest.code.file),
        },
      ]);
      // A check-in that reports no library still gets its feed's level (the host read said there is one).
      assert.deepEqual((await checkin([])).userspace, a.userspace);
      await checkin([status({ level: 1, cves: manifest.cves, patched: 3, unpatched: 0 })]);
      const libs = (await h.call('GET', `/hosts/${host.hostId}/userspace`)).json as HostUserspaceLibrary[];
      assert.equal(libs.length, 1);
      assert.equal(libs[0]?.patched, 3);
      assert.deepEqual(libs[0]?.cves, manifest.cves);
      assert.equal(libs[0]?.pinned, null);

      const vex = (await h.call('GET', `/hosts/${host.hostId}/vex`)).json as {
        statements: { vulnerability: { name: string }; status: string; products: { '@id': string }[] }[];
      };
      const mine = vex.statements.filter((s) => s.products.some((p) => p['@id'].includes(`build_id=${buildId}`)));
      assert.deepEqual(
        mine.map((s) => [s.vulnerability.name, s.status]),
        [
          ['CVE-2025-0395', 'fixed'],
          ['CVE-2026-0915', 'fixed'],
        ],
      );
      const report = (await h.call('GET', '/reports/compliance?format=json')).json as ComplianceReport;
      assert.deepEqual(
        report.userspace?.map((r) => [r.hostname, r.soname, r.package, r.level, r.fixedCves, r.openCves]),
        [['app1', 'libc.so.6', 'libc6', 1, ['CVE-2025-0395', 'CVE-2026-0915'], []]],
      );
      const csv = await h.call('GET', '/reports/compliance?format=csv&part=userspace');
      assert.equal(csv.status, 200);
      const lines = csv.bytes.toString('utf8').trimEnd().split('\r\n');
      assert.equal(
        lines[0],
        'host_id,hostname,library,build_id,package,version,level,cve,status,patched_processes,unpatched_processes,refused_processes',
      );
      assert.deepEqual(lines.slice(1), [
        `${host.hostId},app1,libc.so.6,${buildId},libc6,2.36-9+deb12u7,1,CVE-2025-0395,fixed,3,0,0`,
        `${host.hostId},app1,libc.so.6,${buildId},libc6,2.36-9+deb12u7,1,CVE-2026-0915,fixed,3,0,0`,
      ]);
      const pdf = await h.call('GET', '/reports/compliance?format=pdf');
      assert.equal(pdf.status, 200);
      if (hasPdfToText) {
        const dir = await mkdtemp(join(tmpdir(), 'lg-us-pdf-'));
        try {
          await writeFile(join(dir, 'r.pdf'), pdf.bytes);
          const text = execFileSync('pdftotext', ['-layout', join(dir, 'r.pdf'), '-'], { encoding: 'utf8' });
          assert.match(text, /User-space libraries \(1\)/);
          assert.match(
            text,
            /app1\s+libc\.so\.6 \(libc6 2\.36-9\+deb12u7\)\s+1\s+CVE-2025-0395 CVE-2026-0915\s+-\s+3\/0\/0/,
          );
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
      await checkin([status({ level: 1, cves: manifest.cves, patched: 2, unpatched: 0, refused: 1 })]);
      const report2 = (await h.call('GET', '/reports/compliance?format=json')).json as ComplianceReport;
      assert.deepEqual(report2.userspace?.[0]?.openCves, ['CVE-2025-0395', 'CVE-2026-0915']);
      const after = (await h.call('GET', `/hosts/${host.hostId}/vex`)).json as typeof vex;
      assert.deepEqual(
        after.statements
          .filter((s) => s.products.some((p) => p['@id'].includes(`build_id=${buildId}`)))
          .map((s) => s.status),
        ['affected', 'affected'],
        'a refused process still runs the flaw',
      );
    });

    it('a crash-loop halt reported by a host halts the level fleet-wide until an operator lifts it', async () => {
      const a = await checkin([status({ level: 1, halted: true, patched: 0, unpatched: 3 })]);
      assert.deepEqual(a.userspace, [{ buildId, level: 0, reason: 'halt', allowDowngrade: true }]);
      const levels = (await h.call('GET', `/userspace/levels?buildId=${buildId}`)).json as UserspaceLevelRecord[];
      assert.equal(levels[0]?.halted, true);
      const lifted = await h.call('DELETE', `/userspace/levels/${buildId}/1/halt`);
      assert.deepEqual(lifted.json, { ok: true });
      assert.equal((await checkin([status()])).userspace?.[0]?.level, 1);
      const halted = await h.call('POST', `/userspace/levels/${buildId}/1/halt`, { json: { reason: 'operator test' } });
      assert.equal(halted.status, 200, halted.bytes.toString());
      assert.equal((await checkin([status()])).userspace?.[0]?.reason, 'halt');
      await h.call('DELETE', `/userspace/levels/${buildId}/1/halt`);
    });

    it('/openapi.json describes the user-space routes', async () => {
      const doc = (await (await fetch(`${h.server.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
      for (const p of [
        '/api/v1/userspace/levels',
        '/api/v1/userspace/levels/{buildId}/{level}/publish',
        '/api/v1/userspace/levels/{buildId}/{level}/halt',
        '/api/v1/hosts/{id}/userspace-pins/{buildId}',
        '/api/v1/hosts/{id}/userspace',
      ])
        assert.ok(doc.paths[p] !== undefined, `openapi lists ${p}`);
    });

    it('a host pin holds a level; pin 0 rolls the host back; unpinning follows the published level again', async () => {
      const pin = await h.call('PUT', `/hosts/${host.hostId}/userspace-pins/${buildId}`, { json: { level: 0 } });
      assert.equal(pin.status, 200, pin.bytes.toString());
      assert.deepEqual((await checkin([status({ level: 1 })])).userspace, [
        { buildId, level: 0, reason: 'rollback', allowDowngrade: true },
      ]);
      const bad = await h.call('PUT', `/hosts/${host.hostId}/userspace-pins/${buildId}`, { json: { level: 7 } });
      assert.equal(bad.status, 404);
      await h.call('DELETE', `/hosts/${host.hostId}/userspace-pins/${buildId}`);
      assert.equal((await checkin([status()])).userspace?.[0]?.reason, 'feed');
    });
  });
}
