import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kernelIdFromProcVersion, moduleNameFor, type PatchManifest } from '@livegraft/protocol';
import { runCli, tempDir } from './helpers.ts';

/** Debian's 6.1.0-50 kernel: upstream 6.1.176; CVE-2026-63824 is fixed upstream in 6.1.177. */
const PROC_50 =
  'Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-06-10)';
const CVE = 'CVE-2026-63824';
const SUBJECT = 'KEYS: fix overflow in keyctl_pkey_params_get_2()';

function manifestFor50(): PatchManifest {
  const id = kernelIdFromProcVersion(PROC_50);
  const name = moduleNameFor(id, 1);
  return {
    schema: 1,
    name,
    level: 1,
    replace: true,
    kernel: { id, release: '6.1.0-50-amd64', vermagic: '6.1.0-50-amd64 SMP preempt mod_unload modversions' },
    fixes: [
      {
        id: 'LG-CVE-2026-63824',
        title: SUBJECT,
        cves: [CVE],
        functions: [{ name: 'keyctl_pkey_params_get_2', object: 'vmlinux' }],
        kind: 'patch',
        commits: [{ id: '0f1e2d3c4b5a69788796a5b4c3d2e1f001234567', subject: SUBJECT }],
      },
    ],
    cves: [CVE],
    skipped: [{ id: 'LG-CVE-2026-63810', cves: ['CVE-2026-63810'], reason: 'the change is __init code only' }],
    module: { file: `${name}.ko`, sha256: '0'.repeat(64), size: 1 },
    builtAt: '2026-07-01T00:00:00.000Z',
    builder: 'test',
  };
}

describe('livegraft inspect with the applied level (real CVE data)', () => {
  let dir: string;
  let manifest: string;
  // A dataset path that does not exist: the shipped data is used.
  const base = (): string[] => ['inspect', '--kernel', PROC_50, '--dataset', join(dir, 'none.json.gz')];

  before(async () => {
    dir = await tempDir('inspect');
    manifest = join(dir, 'level1.json');
    await writeFile(manifest, JSON.stringify(manifestFor50()));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('shows CVE-2026-63824 open on 6.1.0-50 without the patch', async () => {
    const r = await runCli([...base(), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { kernel: { upstream: string }; affected: { id: string; fixedIn: unknown }[] };
    assert.equal(j.kernel.upstream, '6.1.176');
    assert.deepEqual(j.affected.find((c) => c.id === CVE)?.fixedIn, { version: '6.1.177', kind: 'stable' });
    const text = await runCli(base());
    assert.match(text.stdout, /^Kernel 6\.1\.0-50-amd64: evaluated as upstream 6\.1\.176 \(Debian 6\.1\.176-1\)/m);
  });

  it('and fixed live, naming the fix and its upstream commit, with the level applied', async () => {
    const plain = await runCli([...base(), '--json']);
    const total = (JSON.parse(plain.stdout) as { counts: { total: number } }).counts.total;

    const r = await runCli([...base(), '--applied', manifest]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^Live patch level 1 \\(livegraft_[0-9a-f]{12}_l1\\) fixes 1 of the ${total} CVEs`, 'm'),
    );
    assert.match(
      r.stdout,
      /^ {2}CVE-2026-63824 +7\.8 {2}fixed live by LG-CVE-2026-63824, patch from upstream 0f1e2d3c4b5a \("KEYS: fix overflow in keyctl_pkey_params_get_2\(\)"\)$/m,
    );
    assert.match(r.stdout, /^Not in the level: LG-CVE-2026-63810 \[CVE-2026-63810\]: the change is __init code only$/m);
    assert.match(r.stdout, new RegExp(`^${total - 1} CVEs remain open: `, 'm'));
    assert.doesNotMatch(r.stdout, /^ {2}CVE-2026-63824 .*fixed in 6\.1\.177/m);

    const j = await runCli([...base(), '--applied', manifest, '--json']);
    const json = JSON.parse(j.stdout) as {
      fixedLive: string[];
      open: { id: string }[];
      openCounts: { total: number };
      applied: { fixes: { commits: unknown[] }[] };
    };
    assert.deepEqual(json.fixedLive, [CVE]);
    assert.equal(json.openCounts.total, total - 1);
    assert.equal(
      json.open.some((c) => c.id === CVE),
      false,
    );
    assert.equal(json.applied.fixes[0]?.commits.length, 1);
    assert.ok(
      json.open.some((c) => c.id === 'CVE-2026-63810'),
      'a fix left out of the level fixes nothing',
    );
  });

  it('refuses a malformed manifest, naming the file and the field', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ ...manifestFor50(), skipped: [{ id: 'x', cves: [] }] }));
    const r = await runCli([...base(), '--applied', bad]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error \[VALIDATION_FAILED\]: invalid patch manifest \S+bad\.json: \/skipped\/0: must have required properties reason/,
    );
  });
});
