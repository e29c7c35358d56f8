import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import { changelogFromText, parseChangelogEntries } from '../src/changelog.ts';
import { loadDataset, loadDefaultDataset } from '../src/dataset.ts';
import { datasetStatus, unknownDebianVersion, unknownDebianWarning } from '../src/freshness.ts';
import { cveUpdateCommand } from '../src/update.ts';
import { fixture } from './helpers.ts';

const NOW = new Date('2026-12-03T12:00:00Z');
/** /proc/version of Debian's security kernel of 2026-11-26, newer than the shipped changelogs. */
const PROC_192_3 =
  'Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)';

function rejectsWith(code: string, pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(isLivegraftError(err), String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('cve update: kernel CNA records from a directory (offline)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cve-update-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('merges a vulns-style tree: new and newer records, a rejection; git-only records are listed, not merged', async () => {
    const path = join(dir, 'cves.json.gz');
    const { output, result } = await cveUpdateCommand(
      { dataset: path, cna: [fixture('cna-tree')], debian: false, now: NOW },
      {},
    );
    assert.deepEqual(result.cna, {
      files: 4,
      imported: 2,
      unchanged: 0,
      rejected: 1,
      unusable: 1,
      asOf: '2026-11-30',
    });
    assert.match(output, /not usable: .*CVE-2099-70002\.json \(CVE-2099-70002\): no affected kernel versions/);
    const db = await loadDataset(path);
    assert.deepEqual(db.entries.get('CVE-2099-70001')?.record.ranges, [
      ['6.1.180', '6.1.193'],
      ['6.12.100', '6.12.119'],
      [null, '6.19'],
    ]);
    assert.ok(db.rejected.has('CVE-2099-70003'));
    assert.equal(db.entries.has('CVE-2099-70002'), false);
    assert.equal(db.entries.get('CVE-2024-26925')?.record.modified, '2026-09-10T10:00:00.000Z');
    // The CNA part of the data is now as of its newest record; the shipped Debian part keeps its date.
    const st = datasetStatus(db, NOW);
    assert.equal(st.cveRecordsAsOf, '2026-11-30');
    assert.equal(st.debianAsOf, '2026-11-22');
    assert.equal(st.ageDays, 11);
    assert.equal(st.stale, false);
    assert.deepEqual(st.warnings, []);
  });

  for (const [name, field, why] of [
    ['missing-state', 'cveMetadata.state', /CVE-2099-70004\.json: field cveMetadata\.state: /],
    [
      'bad-version',
      'containers.cna.affected[1].versions[1].lessThan',
      /CVE-2099-70005\.json: field containers\.cna\.affected\[1\]\.versions\[1\]\.lessThan: "6\.12\.x" is not a kernel version/,
    ],
    ['not-json', undefined, /CVE-2099-70006\.json: not JSON/],
    [
      'bad-cvss',
      'containers.cna.metrics[0].cvssV3_1.vectorString',
      /CVE-2099-70007\.json: field containers\.cna\.metrics\[0\]\.cvssV3_1\.vectorString: .*metric A missing/,
    ],
  ] as const) {
    it(`a malformed record (${name}) names its file and field, and leaves the dataset file as it was`, async () => {
      const path = join(dir, `${name}.json.gz`);
      await cveUpdateCommand({ dataset: path, cna: [fixture('cna-tree')], debian: false, now: NOW });
      const before = await readFile(path);
      await assert.rejects(
        cveUpdateCommand({ dataset: path, cna: [fixture(`cna-malformed/${name}`)], debian: false, now: NOW }),
        (err: unknown) => {
          rejectsWith('CVE_RECORD_INVALID', why)(err);
          if (field !== undefined) assert.equal((err as { details?: { field?: string } }).details?.field, field);
          return true;
        },
      );
      assert.deepEqual(await readFile(path), before, 'the dataset changed');
      assert.deepEqual(
        (await readdir(dir)).filter((f) => f.startsWith('.')),
        [],
        'a temporary file was left behind',
      );
    });
  }

  it('refuses an update with nothing to do, and a path that does not exist', async () => {
    await assert.rejects(
      cveUpdateCommand({ dataset: join(dir, 'x.json.gz'), debian: false }),
      rejectsWith('CVE_UPDATE_NOTHING', /--cna/),
    );
    await assert.rejects(
      cveUpdateCommand({ dataset: join(dir, 'x.json.gz'), cna: [join(dir, 'nope')], debian: false }),
      rejectsWith('CVE_IMPORT_UNREADABLE', /nope/),
    );
  });
});

describe('cve update: Debian changelogs (archive stubbed)', () => {
  let dir: string;
  let text: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cve-update-deb-'));
    text = await readFile(fixture('debian-changelog-6.1.192-3.txt'), 'utf8');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses entries with the CVEs each names', () => {
    const e = parseChangelogEntries(text, 'fixture');
    assert.deepEqual(
      e.map((x) => [x.version, x.cves]),
      [
        ['6.1.192-3', ['CVE-2026-99362']],
        ['6.1.192-2', []],
      ],
    );
  });

  it('a truncated changelog is refused with the line', () => {
    assert.throws(
      () => parseChangelogEntries(text.split('\n').slice(0, 4).join('\n'), 'changelog.Debian of x'),
      rejectsWith('DEBIAN_CHANGELOG_INVALID', /changelog\.Debian of x line 1: entry 6\.1\.192-3 has no " -- /),
    );
    assert.throws(
      () => parseChangelogEntries('this is not a changelog\n', 'y'),
      rejectsWith('DEBIAN_CHANGELOG_INVALID', /y line 1: expected an entry header/),
    );
  });

  it('replaces the changelog of the same series; the newer Debian kernel is then known', async () => {
    const shipped = await loadDefaultDataset();
    assert.equal(unknownDebianVersion(shipped, PROC_192_3), '6.1.192-3');
    const path = join(dir, 'cves.json.gz');
    const archive = 'http://deb.debian.org/debian-security bookworm-security/main';
    const { result } = await cveUpdateCommand(
      { dataset: path, now: NOW },
      {
        fetchChangelogs: async () => [
          { changelog: changelogFromText(text, { package: 'linux-config-6.1', where: 'fixture', abi: 57 }), archive },
        ],
      },
    );
    assert.deepEqual(result.debian, [
      { package: 'linux-config-6.1', version: '6.1.192-3', previous: '6.1.192-2', uploads: 2, archive },
    ]);
    const db = await loadDataset(path);
    assert.equal(unknownDebianVersion(db, PROC_192_3), null);
    assert.deepEqual([...(db.debian.fixesFor('6.1.192-3')?.cves ?? [])], ['CVE-2026-99362']);
    assert.deepEqual(db.debian.versionsForAbi('6.1.0-57'), ['6.1.192-3']);
    // The 6.12 backport's changelog is untouched.
    assert.deepEqual(result.status.debianVersions.sort(), ['6.1.192-3', '6.12.117-1~deb12u1']);
    assert.equal(result.status.debianAsOf, '2026-12-03');
    const src = db.sources.filter((s) => s.kind === 'debian-changelog');
    assert.deepEqual(
      src.map((s) => [s.commit, s.repository]),
      [['6.1.192-3', archive]],
    );
  });

  it('an archive failure leaves the dataset file as it was', async () => {
    const path = join(dir, 'keep.json.gz');
    await writeFile(path, await readFile(join(dir, 'cves.json.gz')));
    const before = await readFile(path);
    await assert.rejects(
      cveUpdateCommand(
        { dataset: path, now: NOW },
        {
          fetchChangelogs: () => {
            throw Object.assign(new Error('x'), { code: 'DEBIAN_ARCHIVE_UNAVAILABLE' });
          },
        },
      ),
      /x/,
    );
    assert.deepEqual(await readFile(path), before);
  });
});

describe('dataset age and unknown Debian versions', () => {
  it('the shipped data is stale: its kernel CNA snapshot is of 2026-08-21', async () => {
    const st = datasetStatus(await loadDefaultDataset(), NOW);
    assert.equal(st.cveRecordsAsOf, '2026-08-21');
    assert.equal(st.debianAsOf, '2026-11-22');
    assert.equal(st.ageDays, 104);
    assert.equal(st.stale, true);
    assert.deepEqual(
      st.warnings.map((w) => w.code),
      ['CVE_DATA_STALE'],
    );
    assert.match(
      st.warnings[0]?.message ?? '',
      /2026-08-21, 104 days ago \(more than 14\).*livegraft cve update --cna/,
    );
  });

  it('14 days is not stale, 15 is', async () => {
    const db = await loadDefaultDataset();
    // Debian's part (read 2026-11-22) is 14 days old on 2026-12-06: only the CNA part warns.
    assert.deepEqual(
      datasetStatus(db, new Date('2026-12-06T23:00:00Z')).warnings.map((w) => w.message.slice(0, 26)),
      ['The kernel CVE records are'],
    );
    assert.equal(datasetStatus(db, new Date('2026-12-07T01:00:00Z')).warnings.length, 2);
    const fresh = datasetStatus(db, new Date('2026-09-04T12:00:00Z'));
    assert.equal(fresh.ageDays, 14);
    assert.equal(fresh.stale, false);
    assert.equal(datasetStatus(db, new Date('2026-09-05T12:00:00Z')).stale, true);
  });

  it('names the unknown versions with their hosts and what the data knows', async () => {
    const db = await loadDefaultDataset();
    const w = unknownDebianWarning(db, new Map([['6.1.192-3', 2]]));
    assert.equal(w?.code, 'DEBIAN_VERSION_UNKNOWN');
    assert.match(w?.message ?? '', /6\.1\.192-3 \(2 hosts; the data knows up to 6\.1\.192-2\).*livegraft cve update/);
    assert.equal(unknownDebianWarning(db, new Map()), null);
    assert.equal(unknownDebianVersion(db, '6.1.100'), null);
  });
});
