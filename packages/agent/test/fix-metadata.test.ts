import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestHost } from './helpers/cli.ts';
import type { FakeServer } from './helpers/fake-server.ts';
import { enrolledHost, releaseHost } from './helpers/enrolled.ts';
import { makePatch } from './helpers/patches.ts';

const COMMIT = '0f1e2d3c4b5a69788796a5b4c3d2e1f001234567';
const SUBJECT = 'KEYS: fix overflow in keyctl_pkey_params_get_2()';

describe('status and check name each fix: its kind, its upstream commit, and the fixes left out', () => {
  let server: FakeServer;
  let host: TestHost;

  before(async () => {
    ({ server, host } = await enrolledHost());
    server.publish(
      host.kernel.id,
      makePatch(host.kernel, 1, {
        manifest: (m) => {
          m.fixes = [
            {
              id: 'LG-CVE-2026-63824',
              title: SUBJECT,
              cves: ['CVE-2026-63824'],
              functions: [{ name: 'keyctl_pkey_params_get_2', object: 'vmlinux', sympos: 0 }],
              kind: 'patch',
              commits: [{ id: COMMIT, subject: SUBJECT }],
            },
            {
              id: 'fix-legacy',
              title: 'A hand-written fix from an older builder',
              cves: ['CVE-2025-1001'],
              functions: [{ name: 'cmdline_proc_show', object: 'vmlinux' }],
            },
          ];
          m.skipped = [
            {
              id: 'LG-CVE-2026-46266',
              cves: ['CVE-2026-46266'],
              reason: 'already fixed in 6.1.187 (this kernel build)',
            },
          ];
          // A manifest that still lists a skipped fix's CVE must not make it count as fixed live.
          m.cves = ['CVE-2025-1001', 'CVE-2026-46266', 'CVE-2026-63824'];
        },
      }),
    );
  });
  after(() => releaseHost(server, host));

  it('check lists the fixes the offered level brings, with commit and kind', async () => {
    const r = await host.cli(['check']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /^update available: level 1 \(applied: none\)$/m);
    assert.match(
      r.stdout,
      /^ {2}LG-CVE-2026-63824: KEYS: fix overflow in keyctl_pkey_params_get_2\(\) \[CVE-2026-63824\]$/m,
    );
    assert.match(
      r.stdout,
      /^ {4}patch from upstream 0f1e2d3c4b5a \("KEYS: fix overflow in keyctl_pkey_params_get_2\(\)"\)$/m,
    );
    assert.match(r.stdout, /^ {4}hand-written C$/m);
    assert.match(
      r.stdout,
      /^ {2}not built: LG-CVE-2026-46266 \[CVE-2026-46266\]: already fixed in 6\.1\.187 \(this kernel build\)$/m,
    );

    const j = JSON.parse((await host.cli(['check', '--json'])).stdout) as {
      latest: { fixes: { id: string; kind: string; commits: unknown[] }[]; skipped: { id: string }[] };
    };
    assert.deepEqual(
      j.latest.fixes.map((f) => [f.id, f.kind, f.commits]),
      [
        ['LG-CVE-2026-63824', 'patch', [{ id: COMMIT, subject: SUBJECT }]],
        ['fix-legacy', 'source', []],
      ],
    );
    assert.deepEqual(
      j.latest.skipped.map((s) => s.id),
      ['LG-CVE-2026-46266'],
    );
  });

  it('status (text and --json) shows the applied fixes, their commits and the skipped ones', async () => {
    const u = await host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);

    const text = await host.cli(['status']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^fixes: *$/m);
    assert.match(
      text.stdout,
      /^ {2}LG-CVE-2026-63824: KEYS: fix overflow in keyctl_pkey_params_get_2\(\) \[CVE-2026-63824\]$/m,
    );
    assert.match(
      text.stdout,
      /^ {4}patch from upstream 0f1e2d3c4b5a \("KEYS: fix overflow in keyctl_pkey_params_get_2\(\)"\)$/m,
    );
    assert.match(
      text.stdout,
      /^ {2}fix-legacy: A hand-written fix from an older builder \[CVE-2025-1001\]\n {4}hand-written C$/m,
    );
    assert.match(text.stdout, /^ {2}not built: LG-CVE-2026-46266 \[CVE-2026-46266\]: already fixed in 6\.1\.187/m);
    assert.match(text.stdout, /^CVEs: +CVE-2025-1001, CVE-2026-63824$/m);

    const json = await host.cli(['status', '--json']);
    const s = JSON.parse(json.stdout) as {
      fixes: { id: string; kind: string; commits: { id?: string; subject: string }[] }[];
      skipped: { id: string; cves: string[]; reason: string }[];
      cves: string[];
    };
    assert.deepEqual(s.fixes[0], {
      id: 'LG-CVE-2026-63824',
      title: SUBJECT,
      cves: ['CVE-2026-63824'],
      kind: 'patch',
      commits: [{ id: COMMIT, subject: SUBJECT }],
    });
    assert.equal(s.fixes[1]?.kind, 'source');
    assert.deepEqual(s.skipped, [
      { id: 'LG-CVE-2026-46266', cves: ['CVE-2026-46266'], reason: 'already fixed in 6.1.187 (this kernel build)' },
    ]);
    assert.deepEqual(s.cves, ['CVE-2025-1001', 'CVE-2026-63824']);
  });
});
