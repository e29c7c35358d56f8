import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { affected } from '../src/affected.ts';
import { cveImportCommand, inspectCommand } from '../src/commands.ts';
import { loadDataset, loadDefaultDataset, saveDataset } from '../src/dataset.ts';
import { importRecords } from '../src/import.ts';
import { dbOf, fixture } from './helpers.ts';

const has = (db: ReturnType<typeof dbOf>, v: string, id: string): boolean =>
  affected(db, v).affected.some((f) => f.id === id);

describe('import: CVE JSON 5 records', () => {
  it('converts the kernel CNA semver block into ranges', async () => {
    const db = dbOf({});
    const r = importRecords(db, await readFile(fixture('cna-CVE-2024-26925.json'), 'utf8'), 'cna');
    assert.deepEqual(r, { imported: 1, unchanged: 0, rejected: [], skipped: [], skippedTotal: 0 });
    const rec = db.entries.get('CVE-2024-26925')?.record;
    assert.deepEqual(rec?.ranges, [
      [null, '5.4.274'],
      [null, '5.10.215'],
      [null, '5.15.155'],
      [null, '6.1.86'],
      ['6.5', '6.6.26'],
      ['6.5', '6.8.5'],
      ['6.5', '6.9'],
    ]);
    assert.deepEqual(rec?.cvss3, {
      vector: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H',
      score: 7.8,
      severity: 'HIGH',
    });
    assert.equal(rec?.published, '2024-04-25');
    assert.equal(has(db, '6.6.25', 'CVE-2024-26925'), true);
    assert.equal(has(db, '6.6.26', 'CVE-2024-26925'), false);
    assert.equal(has(db, '6.7.12', 'CVE-2024-26925'), true);
    assert.equal(has(db, '6.9.1', 'CVE-2024-26925'), false);
    assert.equal(has(db, '6.4.1', 'CVE-2024-26925'), false);
  });

  it('reads JSON Lines: good records merged, rejected ids removed, malformed ones reported and skipped', async () => {
    const db = dbOf({
      'CVE-2024-26900': [[null, '6.1.1']],
      'CVE-2025-21629': { ranges: [['6.1.1', '6.1.2']], modified: '2026-08-05' },
    });
    const r = importRecords(db, await readFile(fixture('cna-mixed.jsonl'), 'utf8'), 'cna');
    assert.equal(r.imported, 1);
    assert.deepEqual(r.rejected, ['CVE-2024-26900']);
    assert.equal(db.entries.has('CVE-2024-26900'), false);
    assert.equal(r.skippedTotal, 4);
    const by = new Map(r.skipped.map((s) => [s.id ?? s.at, s]));
    assert.match(by.get('CVE-2024-99901')?.reason ?? '', /state/);
    assert.match(by.get('CVE-2024-99902')?.reason ?? '', /six\.five/);
    assert.match(by.get('CVE-2024-99903')?.reason ?? '', /git commit ranges/);
    assert.match(by.get('line 6')?.reason ?? '', /not JSON/);
    assert.equal(by.get('CVE-2024-99901')?.at, 'line 3');
    // The newer CNA record replaced the hand-made one, explicit backport ranges included.
    const rec = db.entries.get('CVE-2025-21629')?.record;
    assert.deepEqual(rec?.ranges, [
      ['6.1.116', '6.1.124'],
      ['6.6.60', '6.6.70'],
      ['5.15.171', null],
      ['6.12', '6.12.9'],
      ['6.12', '6.13'],
    ]);
    assert.equal(has(db, '6.1.120', 'CVE-2025-21629'), true);
    assert.equal(has(db, '6.1.115', 'CVE-2025-21629'), false);
    assert.equal(has(db, '5.15.200', 'CVE-2025-21629'), true);
    assert.equal(has(db, '6.12.9', 'CVE-2025-21629'), false);
  });
});

describe('import: OSV', () => {
  it('pairs events into ranges, computes CVSS, newer modified wins, bad records skipped', async () => {
    const db = await loadDefaultDataset();
    const before26925 = db.entries.get('CVE-2024-26925')?.record;
    assert.equal(has(db, '6.1.120', 'CVE-2025-21629'), true);
    const r = importRecords(db, await readFile(fixture('osv-records.json'), 'utf8'), 'osv');
    assert.equal(r.imported, 2);
    assert.equal(r.unchanged, 1, 'the stale CVE-2024-26925 copy is older than the dataset');
    assert.equal(db.entries.get('CVE-2024-26925')?.record, before26925);
    assert.deepEqual(
      r.skipped.map((s) => s.id),
      ['CVE-2026-99991', 'CVE-2026-99992'],
    );
    assert.match(r.skipped[0]?.reason ?? '', /AV/);
    assert.match(r.skipped[1]?.reason ?? '', /modified/);

    const rec = db.entries.get('CVE-2025-21629')?.record;
    assert.equal(rec?.modified, '2026-09-15T00:00:00Z');
    assert.deepEqual(rec?.ranges, [
      ['6.1.116', '6.1.124'],
      ['6.6.60', '6.6.70'],
      ['6.12', '6.12.9'],
      ['6.12', '6.13'],
    ]);
    assert.equal(rec?.cvss3?.score, 8.2);
    // The unfixed-backport ranges are gone with the replaced record: 5.15 is no longer reported.
    assert.equal(has(db, '5.15.200', 'CVE-2025-21629'), false);
    assert.equal(has(db, '6.1.120', 'CVE-2025-21629'), true);

    const synth = db.entries.get('CVE-2026-99990')?.record;
    assert.deepEqual(synth?.ranges, [['6.6', '6.6.100']]);
    assert.equal(has(db, '6.6.99', 'CVE-2026-99990'), true);
    assert.equal(has(db, '6.6.100', 'CVE-2026-99990'), false);
    assert.equal(affected(db, '6.6.99').affected.find((f) => f.id === 'CVE-2026-99990')?.severity, 'medium');
  });
});

describe('import: compact JSON Lines and bad input', () => {
  it('imports the compact format (the shared extraction validates as is)', async () => {
    const db = dbOf({});
    const r = importRecords(db, await readFile(fixture('kernel-cna-sample.jsonl'), 'utf8'), 'jsonl');
    assert.equal(r.imported, 73);
    assert.equal(r.skippedTotal, 0);
    assert.equal(has(db, '6.1.120', 'CVE-2025-21629'), true);
    assert.ok((db.entries.get('CVE-2025-21629')?.record.title.length ?? 0) <= 100);
  });

  it('auto-detects formats per record', async () => {
    const db = dbOf({});
    const text = [
      JSON.stringify(JSON.parse(await readFile(fixture('cna-CVE-2024-26925.json'), 'utf8'))),
      (await readFile(fixture('kernel-cna-sample.jsonl'), 'utf8')).split('\n')[2],
    ].join('\n');
    const r = importRecords(db, text);
    assert.equal(r.imported, 2);
  });

  it('a garbage file is a clear error; a JSON file with no CVE records too', () => {
    const db = dbOf({});
    assert.throws(() => importRecords(db, 'this is not json\nnor this\n'), {
      code: 'CVE_IMPORT_UNPARSEABLE',
      message: /neither JSON nor JSON Lines/,
    });
    assert.throws(() => importRecords(db, '{"hello": "world"}'), { code: 'CVE_IMPORT_UNRECOGNISED' });
    assert.throws(() => importRecords(db, '  \n'), { code: 'CVE_IMPORT_EMPTY' });
    assert.throws(() => importRecords(db, '[]', 'xml' as never), { code: 'CVE_IMPORT_FORMAT' });
  });

  it('with an explicit format, a record of another format is reported, not guessed', () => {
    const db = dbOf({});
    const r = importRecords(db, JSON.stringify({ id: 'CVE-2020-0001', ranges: [] }), 'osv');
    assert.equal(r.imported, 0);
    assert.match(r.skipped[0]?.reason ?? '', /invalid osv record/);
  });
});

describe('dataset files and commands', () => {
  it('saveDataset writes atomically and loadDataset reads the same data back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'inspector-'));
    try {
      const db = dbOf({ 'CVE-2003-0001': [['6.1.10', '6.1.20']] });
      const path = join(dir, 'sub', 'cves.json.gz');
      await saveDataset(db, path);
      assert.deepEqual(await readdir(join(dir, 'sub')), ['cves.json.gz'], 'no temp file left behind');
      const back = await loadDataset(path);
      assert.deepEqual(back.toFile(), db.toFile());
      await assert.rejects(loadDataset(join(dir, 'missing.json.gz')), { code: 'DATASET_UNREADABLE' });
      await saveDataset(db, join(dir, 'plain.json'));
      const text = await readFile(join(dir, 'plain.json'), 'utf8');
      await assert.rejects(loadDataset(fixture('osv-records.json')), { code: 'DATASET_INVALID' });
      assert.equal(JSON.parse(text).format, 'livegraft-kernel-cves');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('cve import refreshes a dataset file; inspect renders text and JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'inspector-'));
    try {
      const dataset = join(dir, 'kernel-cves.json.gz');
      const { output, result } = await cveImportCommand({ file: fixture('osv-records.json'), format: 'osv', dataset });
      assert.equal(result.imported, 2);
      assert.match(output, /2 imported, 1 unchanged, 0 newly rejected, 2 skipped/);
      assert.match(output, /skipped record 4 \(CVE-2026-99991\)/);
      const db = await loadDataset(dataset);
      assert.ok(db.entries.has('CVE-2026-99990'));
      assert.ok(db.entries.size > 14000, 'the shipped dataset was the base');
      const text = inspectCommand(db, { kernel: '6.6.99' }).output;
      assert.match(text, /^Kernel 6\.6\.99: evaluated as upstream 6\.6\.99, branch 6\.6/);
      assert.match(text, /CVE-2026-99990 +5\.5 +fixed in 6\.6\.100/);
      const json = JSON.parse(inspectCommand(db, { kernel: '6.6.99', json: true }).output);
      assert.equal(json.kernel.upstream, '6.6.99');
      await assert.rejects(cveImportCommand({ file: join(dir, 'nope.json'), dataset }), {
        code: 'CVE_IMPORT_UNREADABLE',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
