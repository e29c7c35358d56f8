// The agent daemon applies the user-space levels its server offers, end to
// end: the real patch server records and publishes a level (signed into its
// TUF repository), the agent daemon (`livegraft-agent run`) learns it from its
// check-in, fetches it through TUF and patches a running multi-threaded
// process of Debian's real libc6 2.36 (extracted, run through its own loader),
// re-scans for a process started later from the same build, reports both in
// its check-ins, and restores them when an operator rolls the host back.
// The library is a copy whose build-id note is made unique to this test, so
// that no other process on the machine (another suite's targets) is touched;
// its code is Debian's, byte for byte. No VM; root only (the agent traces
// other processes).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { HostUserspaceLibrary, UserspaceLevelRecord, UserspaceManifest } from '@livegraft/protocol';
import {
  compile,
  ensureLibc,
  fileBuildId,
  Target,
  type ExtractedLibc,
} from '../../packages/agent/test/userspace/debian-libc.ts';
import { writeMarkerBundle } from '../../packages/agent/test/userspace/marker-bundle.ts';
import { TestHost } from '../../packages/agent/test/helpers/cli.ts';
import { startServer, type RunningServer } from './lib/server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const AGENT = path.join(ROOT, 'packages', 'agent');
const root = process.getuid?.() === 0;
/** Every wait for the daemon is bounded; on a loaded 2-core machine a pass may take a while. */
const WAIT_MS = 180_000;

/** Polls `probe` until it returns a value, or fails naming `what`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A copy of libc.so.6 whose NT_GNU_BUILD_ID says `id` (the code is unchanged). */
function relabelledLibc(libc: string, dir: string): { libDir: string; buildId: string } {
  const bytes = readFileSync(libc);
  const old = Buffer.from(fileBuildId(libc), 'hex');
  const at = bytes.indexOf(old);
  assert.ok(at > 0 && bytes.indexOf(old, at + 1) < 0, 'the build-id occurs once in the file');
  const fresh = randomBytes(old.length);
  fresh.copy(bytes, at);
  const libDir = path.join(dir, 'lib');
  mkdirSync(libDir, { recursive: true });
  writeFileSync(path.join(libDir, 'libc.so.6'), bytes);
  return { libDir, buildId: fresh.toString('hex') };
}

describe('the agent daemon applies the user-space levels its server offers', { skip: !root && 'needs root' }, () => {
  let dir: string;
  let libc: ExtractedLibc;
  let libDir: string;
  let buildId: string;
  let program: string;
  let server: RunningServer;
  const targets: Target[] = [];

  before(async () => {
    execFileSync('bash', [path.join(AGENT, 'native', 'build.sh')], { stdio: 'inherit' });
    libc = ensureLibc();
    dir = mkdtempSync(path.join(tmpdir(), 'lg-us-daemon-'));
    ({ libDir, buildId } = relabelledLibc(libc.libc, dir));
    program = compile(path.join(AGENT, 'test', 'userspace', 'fixtures', 'target.c'), path.join(dir, 'target'));
    mkdirSync(path.join(dir, 'server'));
    server = await startServer(path.join(dir, 'server'));
  });
  after(async () => {
    for (const t of targets) t.stop();
    await Promise.all(targets.map((t) => t.exit));
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${server.url}/api/v1${url}`, {
      method,
      headers: {
        authorization: `Bearer ${server.adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${url}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
  const start = async (threads: number): Promise<Target> => {
    const t = new Target(libc, program, [`threads=${threads}`], libDir);
    targets.push(t);
    await t.ready();
    return t;
  };
  /** Waits until the target's threads get the marker (patched) or the original value (restored) again. */
  const runs = (t: Target, which: 'orig' | 'marker') =>
    until(`process ${t.pid} to run the ${which === 'marker' ? 'patched' : 'original'} code`, async () => {
      const before = await t.stats();
      await new Promise((r) => setTimeout(r, 200));
      const s = await t.stats();
      assert.equal(s.other, 0, 'no call returned anything but the old or the new value');
      const other = which === 'marker' ? 'orig' : 'marker';
      return s[which] > before[which] && s[other] === before[other] ? s : undefined;
    });

  test('fetch through TUF, apply to running processes, re-scan, report, roll back when the server says so', async () => {
    // The level: abs() of this build returns a marker (its own code block, relocated against the library).
    const manifestPath = writeMarkerBundle(path.join(libDir, 'libc.so.6'), path.join(dir, 'level'));
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as UserspaceManifest;
    assert.equal(manifest.library.buildId, buildId);
    const object = readFileSync(path.join(dir, 'level', manifest.code.file));
    const recorded = await api<UserspaceLevelRecord>('POST', '/userspace/levels', {
      manifest,
      object: object.toString('base64'),
      publish: true,
    });
    assert.equal(recorded.published, true);

    const t = await start(2);
    await runs(t, 'orig');

    const host = new TestHost();
    let stop: (() => void) | undefined;
    let wake: (() => void) | undefined;
    let daemon: Promise<{ code: number; stderr: string }> | undefined;
    try {
      const enrolled = await host.cli([
        'enroll',
        '--insecure',
        '--server',
        server.url,
        '--key',
        server.registrationKey,
      ]);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      const hostId = (JSON.parse(readFileSync(host.configPath, 'utf8')) as { hostId: string }).hostId;
      daemon = host.cli(['run', '--interval', '3600'], {
        onSignals: (h) => {
          stop = h.stop;
          wake = h.wake;
          return () => undefined;
        },
      });

      // The first check-in's answer brings the level: fetched, installed, applied to the running process.
      await runs(t, 'marker');
      const lib = await until('the check-in to report the patched process', async () => {
        const libs = await api<HostUserspaceLibrary[]>('GET', `/hosts/${hostId}/userspace`);
        const l = libs.find((x) => x.buildId === buildId);
        return l !== undefined && l.level === 1 && l.patched >= 1 ? l : undefined;
      });
      assert.equal(lib.soname, 'libc.so.6');

      // A process started later from the same old build is patched by the daemon's re-scan.
      const late = await start(1);
      await runs(late, 'marker');

      const st = await host.cli(['status', '--json']);
      assert.ok(st.stdout.startsWith('{'), st.stderr);
      const status = JSON.parse(st.stdout) as {
        userspace: { buildId: string; level: number; patched: { pid: number }[] }[];
      };
      const mine = status.userspace.find((l) => l.buildId === buildId);
      assert.ok(mine !== undefined, 'status --json lists the library');
      assert.equal(mine.level, 1);
      assert.deepEqual(mine.patched.map((p) => p.pid).sort(), [t.pid, late.pid].sort());

      // The operator rolls this host back (pin 0): the next check-in restores both processes.
      await api('PUT', `/hosts/${hostId}/userspace-pins/${buildId}`, { level: 0 });
      wake?.();
      await runs(t, 'orig');
      await runs(late, 'orig');
      await until('the check-in to report the rollback', async () => {
        const libs = await api<HostUserspaceLibrary[]>('GET', `/hosts/${hostId}/userspace`);
        const l = libs.find((x) => x.buildId === buildId);
        return l !== undefined && l.level === 0 && l.patched === 0 && l.pinned === 0 ? l : undefined;
      });
      assert.equal(t.child.exitCode, null, 'the process never restarted');
      assert.equal(late.child.exitCode, null, 'the process never restarted');
    } finally {
      stop?.();
      const r = await daemon;
      host.cleanup();
      assert.equal(r?.code ?? 0, 0, r?.stderr);
    }
  });
});
