import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { moduleNameFor } from '@livegraft/protocol';
import { RESERVE_BYTES } from '../src/state/reserve.ts';
import type { Clock } from '../src/lib/clock.ts';
import { backoffMs, BACKOFF_BASE_MS, BACKOFF_MAX_MS, jitteredIntervalMs } from '../src/cli/daemon.ts';
import type { TestHost } from './helpers/cli.ts';
import { FakeServer } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';
import { enrolledHost, releaseHost } from './helpers/enrolled.ts';

describe('timing', () => {
  it('jitters the interval by at most ±10 %', () => {
    assert.equal(
      jitteredIntervalMs(100, () => 0),
      90_000,
    );
    assert.equal(
      jitteredIntervalMs(100, () => 1),
      110_000,
    );
    assert.equal(
      jitteredIntervalMs(100, () => 0.5),
      100_000,
    );
  });

  it('backs off exponentially with jitter, bounded', () => {
    assert.equal(
      backoffMs(1, () => 1),
      BACKOFF_BASE_MS,
    );
    assert.equal(
      backoffMs(3, () => 1),
      4 * BACKOFF_BASE_MS,
    );
    assert.equal(
      backoffMs(3, () => 0),
      2 * BACKOFF_BASE_MS,
    );
    assert.equal(
      backoffMs(100, () => 1),
      BACKOFF_MAX_MS,
    );
    assert.equal(
      backoffMs(100, () => 1, 60_000),
      60_000,
    );
  });
});

describe('run', () => {
  let server: FakeServer;
  let host: TestHost;
  before(async () => {
    ({ server, host } = await enrolledHost());
  });
  after(() => releaseHost(server, host));

  it('keeps the space reserve from its start, before any kernel change', async () => {
    const r = await host.cli(['run', '--once']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(host.kernel.loads().length, 0, 'nothing was published: no kernel change');
    assert.equal(statSync(join(host.stateDir, 'reserve')).size, RESERVE_BYTES);
  });

  it('--once checks, applies, and logs JSON lines to stderr', async () => {
    server.publish(host.kernel.id, makePatch(host.kernel, 1));
    const r = await host.cli(['run', '--once']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: string; msg: string });
    assert.ok(lines.every((l) => typeof l.msg === 'string' && typeof l.level === 'string'));
    assert.ok(lines.some((l) => /applied level 1/.test(l.msg)));
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)), true);
  });

  it('wakes on SIGUSR1, backs off on server errors without touching the patch, stops on SIGTERM', async () => {
    const sleeps: number[] = [];
    let signals: { wake: () => void; stop: () => void } | undefined;
    let wokeUp: (() => void) | undefined;
    // Sleeps last until the daemon is woken or stopped, so the test drives every cycle.
    const clock: Clock = {
      now: () => host.kernel.now,
      sleep: (ms, signal) => {
        if (signal === undefined) return host.kernel.clock.sleep(ms);
        sleeps.push(ms);
        wokeUp?.();
        return new Promise((resolve) => {
          if (signal.aborted) return resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
      },
    };
    const nextSleep = (): Promise<void> => new Promise((r) => (wokeUp = r));
    let asleep = nextSleep();
    const running = host.cli(['run'], {
      clock,
      onSignals: (h) => {
        signals = h;
        return () => (signals = undefined);
      },
    });
    await asleep;
    const checkins = server.checkins.length;
    assert.ok(sleeps[0] !== undefined && sleeps[0] >= 540_000 && sleeps[0] <= 660_000, `slept ${sleeps[0]}`);

    server.mode = 'error-500';
    asleep = nextSleep();
    signals?.wake();
    await asleep;
    assert.equal(server.checkins.length, checkins + 1);
    assert.ok(sleeps[1] !== undefined && sleeps[1] <= BACKOFF_BASE_MS, `backoff ${sleeps[1]}`);
    asleep = nextSleep();
    signals?.wake();
    await asleep;
    assert.ok(sleeps[2] !== undefined && sleeps[2] > BACKOFF_BASE_MS / 2 && sleeps[2] <= 2 * BACKOFF_BASE_MS);
    assert.equal(host.kernel.patchEnabled(moduleNameFor(host.kernel.id, 1)), true);

    server.mode = 'normal';
    signals?.stop();
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /"msg":"cycle failed; backing off".*"failures":2/);
    assert.match(r.stderr, /"msg":"agent stopping"/);
    assert.equal(signals, undefined, 'signal handlers removed');
  });

  it('--once exits 4 and logs the code when the server is unreachable', async () => {
    await server.stop();
    const r = await host.cli(['run', '--once']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /"code":"SERVER_UNREACHABLE"/);
    server = await new FakeServer().start();
  });
});
