import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LivegraftError } from '@livegraft/protocol';
import { affected } from '../src/affected.ts';
import { loadDefaultDataset } from '../src/dataset.ts';
import { compareDebianVersions, upstreamOfDebianVersion } from '../src/debian.ts';
import { parseKernel } from '../src/kernel.ts';
import { compareVersions, parseVersion, tryParseVersion } from '../src/version.ts';

const DEBIAN_PROC =
  'Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, ' +
  'GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)';

describe('upstream versions', () => {
  it('parses mainline, stable and 2.6-era versions into branches', () => {
    assert.deepEqual([parseVersion('6.1.100').branch, parseVersion('6.1.100').sublevel], ['6.1', 100]);
    assert.equal(parseVersion('6.13').mainline, true);
    assert.equal(parseVersion('6.1.0').text, '6.1');
    assert.equal(parseVersion('2.6.19').branch, '2.6.19');
    assert.equal(parseVersion('2.6.32.71').sublevel, 71);
    assert.equal(tryParseVersion('6.1.2.3'), undefined);
    assert.equal(tryParseVersion('six'), undefined);
    assert.throws(() => parseVersion('6.x'), { code: 'VERSION_INVALID' });
  });

  it('compares across branches and eras', () => {
    const sorted = ['6.13', '2.6.32.71', '6.1.100', '6.1.99', '2.6.32', '6.12.9', '3.0', '6.2'].sort(compareVersions);
    assert.deepEqual(sorted, ['2.6.32', '2.6.32.71', '3.0', '6.1.99', '6.1.100', '6.2', '6.12.9', '6.13']);
  });
});

describe('Debian versions', () => {
  it('orders like dpkg', () => {
    assert.ok(compareDebianVersions('6.12.117-1~deb12u1', '6.12.117-1') < 0);
    assert.ok(compareDebianVersions('6.1.192-2', '6.1.192-1') > 0);
    assert.ok(compareDebianVersions('6.1.9-1', '6.1.10-1') < 0);
    assert.ok(compareDebianVersions('1:1.0-1', '2.0-1') > 0);
    assert.ok(compareDebianVersions('6.1.170-3', '6.1.170-10') < 0);
    assert.equal(compareDebianVersions('6.1.76-1', '6.1.76-1'), 0);
  });
  it('finds the upstream version inside a package version', () => {
    assert.equal(upstreamOfDebianVersion('6.1.192-2'), '6.1.192');
    assert.equal(upstreamOfDebianVersion('6.12.117-1~deb12u1'), '6.12.117');
  });
});

describe('kernel strings', async () => {
  const db = await loadDefaultDataset();
  const parse = (s: string) => parseKernel(s, db.debian);

  it('a bare upstream version is evaluated as is', () => {
    const t = parse('6.1.100');
    assert.equal(t.upstream.text, '6.1.100');
    assert.equal(t.distro, 'upstream');
    assert.deepEqual(t.warnings, []);
  });

  it('a Debian /proc/version line maps to the package version, not the ABI name or the compiler', () => {
    const t = parse(DEBIAN_PROC);
    assert.equal(t.release, '6.1.0-56-amd64');
    assert.equal(t.upstream.text, '6.1.192');
    assert.equal(t.debianPackageVersion, '6.1.192-2');
    assert.deepEqual(t.warnings, []);
  });

  it('uname -r and /proc/version pasted together work', () => {
    const t = parse(`6.1.0-56-amd64\n${DEBIAN_PROC}\n`);
    assert.equal(t.key, '6.1.192+debian:6.1.192-2');
  });

  it('a bare Debian uname -r is ambiguous: warning, evaluated at the oldest build of that ABI', () => {
    const t = parse('6.1.0-56-amd64');
    assert.equal(t.warnings[0]?.code, 'KERNEL_VERSION_AMBIGUOUS');
    assert.match(t.warnings[0]?.message ?? '', /6\.1\.0-56/);
    assert.equal(t.debianPackageVersion, '6.1.192-2');
    const older = parse('6.1.0-38-cloud-amd64');
    assert.equal(older.debianPackageVersion, '6.1.147-1');
  });

  it('a Debian ABI the changelogs do not know: warning, evaluated as the first release of the branch', () => {
    const t = parse('5.10.0-30-amd64');
    assert.equal(t.upstream.text, '5.10');
    assert.equal(t.warnings[0]?.code, 'KERNEL_VERSION_AMBIGUOUS');
  });

  it('Debian 6.12 backports: +deb12 release carries the upstream version', () => {
    const t = parse('6.12.117+deb12-amd64');
    assert.equal(t.upstream.text, '6.12.117');
    assert.equal(t.warnings[0]?.code, 'DISTRO_FIXES_UNKNOWN');
    const p = parse(
      'Linux version 6.12.117+deb12-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2026-11-14)',
    );
    assert.equal(p.debianPackageVersion, '6.12.117-1~deb12u1');
  });

  it('an Ubuntu ABI name alone is KERNEL_VERSION_UNKNOWN; with the version signature it is evaluated', () => {
    assert.throws(
      () => parse('5.15.0-91-generic'),
      (e: unknown) =>
        e instanceof LivegraftError && e.code === 'KERNEL_VERSION_UNKNOWN' && /version_signature/.test(e.message),
    );
    const t = parse('5.15.0-91-generic\nUbuntu 5.15.0-91.101-generic 5.15.131');
    assert.equal(t.distro, 'ubuntu');
    assert.equal(t.upstream.text, '5.15.131');
    assert.equal(t.warnings[0]?.code, 'DISTRO_FIXES_UNKNOWN');
  });

  it('other distributions: upstream base when present, else unknown', () => {
    assert.equal(parse('6.5.6-300.fc39.x86_64').upstream.text, '6.5.6');
    assert.throws(() => parse('5.14.0-362.8.1.el9_3.x86_64'), { code: 'KERNEL_VERSION_UNKNOWN' });
    assert.throws(() => parse('not a kernel'), { code: 'KERNEL_VERSION_UNKNOWN' });
    assert.throws(() => parse(''), { code: 'KERNEL_VERSION_UNKNOWN' });
    assert.throws(() => parse('6.1.1'.padEnd(5000, ' x')), { code: 'KERNEL_VERSION_UNKNOWN' });
  });
});

describe('Debian changelog fixes', async () => {
  const db = await loadDefaultDataset();

  it('6.1.192-2 is evaluated as 6.1.192 minus the CVEs its changelog names', () => {
    const upstream = affected(db, '6.1.192');
    const deb = affected(db, DEBIAN_PROC);
    const fixes = db.debian.fixesFor('6.1.192-2');
    assert.ok(fixes !== undefined);
    assert.equal(deb.kernel.upstream, '6.1.192');
    assert.ok(deb.fixedByDistro.length > 0);
    assert.equal(deb.affected.length + deb.fixedByDistro.length, upstream.affected.length);
    for (const id of deb.fixedByDistro) assert.ok(fixes.cves.has(id), `${id} named by the changelog`);
    for (const f of deb.affected) assert.ok(!fixes.cves.has(f.id), `${f.id} should have been subtracted`);
  });

  it('CVE-2023-52586: upstream 6.1.192 is affected (no 6.1 stable fix), Debian 6.1.192-2 fixed it', () => {
    const id = 'CVE-2023-52586';
    assert.ok(affected(db, '6.1.192').affected.some((f) => f.id === id));
    assert.ok(db.debian.fixesFor('6.1.192-2')?.cves.has(id));
    const deb = affected(db, DEBIAN_PROC);
    assert.ok(!deb.affected.some((f) => f.id === id));
    assert.ok(deb.fixedByDistro.includes(id));
  });

  it('fixes are cumulative over older uploads and rebuilds include what they rebuild', () => {
    const newer = db.debian.fixesFor('6.1.192-2');
    const older = db.debian.fixesFor('6.1.140-1');
    assert.ok(newer !== undefined && older !== undefined);
    for (const id of older.cves) assert.ok(newer.cves.has(id));
    assert.ok(newer.cves.size > older.cves.size);
    // linux-6.12 ~deb12u1 entries name no CVEs themselves; they carry the trixie upload's.
    const rebuild = db.debian.fixesFor('6.12.117-1~deb12u1');
    const trixie = db.debian.fixesFor('6.12.117-1');
    assert.ok(rebuild !== undefined && trixie !== undefined);
    assert.equal(rebuild.cves.size, trixie.cves.size);
    assert.ok(rebuild.cves.size > 1000);
  });

  it('an unknown Debian package version warns and does not subtract anything', () => {
    const r = affected(db, 'Linux version 6.1.0-99-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2027-01-01)');
    assert.equal(r.kernel.debianPackageVersion, null);
    assert.equal(r.fixedByDistro.length, 0);
    assert.equal(r.warnings[0]?.code, 'DISTRO_FIXES_UNKNOWN');
  });

  it('hosts on the same kernel share one evaluation', () => {
    const a = affected(db, DEBIAN_PROC);
    const b = affected(db, `6.1.0-56-amd64 ${DEBIAN_PROC}`);
    assert.equal(a.affected, b.affected);
  });
});
