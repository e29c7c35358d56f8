import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { moduleNameFor } from '@livegraft/protocol';
import { TestHost } from './helpers/cli.ts';
import { FakeServer, HOST_TOKEN, REGISTRATION_KEY } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';
import { enrolledHost, releaseHost } from './helpers/enrolled.ts';

describe('agent lifecycle against a fake kernel and a real HTTP server', () => {
  let server: FakeServer;
  let host: TestHost;

  before(async () => {
    server = await new FakeServer().start();
    host = new TestHost();
  });
  after(() => releaseHost(server, host));

  it('enroll writes a 0600 config and sends a valid enrol request', async () => {
    const bad = await host.cli(['enroll', '--insecure', '--server', server.url, '--key', 'wrong-key-123']);
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /^error \[REGISTRATION_KEY_INVALID\]/);
    const r = await host.cli([
      'enroll',
      '--insecure',
      '--server',
      `${server.url}/`,
      '--key',
      REGISTRATION_KEY,
      '--hostname',
      'web-1',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /enrolled as host host-1/);
    const config = JSON.parse(readFileSync(host.configPath, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config, { server: server.url, hostId: 'host-1', token: HOST_TOKEN });
    assert.equal(statSync(host.configPath).mode & 0o777, 0o600);
    assert.equal(server.enrolls[0]?.hostname, 'web-1');
    assert.equal(server.enrolls[0]?.kernel.id, host.kernel.id);
  });

  it('check exits 1 with nothing applied or available, 2 once a level is published', async () => {
    let r = await host.cli(['check']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /no patches applied/);
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    r = await host.cli(['check', '--json']);
    assert.equal(r.code, 2);
    const j = JSON.parse(r.stdout) as { latestLevel: number; appliedLevel: number };
    assert.equal(j.latestLevel, 1);
    assert.equal(j.appliedLevel, 0);
    const last = server.checkins.at(-1);
    assert.equal(last?.appliedLevel, 0);
    assert.equal(last?.state, 'unpatched');
    assert.equal(last?.uptimeSec, 1234.56);
  });

  it('update applies level 1, then check exits 0 and uname shows +lg1', async () => {
    const r = await host.cli(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied level 1 \(was 0\)/);
    const l1 = moduleNameFor(host.kernel.id, 1);
    assert.deepEqual(
      host.kernel.loads().map((p) => p.split('/').at(-1)),
      [`${l1}.ko`],
    );
    assert.equal(host.kernel.patchEnabled(l1), true);
    assert.equal((await host.cli(['check'])).code, 0);
    assert.equal((await host.cli(['uname'])).stdout, '6.1.0-99-amd64+lg1\n');
    // The post-apply check-in already told the server.
    assert.ok(server.checkins.some((c) => c.appliedLevel === 1 && c.state === 'patched' && c.lastApply?.ok === true));
  });

  it('update to level 2 replaces level 1 and rmmods the retired module', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 2));
    assert.equal((await host.cli(['check'])).code, 2);
    const r = await host.cli(['update', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      apply: { fromLevel: number; toLevel: number; ok: boolean };
      removed: string[];
    };
    const l1 = moduleNameFor(host.kernel.id, 1);
    const l2 = moduleNameFor(host.kernel.id, 2);
    assert.deepEqual(out.removed, [l1]);
    assert.equal(out.apply.fromLevel, 1);
    assert.equal(out.apply.toLevel, 2);
    assert.equal(host.kernel.moduleLoaded(l1), false);
    assert.equal(host.kernel.patchEnabled(l1), undefined);
    assert.equal(host.kernel.patchEnabled(l2), true);
    assert.deepEqual(host.kernel.unloads(), [l1]);
    assert.equal((await host.cli(['update'])).stdout, 'up to date at level 2\n');
  });

  it('status reports the kernel truth, fixes, cache, check age and last apply', async () => {
    host.kernel.now += 90_000;
    const r = await host.cli(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Record<string, unknown> & { lastApply: Record<string, unknown> };
    assert.equal(s['appliedLevel'], 2);
    assert.equal(s['effectiveRelease'], '6.1.0-99-amd64+lg2');
    assert.equal(s['patchName'], moduleNameFor(host.kernel.id, 2));
    assert.deepEqual(s['cves'], ['CVE-2025-1002']);
    assert.deepEqual(s['cachedLevels'], [1, 2]);
    assert.equal(s['lastCheckAgeSec'], 90);
    assert.equal(s['checkStale'], false);
    assert.equal(s['server'], server.url);
    assert.equal(s['inTransition'], false);
    assert.equal(s.lastApply['ok'], true);
    assert.equal(s.lastApply['action'], 'apply');
    const human = await host.cli(['status']);
    assert.match(human.stdout, /effective kernel: +6\.1\.0-99-amd64\+lg2/);
    assert.match(human.stdout, /fix-2: Fix number 2 \[CVE-2025-1002\]/);
    assert.match(human.stdout, /last check: .*\(90s ago\)/);
  });

  it('rollback goes to the highest cached level below, and holds the daemon there', async () => {
    const missing = await host.cli(['rollback', '--to', '7']);
    assert.equal(missing.code, 4);
    assert.match(missing.stderr, /error \[ROLLBACK_TARGET_MISSING\]/);
    const r = await host.cli(['rollback']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /rolled back level 1 \(was 2\)/);
    const l1 = moduleNameFor(host.kernel.id, 1);
    const l2 = moduleNameFor(host.kernel.id, 2);
    assert.equal(host.kernel.patchEnabled(l1), true);
    assert.equal(host.kernel.moduleLoaded(l2), false);
    // The daemon cycle sees level 2 available but respects the hold.
    const d = await host.cli(['run', '--once']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stderr, /held at 1 since rollback/);
    assert.equal(host.kernel.patchEnabled(l1), true);
    assert.equal((await host.cli(['status'])).code, 2);
    // A manual update lifts the hold.
    const u = await host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(host.kernel.patchEnabled(l2), true);
  });

  it('unload disables and removes everything; the original kernel is back', async () => {
    const r = await host.cli(['unload']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(host.kernel.disables, [moduleNameFor(host.kernel.id, 2)]);
    assert.equal(host.kernel.moduleLoaded(moduleNameFor(host.kernel.id, 2)), false);
    assert.equal((await host.cli(['uname'])).stdout, '6.1.0-99-amd64\n');
    const s = JSON.parse((await host.cli(['status', '--json'])).stdout) as { appliedLevel: number; hold: unknown };
    assert.equal(s.appliedLevel, 0);
    assert.ok(s.hold);
    assert.equal((await host.cli(['check'])).code, 2);
  });

  it('boot re-applies the recorded level from cache after a reboot, without a server', async () => {
    assert.equal((await host.cli(['update'])).code, 0);
    const offline = await new FakeServer().start();
    const url = offline.url;
    await offline.stop();
    writeFileSync(host.configPath, JSON.stringify({ server: url, hostId: 'host-1', token: HOST_TOKEN }));
    const k = host.reboot();
    const r = await host.cli(['boot']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied level 2 \(was 0\)/);
    assert.equal(k.patchEnabled(moduleNameFor(k.id, 2)), true);
    const again = await host.cli(['boot']);
    assert.equal(again.stdout, 'level 2 is already applied\n');
    assert.equal(k.loads().length, 1);
    // The server is gone: check fails with a code, and the patch stays.
    const c = await host.cli(['check']);
    assert.equal(c.code, 4);
    assert.match(c.stderr, /error \[SERVER_UNREACHABLE\]/);
    assert.equal(k.patchEnabled(moduleNameFor(k.id, 2)), true);
    writeFileSync(host.configPath, JSON.stringify({ server: server.url, hostId: 'host-1', token: HOST_TOKEN }));
  });

  it('boot on another kernel build does nothing', async () => {
    const k = host.reboot({ procVersion: 'Linux version 6.1.0-99-amd64 (other build) #2 SMP' });
    const r = await host.cli(['boot']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'nothing recorded to re-apply for this kernel\n');
    assert.deepEqual(k.calls, []);
  });
});

describe('check exit codes', () => {
  let server: FakeServer;
  let host: TestHost;
  before(async () => {
    ({ server, host } = await enrolledHost());
  });
  after(() => releaseHost(server, host));

  it('3 when the server answers 404 KERNEL_UNSUPPORTED, offline status agrees', async () => {
    server.mode = 'unsupported-404';
    const r = await host.cli(['check']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /kernel unsupported/);
    assert.equal((await host.cli(['status'])).code, 3);
    assert.equal((await host.cli(['update'])).code, 3);
  });

  it('3 when the server says kernelSupported=false', async () => {
    server.mode = 'unsupported-false';
    assert.equal((await host.cli(['check'])).code, 3);
  });

  it('4 with the server code on a 500; the error is reported at the next check-in', async () => {
    server.mode = 'error-500';
    const r = await host.cli(['check', '--json']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[INTERNAL\]: server: boom/);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'INTERNAL');
    server.mode = 'normal';
    assert.equal((await host.cli(['check'])).code, 1);
    assert.equal(server.checkins.at(-1)?.state, 'error');
  });

  it('64 on a bad command line', async () => {
    assert.equal((await host.cli(['rollback', '--to', 'x'])).code, 64);
    assert.equal((await host.cli(['frobnicate'])).code, 64);
    assert.equal((await host.cli(['--help'])).code, 0);
  });

  it('4 with CONFIG_MISSING when not enrolled, naming what to do', async () => {
    const other = new TestHost();
    try {
      const r = await other.cli(['check']);
      assert.equal(r.code, 4);
      assert.match(r.stderr, /error \[CONFIG_MISSING\].*enroll/);
      mkdirSync(dirname(other.configPath), { recursive: true });
      writeFileSync(other.configPath, JSON.stringify({ server: 'ftp://x', hostId: 'h' }));
    } catch (err) {
      other.cleanup();
      throw err;
    }
    const bad = await other.cli(['check']);
    other.cleanup();
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /^error \[VALIDATION_FAILED\]: invalid agent config .*agent\.json/);
    assert.match(bad.stderr, /\/server/);
    assert.match(bad.stderr, /token/);
  });

  it('status survives a corrupt state file', async () => {
    writeFileSync(join(host.stateDir, 'state.json'), '{not json');
    const r = await host.cli(['status', '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.match((JSON.parse(r.stdout) as { stateWarning: string }).stateWarning, /not valid JSON/);
  });
});
