import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { moduleNameFor } from '@livegraft/protocol';
import type { TestHost } from './helpers/cli.ts';
import type { FakeServer } from './helpers/fake-server.ts';
import { makePatch, type PatchTweaks } from './helpers/patches.ts';
import { enrolledHost, releaseHost } from './helpers/enrolled.ts';

const OTHER_KERNEL = 'f'.repeat(64);

/** Each case: a level-2 module that must be refused, and the code it must be refused with. */
const cases: { what: string; code: string; tweaks: PatchTweaks }[] = [
  {
    what: 'a module built for another kernel',
    code: 'KERNEL_MISMATCH',
    tweaks: {
      manifest: (m) => {
        m.kernel.id = OTHER_KERNEL;
        m.name = moduleNameFor(OTHER_KERNEL, 2);
        m.module.file = `${m.name}.ko`;
      },
    },
  },
  { what: 'a corrupt module (one byte flipped)', code: 'MODULE_HASH_MISMATCH', tweaks: { bytes: (b) => flip(b, 70) } },
  {
    what: 'a truncated ELF the manifest agrees with',
    code: 'MODULE_MALFORMED',
    tweaks: { describeBytes: (b) => b.subarray(0, b.length - 40) },
  },
  { what: 'a module without livepatch=Y', code: 'MODULE_NOT_LIVEPATCH', tweaks: { modinfo: { livepatch: undefined } } },
  {
    what: 'a manifest name that does not match the level',
    code: 'MODULE_NAME_MISMATCH',
    tweaks: {
      manifest: (m) => {
        m.name = 'livegraft_000000000000_l2';
        m.module.file = 'livegraft_000000000000_l2.ko';
      },
    },
  },
  { what: 'a modinfo name that differs', code: 'MODULE_NAME_MISMATCH', tweaks: { modinfo: { name: 'evil_module' } } },
  {
    what: 'a vermagic for another release',
    code: 'VERMAGIC_MISMATCH',
    tweaks: { modinfo: { vermagic: '6.1.0-98-amd64 SMP preempt mod_unload modversions ' } },
  },
  { what: 'a modinfo level that differs', code: 'MANIFEST_MISMATCH', tweaks: { modinfo: { livegraft_level: '3' } } },
  {
    what: 'a modinfo kernel id that differs',
    code: 'MANIFEST_MISMATCH',
    tweaks: { modinfo: { livegraft_kernel_id: OTHER_KERNEL } },
  },
];

function flip(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b);
  c[at] = (c[at] ?? 0) ^ 0xff;
  return c;
}

describe('refused modules never reach the kernel', () => {
  let server: FakeServer;
  let host: TestHost;

  before(async () => {
    ({ server, host } = await enrolledHost());
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    assert.equal((await host.cli(['update'])).code, 0);
  });
  after(() => releaseHost(server, host));
  beforeEach(() => {
    // Only level 1 stays published; each case publishes its own level 2.
    server.published.set(host.kernel.id, (server.published.get(host.kernel.id) ?? []).slice(0, 1));
    server.oversizeBy = 0;
  });

  const l2Cache = (): string => join(host.stateDir, 'cache', host.kernel.id, '2');

  async function expectRefused(code: string): Promise<void> {
    const loadsBefore = host.kernel.loads().length;
    const r = await host.cli(['update', '--json']);
    assert.equal(r.code, 4, r.stdout);
    assert.match(r.stderr, new RegExp(`^error \\[${code}\\]: `));
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, code);
    assert.equal(host.kernel.loads().length, loadsBefore, 'nothing was loaded');
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)), true, 'level 1 still applied');
    assert.equal(existsSync(join(l2Cache(), 'manifest.json')), false, 'nothing cached');
    const s = JSON.parse((await host.cli(['status', '--json'])).stdout) as {
      appliedLevel: number;
      lastApply: { ok: boolean; code: string; toLevel: number };
      lastError: { code: string };
    };
    assert.equal(s.appliedLevel, 1);
    assert.equal(s.lastApply.ok, false);
    assert.equal(s.lastApply.code, code);
    assert.equal(s.lastApply.toLevel, 2);
    assert.equal(s.lastError.code, code);
  }

  for (const c of cases) {
    it(`refuses ${c.what} with ${c.code}`, async () => {
      server.publish(host.kernel.id, makePatch(host.kernel, 2, c.tweaks));
      await expectRefused(c.code);
    });
  }

  it('aborts a download that runs past the manifest size (DOWNLOAD_TOO_LARGE)', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 2));
    server.oversizeBy = 256 * 1024;
    await expectRefused('DOWNLOAD_TOO_LARGE');
  });

  it('the daemon does not retry a refused module; a manual update does', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 2, { modinfo: { livepatch: undefined } }));
    await expectRefused('MODULE_NOT_LIVEPATCH');
    const downloads = server.downloads.length;
    const d = await host.cli(['run', '--once']);
    assert.equal(d.code, 4);
    assert.match(d.stderr, /failed before with MODULE_NOT_LIVEPATCH; not retrying automatically/);
    assert.equal(server.downloads.length, downloads);
    await expectRefused('MODULE_NOT_LIVEPATCH');
    assert.equal(server.downloads.length, downloads + 1);
  });

  it('a kernel load error is mapped to a stable code and the previous level stays', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 2));
    host.kernel.failNextLoad = "insmod: can't insert 'x.ko': Key was rejected by service";
    const r = await host.cli(['update']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[KERNEL_REJECTED_SIGNATURE\]: .*does not trust the module's signing key/);
    assert.match(r.stderr, /tool said: insmod: can't insert 'x.ko': Key was rejected by service/);
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)), true);
    // The module verified, so it is cached: the failure was the kernel's, not the bytes'.
    assert.equal(existsSync(join(l2Cache(), 'manifest.json')), true);
  });
});

describe('stalled transition', () => {
  let server: FakeServer;
  let host: TestHost;
  before(async () => {
    ({ server, host } = await enrolledHost());
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    assert.equal((await host.cli(['update'])).code, 0);
  });
  after(() => releaseHost(server, host));

  it('is reversed (enabled=0), the module removed, TRANSITION_STALLED names the blocker; level 1 stays', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 2));
    host.kernel.stallTransitions = true;
    const started = host.kernel.now;
    const r = await host.cli(['update']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[TRANSITION_STALLED\]: /m);
    assert.match(r.stderr, /pid 4242 \(kworker\/busy\) patch_state=0/);
    assert.match(r.stderr, /cmdline_proc_show\+0x10\/0x40/);
    const l1 = moduleNameFor(host.kernel.id, 1);
    const l2 = moduleNameFor(host.kernel.id, 2);
    assert.deepEqual(host.kernel.disables, [l2]);
    assert.equal(host.kernel.moduleLoaded(l2), false);
    assert.deepEqual(host.kernel.unloads(), [l2]);
    assert.equal(host.kernel.patchEnabled(l1), true);
    assert.equal((await host.cli(['uname'])).stdout, '6.1.0-99-amd64+lg1\n');
    // It waited the default 75 s transition timeout (five of the kernel's 15 s signal rounds), not forever.
    const waited = host.kernel.now - started;
    assert.ok(waited >= 75_000 && waited < 80_000, `waited ${waited} ms`);
  });

  it('honours transitionTimeoutSec from the config', async () => {
    const { writeFileSync, readFileSync } = await import('node:fs');
    const config = JSON.parse(readFileSync(host.configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(host.configPath, JSON.stringify({ ...config, transitionTimeoutSec: 5 }));
    const started = host.kernel.now;
    const r = await host.cli(['update']);
    assert.match(r.stderr, /TRANSITION_STALLED/);
    const waited = host.kernel.now - started;
    assert.ok(waited >= 5_000 && waited < 10_000, `waited ${waited} ms`);
  });

  it('if the reverse stalls too, it is left alone and reported as TRANSITION_REVERSE_STALLED', async () => {
    host.kernel.stallReverse = true;
    const r = await host.cli(['update']);
    assert.match(r.stderr, /^error \[TRANSITION_REVERSE_STALLED\]: .*plan a reboot/ms);
    const s = await host.cli(['status', '--json']);
    assert.equal((JSON.parse(s.stdout) as { inTransition: boolean }).inTransition, true);
    assert.equal(server.checkins.at(-1)?.state, 'needs-attention');
  });
});
