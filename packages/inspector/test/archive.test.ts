import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { archiveKernelSeries, fetchArchiveChangelogs, type ArchiveChangelog } from '../src/archive.ts';
import { loadDataset, loadDefaultDataset } from '../src/dataset.ts';
import { compareDebianVersions } from '../src/debian.ts';
import { unknownDebianVersion } from '../src/freshness.ts';
import { cveUpdateCommand } from '../src/update.ts';

/**
 * Against the real Debian archive this machine's apt is configured for: the current kernel
 * changelogs are downloaded and read. Skipped only when the archive cannot be reached.
 */

/** Why the archive is unreachable, or undefined when it answers. */
async function unreachable(): Promise<string | undefined> {
  const series = await archiveKernelSeries();
  const where = series[0]?.archive ?? '';
  const [uri = '', suiteComponent = ''] = where.split(' ');
  const url = `${uri}/dists/${suiteComponent.split('/')[0]}/InRelease`;
  try {
    const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(20_000) });
    return res.ok ? undefined : `${url} answered ${res.status}`;
  } catch (err) {
    return `${url}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`;
  }
}

describe('the Debian archive (real)', { timeout: 20 * 60_000 }, () => {
  let fetched: ArchiveChangelog[] = [];

  it('gives the current changelog of each kernel series, consistent with the shipped one', async (t) => {
    const why = await unreachable();
    if (why !== undefined) {
      console.log(`# skipping: the Debian archive is unreachable: ${why}`);
      t.skip(`the Debian archive is unreachable: ${why}`);
      return;
    }
    const series = await archiveKernelSeries();
    fetched = await fetchArchiveChangelogs({ log: (l) => t.diagnostic(l) });
    assert.deepEqual(
      fetched.map((f) => f.changelog.packageVersion),
      series.map((s) => s.version),
    );
    const six1 = fetched.find((f) => f.changelog.package === 'linux-config-6.1')?.changelog;
    assert.ok(six1, `no 6.1 kernel in the archive: ${series.map((s) => s.package).join(', ')}`);
    t.diagnostic(`current 6.1 kernel: ${six1.packageVersion}, ${six1.entries.length} uploads`);

    // The shipped changelog is a past state of the same file: every upload it lists is listed
    // the same way now, with the same CVEs.
    const shipped = (await loadDefaultDataset()).debian.changelogs.find((c) => c.packageVersion.startsWith('6.1.'));
    assert.ok(shipped);
    assert.ok(compareDebianVersions(six1.packageVersion, shipped.packageVersion) >= 0);
    const now = new Map(six1.entries.map((e) => [e.version, e.cves]));
    for (const e of shipped.entries) assert.deepEqual(now.get(e.version), e.cves, `upload ${e.version}`);
    // The newest upload's ABI comes from the archive's linux-support package.
    const abi = Object.entries(six1.abi).find(([, v]) => v.includes(six1.packageVersion))?.[0];
    assert.match(abi ?? '', /^6\.1\.0-\d+$/);
  });

  it('cve update, reading the archive itself, makes the current security kernel known to the data', async (t) => {
    if (fetched.length === 0) {
      t.skip('the archive was not read (see above)');
      return;
    }
    const six1 = fetched.find((f) => f.changelog.package === 'linux-config-6.1')?.changelog;
    assert.ok(six1);
    const proc = `Linux version 6.1.0-99-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian ${six1.packageVersion} (2026-11-26)`;
    const shipped = await loadDefaultDataset();
    const dir = await mkdtemp(join(tmpdir(), 'cve-archive-'));
    try {
      const path = join(dir, 'cves.json.gz');
      const { output } = await cveUpdateCommand({ dataset: path }, { log: (l) => t.diagnostic(l) });
      t.diagnostic(output);
      const db = await loadDataset(path);
      assert.equal(unknownDebianVersion(db, proc), null);
      const known = shipped.debian.fixesFor(six1.packageVersion) !== undefined;
      t.diagnostic(`the shipped data ${known ? 'knows' : 'does not know'} ${six1.packageVersion}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
