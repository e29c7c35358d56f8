import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { API_PREFIX, type EnrollResponse, type PatchManifest, type PatchRecord } from '@livegraft/protocol';
import {
  buildPatch,
  KERNEL_ID,
  runCli,
  startServerProcess,
  tempDir,
  type Patch,
  type RunningServer,
} from './helpers.ts';

const COMMIT = {
  id: '0f1e2d3c4b5a69788796a5b4c3d2e1f001234567',
  subject: 'KEYS: fix overflow in keyctl_pkey_params_get_2()',
};

/** A level built from an upstream patch, with a fix its build left out. */
function upstreamPatch(level: number): Patch {
  const p = buildPatch(KERNEL_ID, level);
  p.manifest.fixes = [
    {
      id: 'LG-CVE-2026-63824',
      title: COMMIT.subject,
      cves: ['CVE-2026-63824'],
      functions: [{ name: 'keyctl_pkey_params_get_2', object: 'vmlinux', sympos: 0 }],
      kind: 'patch',
      commits: [COMMIT],
    },
  ];
  p.manifest.cves = ['CVE-2026-63824'];
  p.manifest.skipped = [{ id: 'LG-CVE-2026-46266', cves: ['CVE-2026-46266'], reason: 'already fixed in 6.1.187' }];
  return p;
}

describe('livegraft publish with upstream-commit fix metadata', () => {
  let s: RunningServer;
  let dir: string;
  const admin = (): string[] => ['--server', s.url, '--token', s.adminToken];

  async function write(p: Patch, tweak: (m: PatchManifest) => void = () => {}): Promise<string> {
    const m = structuredClone(p.manifest);
    tweak(m);
    await writeFile(join(dir, m.module.file), p.bytes);
    const path = join(dir, `${m.name}.json`);
    await writeFile(path, JSON.stringify(m));
    return path;
  }

  before(async () => {
    dir = await tempDir('publish');
    s = await startServerProcess(dir);
  });
  after(async () => {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a malformed manifest before uploading anything, naming the field', async () => {
    const p = upstreamPatch(1);
    const bad: [(m: PatchManifest) => void, RegExp][] = [
      [
        (m) => Object.assign(m.fixes[0] ?? {}, { kind: 'binary' }),
        /\/fixes\/0\/kind: must be one of "patch", "source"/,
      ],
      [
        (m) => Object.assign(m.fixes[0] ?? {}, { commits: [{ id: 'HEAD', subject: 's' }] }),
        /\/fixes\/0\/commits\/0\/id/,
      ],
      [(m) => Object.assign(m, { skipped: [{ id: 'LG-X', cves: [], why: 'x' }] }), /\/skipped\/0/],
    ];
    for (const [tweak, field] of bad) {
      const r = await runCli(['publish', ...admin(), await write(p, tweak)]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error \[VALIDATION_FAILED\]: invalid patch manifest \S+\.json: /);
      assert.match(r.stderr, field);
    }
    const list = (await (
      await fetch(`${s.url}${API_PREFIX}/patches`, { headers: { authorization: `Bearer ${s.adminToken}` } })
    ).json()) as PatchRecord[];
    assert.deepEqual(list, []);
  });

  it('publishes a manifest with kind, commits, sympos and skipped, and prints each fix with its commit', async () => {
    const r = await runCli(['publish', ...admin(), await write(upstreamPatch(1))]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^published level 1 for 6\.1\.0-18-amd64 \(kernel [0-9a-f]{12}\): LG-CVE-2026-63824$/m);
    assert.match(
      r.stdout,
      /^ {4}patch from upstream 0f1e2d3c4b5a \("KEYS: fix overflow in keyctl_pkey_params_get_2\(\)"\)$/m,
    );
    assert.match(r.stdout, /^ {2}not built: LG-CVE-2026-46266 \[CVE-2026-46266\]: already fixed in 6\.1\.187$/m);

    const json = await runCli(['publish', ...admin(), '--json', await write(upstreamPatch(1))]);
    assert.equal(json.code, 0, json.stderr);
    const [rec] = JSON.parse(json.stdout) as PatchRecord[];
    assert.deepEqual(rec?.fixes[0]?.commits, [COMMIT]);
    assert.equal(rec?.fixes[0]?.kind, 'patch');
    assert.equal(rec?.skipped[0]?.reason, 'already fixed in 6.1.187');
  });

  it('hosts show lists the applied level fixes with their upstream commits', async () => {
    const key = (await readFile(join(dir, 'registration-key'), 'utf8')).trim();
    const kernel = { id: KERNEL_ID, release: '6.1.0-18-amd64', version: '#1', machine: 'x86_64', procVersion: 'x' };
    const enrolled = (await (
      await fetch(`${s.url}${API_PREFIX}/hosts/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ registrationKey: key, hostname: 'keys-1', kernel, agentVersion: '1' }),
      })
    ).json()) as EnrollResponse;
    const checkin = await fetch(`${s.url}${API_PREFIX}/hosts/checkin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${enrolled.token}` },
      body: JSON.stringify({
        kernel,
        appliedLevel: 1,
        state: 'patched',
        agentVersion: '1',
        uptimeSec: 1,
        clockSkewSec: -(3 * 86_400 + 2 * 3600),
      }),
    });
    assert.equal(checkin.status, 200, await checkin.text());
    const r = await runCli(['hosts', 'show', 'keys-1', ...admin()]);
    assert.match(r.stdout, /^clock: 3 d 2 h behind the server; fix the host's time sync \(NTP\)/m);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^level 1 \(livegraft_[0-9a-f]{12}_l1\) fixes live: CVE-2026-63824$/m);
    assert.match(
      r.stdout,
      /^ {2}LG-CVE-2026-63824: KEYS: fix overflow in keyctl_pkey_params_get_2\(\) \[CVE-2026-63824\]$/m,
    );
    assert.match(r.stdout, /^ {4}patch from upstream 0f1e2d3c4b5a /m);
  });
});
