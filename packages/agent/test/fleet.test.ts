import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
  closeSync,
  constants,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { moduleNameFor, type CheckinRequest, type DesiredLevel } from '@livegraft/protocol';
import { systemClock, type Clock } from '../src/lib/clock.ts';
import {
  KernelEventQueue,
  KmsgFollower,
  classifyKernelLine,
  parseKmsgRecord,
  type KmsgRecord,
} from '../src/kernel/kmsg-watch.ts';
import { silentLogger } from '../src/lib/log.ts';
import { PUSH_RETRY_BASE_MS, PUSH_RETRY_MAX_MS, pushRetryMs } from '../src/delivery/push.ts';
import { MAX_SSE_EVENT_BYTES, MAX_SSE_LINE_BYTES, SseParser } from '../src/delivery/sse.ts';
import type { TestHost } from './helpers/cli.ts';
import { type CliRun } from './helpers/cli.ts';
import type { FakeKernel } from './helpers/fake-kernel.ts';
import type { FakeServer } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';
import { enrolledHost, releaseHost } from './helpers/enrolled.ts';

/** Polls `ok` every 10 ms for up to `ms`; returns whether it became true. */
async function until(ok: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (ok()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return ok();
}

/**
 * Kernel waits run on the fake kernel's clock (instant); the daemon's own
 * sleeps (with a signal) take real time, so a test drives it like a real host.
 */
function daemonClock(kernel: () => FakeKernel): Clock {
  return {
    now: () => kernel().now,
    sleep: (ms, signal) => (signal === undefined ? kernel().clock.sleep(ms) : systemClock.sleep(ms, signal)),
  };
}

describe('SSE parser', () => {
  it('splits events on blank lines, joins data lines, keeps id and retry, skips comments', () => {
    const p = new SseParser();
    const out = p.feed(': hb\n\nretry: 2500\nid: 7\nevent: desired\ndata: {"a":\ndata: 1}\n\n');
    assert.deepEqual(out, [{ event: 'desired', data: '{"a":\n1}', id: '7' }]);
    assert.equal(p.retryMs, 2500);
    assert.equal(p.lastEventId, '7');
  });

  it('handles CRLF and CR line ends split across chunks', () => {
    const p = new SseParser();
    const text = 'event: desired\r\ndata: x\r\n\r\ndata: y\r\rdata: z\n\n';
    const events = [...text].flatMap((c) => p.feed(c));
    assert.deepEqual(
      events.map((e) => [e.event, e.data]),
      [
        ['desired', 'x'],
        ['message', 'y'],
        ['message', 'z'],
      ],
    );
  });

  it('refuses a line or an event past its cap, and starts clean after reset', () => {
    const p = new SseParser();
    assert.throws(() => p.feed(`data: ${'x'.repeat(MAX_SSE_LINE_BYTES)}`), /PUSH_STREAM_INVALID|longer than/);
    p.reset();
    const line = `data: ${'y'.repeat(MAX_SSE_LINE_BYTES - 10)}\n`;
    assert.throws(() => {
      for (let i = 0; i <= MAX_SSE_EVENT_BYTES / MAX_SSE_LINE_BYTES; i++) p.feed(line);
    }, /event larger than/);
    p.reset();
    assert.deepEqual(p.feed('data: ok\n\n'), [{ event: 'message', data: 'ok' }]);
  });

  it('reconnect delays grow, are jittered, honour retry: and stay bounded', () => {
    assert.equal(
      pushRetryMs(1, undefined, () => 1),
      PUSH_RETRY_BASE_MS,
    );
    assert.equal(
      pushRetryMs(1, 10_000, () => 1),
      10_000,
    );
    assert.equal(
      pushRetryMs(1, 10_000, () => 0),
      5_000,
    );
    assert.equal(
      pushRetryMs(3, 10_000, () => 1),
      40_000,
    );
    assert.equal(
      pushRetryMs(50, undefined, () => 1),
      PUSH_RETRY_MAX_MS,
    );
    assert.ok(pushRetryMs(50, 10 ** 9, () => 1) <= 10 * 60_000);
    assert.equal(
      pushRetryMs(1, 5, () => 1),
      PUSH_RETRY_BASE_MS,
      'a tiny retry: cannot make a tight loop',
    );
  });
});

describe('kernel log records', () => {
  it('parses /dev/kmsg records and classifies warnings, oopses, BUGs and panics', () => {
    assert.deepEqual(parseKmsgRecord('4,812,5000000,-;WARNING: CPU: 1 PID: 9 at mm/x.c:1 f+0x1/0x2'), {
      text: 'WARNING: CPU: 1 PID: 9 at mm/x.c:1 f+0x1/0x2',
      facility: 0,
      level: 4,
      seq: 812,
      usec: 5000000,
    });
    assert.equal(parseKmsgRecord(' SUBSYSTEM=pci'), undefined);
    assert.equal(parseKmsgRecord('14,3,1,-;hello')?.facility, 1);
    assert.equal(classifyKernelLine('WARNING: CPU: 1 PID: 9 at mm/x.c:1'), 'warn');
    assert.equal(classifyKernelLine('BUG: unable to handle page fault for address: 0000'), 'bug');
    assert.equal(classifyKernelLine('kernel BUG at mm/slub.c:42!'), 'bug');
    assert.equal(classifyKernelLine('Oops: 0002 [#1] PREEMPT SMP NOPTI'), 'oops');
    assert.equal(classifyKernelLine('general protection fault, probably for non-canonical address'), 'oops');
    assert.equal(classifyKernelLine('Kernel panic - not syncing: Fatal exception'), 'panic');
    assert.equal(classifyKernelLine("livepatch: 'x': patching complete"), undefined);
    assert.equal(classifyKernelLine('livepatch: failed to register patch x'), 'livepatch');
    assert.equal(classifyKernelLine('e1000e: eth0 NIC Link is Up'), undefined);
  });

  it('the event queue is bounded and acks exactly what was sent', () => {
    const q = new KernelEventQueue();
    for (let i = 0; i < 105; i++) q.add('warn', `w${i}`, new Date(0).toISOString());
    assert.equal(q.pending().length, 100);
    assert.equal(q.dropped, 5);
    assert.equal(q.pending()[0]?.message, 'w5');
    const sent = q.pending().slice(0, 60);
    q.add('oops', 'late', new Date(0).toISOString());
    q.ack(sent);
    assert.equal(q.pending().length, 41);
    assert.equal(q.pending().at(-1)?.message, 'late');
  });

  it('follows a FIFO without blocking the event loop, skipping nothing written after start', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'livegraft-kmsg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const fifo = join(dir, 'kmsg');
    execFileSync('mkfifo', [fifo]);
    const seen: KmsgRecord[] = [];
    const stop = new AbortController();
    const running = new KmsgFollower({
      path: fifo,
      timers: systemClock,
      log: silentLogger,
      onRecord: (r) => seen.push(r),
      pollMs: 20,
    }).run(stop.signal);
    await new Promise((r) => setTimeout(r, 50));
    const w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(w, '4,10,100,-;WARNING: first\n4,11,200,-;sec');
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    await new Promise((r) => setTimeout(r, 100));
    writeSync(w, 'ond part\n4,11,200,-;duplicate seq is dropped\n');
    assert.ok(await until(() => seen.length >= 2, 2000), `records: ${JSON.stringify(seen)}`);
    clearInterval(ticker);
    closeSync(w);
    stop.abort();
    await running;
    assert.deepEqual(
      seen.map((r) => r.text),
      ['WARNING: first', 'second part'],
    );
    assert.ok(ticks > 5, 'the event loop kept running while following');
  });

  it('skips what a plain file already holds, then delivers appended records', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'livegraft-kmsg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'kmsg');
    writeFileSync(file, '4,1,1,-;WARNING: old one\n'.repeat(3));
    const seen: string[] = [];
    const stop = new AbortController();
    const running = new KmsgFollower({
      path: file,
      timers: systemClock,
      log: silentLogger,
      onRecord: (r) => seen.push(r.text),
      pollMs: 20,
    }).run(stop.signal);
    await new Promise((r) => setTimeout(r, 60));
    appendFileSync(file, '4,2,2,-;BUG: new one\n');
    assert.ok(await until(() => seen.length > 0, 2000));
    stop.abort();
    await running;
    assert.deepEqual(seen, ['BUG: new one']);
  });
});

describe('run with push, kernel log and scanner files', () => {
  let server: FakeServer;
  let host: TestHost;
  let signals: { wake: () => void; stop: () => void } | undefined;
  let running: Promise<CliRun> | undefined;

  const desired = (level: number): DesiredLevel => ({
    level,
    reason: 'feed',
    allowDowngrade: false,
    feed: 'production',
  });
  const lastCheckin = (): CheckinRequest | undefined => server.checkins.at(-1);
  const start = (): void => {
    running = host.cli(['run'], {
      clock: daemonClock(() => host.kernel),
      onSignals: (h) => {
        signals = h;
        return () => (signals = undefined);
      },
    });
  };
  const stopDaemon = async (): Promise<CliRun | undefined> => {
    signals?.stop();
    const r = await running;
    running = undefined;
    return r;
  };

  beforeEach(async () => {
    ({ server, host } = await enrolledHost());
    // A config with tags, as an admin would write it.
    const config = JSON.parse(readFileSync(host.configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(host.configPath, JSON.stringify({ ...config, tags: ['web', 'dc=par1'] }));
  });
  afterEach(async () => {
    await stopDaemon();
    await server.stop();
    host.cleanup();
  });

  it('applies within a second of a pushed event, then writes the scanner files and reports timings', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    start();
    assert.ok(await until(() => server.streams.size === 1 && server.checkins.length >= 1, 5000), 'connected');
    assert.ok(await until(() => host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)) === true, 2000));
    assert.ok(await until(() => lastCheckin()?.appliedLevel === 1, 2000));
    const first = server.checkins.length;
    // Level 2 appears; the periodic check-in is 10 minutes away, so only the push can bring it in time.
    server.publish(host.kernel.id, makePatch(host.kernel, 2));
    server.desired = desired(2);
    const pushedAt = Date.now();
    server.push({ kernelId: host.kernel.id, desired: desired(2), spreadMs: 0, at: new Date().toISOString() });
    assert.ok(
      await until(() => host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 2)) === true, 1000),
      'applied level 2 within a second of the push',
    );
    const tookMs = Date.now() - pushedAt;
    assert.ok(tookMs < 1000, `took ${tookMs} ms`);
    assert.ok(await until(() => lastCheckin()?.appliedLevel === 2, 1000), 'reported at once');
    const report = lastCheckin();
    // The pushed level stands in for the check-in before the apply: one request, the report after it.
    assert.equal(server.checkins.length, first + 1);
    assert.deepEqual(report?.tags, ['web', 'dc=par1']);
    assert.equal(report?.patchState?.module, moduleNameFor(host.kernel.id, 2));
    assert.equal(report?.patchState?.enabled, true);
    assert.equal(report?.patchState?.transition, false);
    assert.equal(report?.lastApply?.toLevel, 2);
    const phases = report?.lastApply?.phasesMs ?? {};
    for (const p of ['fetch', 'verify', 'load', 'transition', 'cleanup']) assert.equal(typeof phases[p], 'number', p);
    assert.equal(report?.agentVersion.length !== 0, true);
    assert.ok((report?.uptimeSec ?? 0) > 0);

    // Scanner files follow the kernel.
    const read = (f: string): string => readFileSync(join(host.stateDir, f), 'utf8');
    assert.equal(read('effective-version'), `${host.kernel.release}+lg2\n`);
    assert.equal(read('cvelist'), 'CVE-2025-1002\n');
    const scanner = JSON.parse(read('scanner.json')) as Record<string, unknown>;
    assert.deepEqual(scanner['kernel'], { release: host.kernel.release, id: host.kernel.id });
    assert.equal(scanner['level'], 2);
    assert.equal(scanner['effectiveRelease'], `${host.kernel.release}+lg2`);
    assert.deepEqual(scanner['fixes'], [{ id: 'fix-2', title: 'Fix number 2', cves: ['CVE-2025-1002'] }]);
    assert.deepEqual(scanner['cves'], ['CVE-2025-1002']);
    assert.equal(typeof scanner['appliedAt'], 'string');
    const mode = execFileSync('stat', ['-c', '%a', join(host.stateDir, 'cvelist')])
      .toString()
      .trim();
    assert.equal(mode, '644');

    // The same desired level pushed again (a reconnect's first event) does not cause another cycle.
    const checkins = server.checkins.length;
    server.push({ kernelId: host.kernel.id, desired: desired(2), spreadMs: 0, at: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(server.checkins.length, checkins);

    await stopDaemon();
    const u = await host.cli(['unload']);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(read('effective-version'), `${host.kernel.release}\n`);
    assert.equal(read('cvelist'), '');
    assert.equal((JSON.parse(read('scanner.json')) as { level: number }).level, 0);
  });

  it('waits the event spread, then checks; reconnects with Last-Event-ID after the server drops the stream', async () => {
    server.eventIds = true;
    start();
    assert.ok(await until(() => server.streams.size === 1 && server.checkins.length >= 1, 5000));
    const before = server.checkins.length;
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    server.desired = desired(1);
    server.push({ kernelId: host.kernel.id, desired: desired(1), spreadMs: 400, at: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(server.checkins.length, before, 'still inside the spread');
    assert.ok(await until(() => host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)) === true, 1500));

    for (const res of server.streams) res.end();
    // retry: is 100 ms, below the floor of 1 s: reconnect within 0.5..1 s.
    assert.ok(await until(() => server.streamRequests.length === 2 && server.streams.size === 1, 2500), 'reconnected');
    assert.equal(server.streamRequests[1]?.lastEventId, '1');
  });

  it('a revoked token stops the stream for good and status says so', async () => {
    start();
    assert.ok(await until(() => server.streams.size === 1, 5000));
    server.revoke();
    assert.ok(await until(() => server.streamRequests.some((r) => r.status === 401), 2500), 'tried once more');
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(server.streamRequests.filter((r) => r.status === 401).length, 1, 'no reconnect loop after a 401');
    const s = JSON.parse((await host.cli(['status', '--json'])).stdout) as { credentialRevoked: { message: string } };
    assert.match(s.credentialRevoked.message, /credential revoked/);
    assert.match((await host.cli(['status'])).stdout, /CREDENTIAL REVOKED/);
  });

  it('reports a tripwire line from the kernel log, and a WARNING rides the next check-in at once', async () => {
    // Old records are not sent again.
    appendFileSync(
      host.kernel.kmsg,
      '4,2,3000000,-;livegraft: tripwire cve=CVE-2024-0001 fix=LG-OLD level=1 pid=1 uid=0 comm=old\n',
    );
    start();
    assert.ok(await until(() => server.checkins.length >= 1, 5000));
    await new Promise((r) => setTimeout(r, 700));
    appendFileSync(
      host.kernel.kmsg,
      '4,3,5000000,-;livegraft: tripwire cve=CVE-2024-1086 fix=LG-DEMO-0003 level=3 pid=812 uid=1000 comm=exploit\n' +
        // A user-space write (facility 1) must not fake a hit.
        '12,4,5100000,-;livegraft: tripwire cve=CVE-2024-9999 fix=LG-FAKE level=3 pid=1 uid=0 comm=fake\n',
    );
    assert.ok(await until(() => server.tripwires.length >= 1, 3000), 'tripwire POST received');
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(server.tripwires.length, 1);
    const hit = server.tripwires[0];
    assert.equal(hit?.cve, 'CVE-2024-1086');
    assert.equal(hit?.uid, 1000);
    assert.equal(hit?.comm, 'exploit');
    assert.equal(hit?.pid, 812);
    assert.equal(hit?.fixId, 'LG-DEMO-0003');
    assert.equal(hit?.level, 3);
    assert.equal(hit?.kernelTime, 5);
    assert.ok(Number.isFinite(Date.parse(hit?.at ?? '')));

    const checkins = server.checkins.length;
    appendFileSync(host.kernel.kmsg, '4,5,6000000,-;WARNING: CPU: 0 PID: 812 at kernel/foo.c:10 bar+0x1/0x10\n');
    assert.ok(await until(() => server.checkins.length > checkins, 3000), 'an early check-in');
    const sent = server.checkins.find((c) => (c.kernelEvents ?? []).length > 0);
    assert.equal(sent?.kernelEvents?.[0]?.kind, 'warn');
    assert.match(sent?.kernelEvents?.[0]?.message ?? '', /^WARNING: CPU: 0 PID: 812/);
    // Sent once: acknowledged by the successful check-in.
    signals?.wake();
    const n = server.checkins.length;
    assert.ok(await until(() => server.checkins.length > n, 3000));
    assert.equal(lastCheckin()?.kernelEvents, undefined);
  });
});

describe('check-in after a stalled transition', () => {
  let server: FakeServer;
  let host: TestHost;
  before(async () => {
    ({ server, host } = await enrolledHost());
  });
  after(() => releaseHost(server, host));

  it('reports the tasks that blocked it until the next good apply', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    host.kernel.stallTransitions = true;
    const r = await host.cli(['update']);
    assert.match(r.stderr, /TRANSITION_STALLED/);
    assert.ok(existsSync(join(host.stateDir, 'effective-version')));
    const c = await host.cli(['check']);
    assert.equal(c.code, 2, c.stderr);
    const report = server.checkins.at(-1);
    assert.deepEqual(
      report?.blockingTasks?.map((t) => [t.pid, t.comm]),
      [[4242, 'kworker/busy']],
    );
    assert.match(report?.blockingTasks?.[0]?.stack ?? '', /cmdline_proc_show/);
    assert.ok((report?.lastApply?.phasesMs?.['transition'] ?? 0) >= 75_000, 'the phase it stalled in is timed');
    assert.match((await host.cli(['status'])).stdout, /blocking tasks:\s+4242 \(kworker\/busy\)/);
    host.kernel.stallTransitions = false;
    assert.equal((await host.cli(['update'])).code, 0);
    await host.cli(['check']);
    assert.equal(server.checkins.at(-1)?.blockingTasks, undefined);
  });
});

describe('check with an ignore-list set on the server', () => {
  let server: FakeServer;
  let host: TestHost;
  before(async () => {
    ({ server, host } = await enrolledHost());
  });
  after(() => releaseHost(server, host));

  it('says which ignored fixes held the offer back and which the running level carries', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    server.desired = {
      level: 1,
      reason: 'feed',
      allowDowngrade: false,
      feed: 'production',
      ignoredFixes: ['fix-2'],
      ignoredRunning: ['fix-1'],
    };
    const c = await host.cli(['check']);
    assert.match(c.stdout, /^held at level 1 by ignored fixes: fix-2$/m, c.stdout);
    assert.match(c.stdout, /^the running level carries ignored fixes: fix-1$/m);
    const json = JSON.parse((await host.cli(['check', '--json'])).stdout) as { desired: DesiredLevel };
    assert.deepEqual(json.desired.ignoredFixes, ['fix-2']);
    server.desired = { level: 1, reason: 'feed', allowDowngrade: false, feed: 'production' };
    assert.doesNotMatch((await host.cli(['check'])).stdout, /ignored/);
  });
});
