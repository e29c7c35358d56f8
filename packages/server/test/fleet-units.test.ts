import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PinRecord } from '@livegraft/protocol';
import type { FeedLevelRow } from '../src/db/feeds.ts';
import type { FleetHost } from '../src/db/hosts.ts';
import { desiredLevel, feedKey, haltKey, type FleetSnapshot } from '../src/fleet/desired.ts';
import { inMaintenanceWindow } from '../src/fleet/windows.ts';
import { RateLimiter } from '../src/rate-limit.ts';

const K = 'a'.repeat(64);

describe('maintenance windows (UTC)', () => {
  const sat = [{ days: ['sat' as const], start: '22:00', end: '02:00' }];
  it('no windows means always open', () => {
    assert.equal(inMaintenanceWindow([], new Date('2026-03-04T12:00:00Z')), true);
  });
  it('a same-day window includes its start and excludes its end', () => {
    const w = [{ days: ['mon' as const, 'wed' as const], start: '09:30', end: '11:00' }];
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-04T09:29:59Z')), false);
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-04T09:30:00Z')), true);
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-04T10:59:00Z')), true);
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-04T11:00:00Z')), false);
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-05T10:00:00Z')), false, 'Thursday');
  });
  it('a window past midnight belongs to the day it starts', () => {
    assert.equal(inMaintenanceWindow(sat, new Date('2026-03-07T21:59:00Z')), false);
    assert.equal(inMaintenanceWindow(sat, new Date('2026-03-07T23:00:00Z')), true);
    assert.equal(inMaintenanceWindow(sat, new Date('2026-03-08T01:59:00Z')), true, 'Sunday early morning');
    assert.equal(inMaintenanceWindow(sat, new Date('2026-03-08T02:00:00Z')), false);
    assert.equal(inMaintenanceWindow(sat, new Date('2026-03-08T23:00:00Z')), false, 'Sunday night is not Saturday');
  });
  it('start equal to end is a whole day from that time', () => {
    const w = [{ days: ['tue' as const], start: '06:00', end: '06:00' }];
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-03T06:00:00Z')), true);
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-04T05:59:00Z')), true);
    assert.equal(inMaintenanceWindow(w, new Date('2026-03-04T06:00:00Z')), false);
  });
});

describe('desired level', () => {
  const host = (over: Partial<FleetHost> = {}): FleetHost => ({
    id: 'h',
    feed: 'prod',
    kernelId: K,
    tags: [],
    autoUpdate: true,
    appliedLevel: 0,
    ignore: [],
    ...over,
  });
  const row = (level: number, over: Partial<FeedLevelRow> = {}): FeedLevelRow => ({
    feed: 'prod',
    kernel_id: K,
    level,
    previous_level: 0,
    source: 'publish',
    allow_downgrade: 0,
    set_at: '2026-03-01T00:00:00.000Z',
    healthy_since: null,
    ...over,
  });
  const pin = (over: Partial<PinRecord>): PinRecord => ({
    scope: 'host',
    subject: 'h',
    kernelId: K,
    level: null,
    cutoff: null,
    allowDowngrade: false,
    reason: 'pin',
    createdAt: '',
    createdBy: '',
    ...over,
  });
  const snap = (over: Partial<FleetSnapshot> = {}): FleetSnapshot => ({
    feedLevels: new Map([[feedKey('prod', K), row(4, { previous_level: 3 })]]),
    halted: new Set(),
    pins: [],
    published: new Map([[K, [1, 2, 3, 4].map((level) => published(level))]]),
    ...over,
  });
  // Cumulative levels: level n carries fixes a.. up to the n-th letter.
  const published = (level: number, fixIds = [...'abcdefgh'.slice(0, level)]) => ({
    level,
    publishedAt: `2026-03-0${level}T00:00:00.000Z`,
    fixIds,
  });

  it('follows the feed; nothing when the feed has no level for the kernel', () => {
    assert.deepEqual(desiredLevel(host(), snap()), { level: 4, reason: 'feed', allowDowngrade: false, feed: 'prod' });
    assert.equal(desiredLevel(host({ feed: 'other' }), snap()), null);
  });
  it('steps back to the previous level while the current one is halted', () => {
    assert.equal(desiredLevel(host(), snap({ halted: new Set([haltKey(K, 4)]) }))?.level, 3);
    assert.equal(desiredLevel(host(), snap({ halted: new Set([haltKey(K, 4), haltKey(K, 3)]) }))?.level, 2);
  });
  it('never goes below the applied level unless a downgrade is allowed', () => {
    const halted = snap({ halted: new Set([haltKey(K, 4)]) });
    assert.equal(desiredLevel(host({ appliedLevel: 4 }), halted)?.level, 4, 'a host on the halted level keeps it');
    assert.equal(desiredLevel(host({ appliedLevel: 2 }), halted)?.level, 3);
    const cut = [pin({ kernelId: null, cutoff: '2026-03-01T12:00:00.000Z' })];
    assert.equal(desiredLevel(host({ appliedLevel: 3 }), snap({ pins: cut }))?.level, 3);
    const rb = [pin({ level: 1, reason: 'rollback', allowDowngrade: true })];
    assert.equal(desiredLevel(host({ appliedLevel: 4 }), snap({ pins: rb }))?.level, 1);
  });
  it('host pins beat tag pins beat feed pins; several tags give the lowest', () => {
    const pins = [
      pin({ scope: 'feed', subject: 'prod', level: 3 }),
      pin({ scope: 'tag', subject: 'db', level: 2 }),
      pin({ scope: 'tag', subject: 'eu', level: 1, reason: 'rollback', allowDowngrade: true }),
    ];
    assert.equal(desiredLevel(host(), snap({ pins }))?.level, 3);
    assert.equal(desiredLevel(host({ tags: ['db'] }), snap({ pins }))?.level, 2);
    assert.deepEqual(desiredLevel(host({ tags: ['db', 'eu'] }), snap({ pins })), {
      level: 1,
      reason: 'rollback',
      allowDowngrade: true,
      feed: 'prod',
    });
    const withHost = [...pins, pin({ level: 4 })];
    assert.equal(desiredLevel(host({ tags: ['db', 'eu'] }), snap({ pins: withHost }))?.level, 4);
  });
  it('a cut-off takes the newest level published by then, never above the feed', () => {
    const cut = (cutoff: string) => [pin({ kernelId: null, cutoff })];
    assert.equal(desiredLevel(host(), snap({ pins: cut('2026-03-02T12:00:00.000Z') }))?.level, 2);
    assert.equal(desiredLevel(host(), snap({ pins: cut('2020-01-01T00:00:00.000Z') }))?.level, 0);
    assert.equal(desiredLevel(host(), snap({ pins: cut('2030-01-01T00:00:00.000Z') }))?.level, 4);
    const lowFeed = new Map([[feedKey('prod', K), row(2)]]);
    assert.equal(desiredLevel(host(), snap({ feedLevels: lowFeed, pins: cut('2030-01-01T00:00:00.000Z') }))?.level, 2);
  });
  it('pins for another kernel do not apply', () => {
    assert.equal(desiredLevel(host(), snap({ pins: [pin({ kernelId: 'b'.repeat(64), level: 1 })] }))?.level, 4);
  });
  it('auto-update off turns feed and pin levels into manual ones, but not a rollback', () => {
    assert.equal(desiredLevel(host({ autoUpdate: false }), snap())?.reason, 'manual');
    const rb = new Map([[feedKey('prod', K), row(2, { source: 'rollback', allow_downgrade: 1 })]]);
    assert.deepEqual(desiredLevel(host({ autoUpdate: false }), snap({ feedLevels: rb })), {
      level: 2,
      reason: 'rollback',
      allowDowngrade: true,
      feed: 'prod',
    });
  });

  describe('ignore-list', () => {
    it('holds the host on the highest level without an ignored fix, and says which fix held it', () => {
      assert.deepEqual(desiredLevel(host({ ignore: ['c'] }), snap()), {
        level: 2,
        reason: 'feed',
        allowDowngrade: false,
        feed: 'prod',
        ignoredFixes: ['c'],
      });
      assert.deepEqual(desiredLevel(host({ ignore: ['zz', 'd', 'b'] }), snap())?.ignoredFixes, ['d', 'b']);
      assert.equal(desiredLevel(host({ ignore: ['zz', 'd', 'b'] }), snap())?.level, 1);
      assert.equal(desiredLevel(host({ ignore: ['a'] }), snap())?.level, 0, 'every level carries it: none');
      assert.deepEqual(desiredLevel(host({ ignore: ['not-in-any-level'] }), snap()), desiredLevel(host(), snap()));
    });
    it('offers a later level again once it no longer carries the ignored fix', () => {
      const dropsC = new Map([[K, [...[1, 2, 3, 4].map((l) => published(l)), published(5, ['a', 'b', 'd', 'e'])]]]);
      const at = (level: number) => new Map([[feedKey('prod', K), row(level)]]);
      const ignoring = host({ ignore: ['c'] });
      assert.equal(desiredLevel(ignoring, snap({ published: dropsC, feedLevels: at(4) }))?.level, 2);
      assert.deepEqual(desiredLevel(ignoring, snap({ published: dropsC, feedLevels: at(5) })), {
        level: 5,
        reason: 'feed',
        allowDowngrade: false,
        feed: 'prod',
      });
    });
    it('steps down past halted levels too, and a halted feed level is not reported as held by the list', () => {
      const ignoring = host({ ignore: ['d'] });
      const halted3 = snap({ halted: new Set([haltKey(K, 3)]) });
      assert.deepEqual(
        [desiredLevel(ignoring, halted3)?.level, desiredLevel(ignoring, halted3)?.ignoredFixes],
        [2, ['d']],
      );
      const halted4 = desiredLevel(ignoring, snap({ halted: new Set([haltKey(K, 4)]) }));
      assert.deepEqual([halted4?.level, halted4?.ignoredFixes], [3, undefined], 'the halt, not the list, held it');
    });
    it('never takes a host below what it runs; ignored fixes in the running level are reported', () => {
      const onFour = desiredLevel(host({ ignore: ['c'], appliedLevel: 4 }), snap());
      assert.deepEqual(onFour, {
        level: 4,
        reason: 'feed',
        allowDowngrade: false,
        feed: 'prod',
        ignoredRunning: ['c'],
      });
      const onThree = desiredLevel(host({ ignore: ['c'], appliedLevel: 3 }), snap());
      assert.deepEqual(
        [onThree?.level, onThree?.ignoredFixes, onThree?.ignoredRunning],
        [3, ['c'], ['c']],
        'held at 3 (not 4), not taken down to 2',
      );
      const clean = desiredLevel(host({ ignore: ['d'], appliedLevel: 2 }), snap());
      assert.deepEqual([clean?.level, clean?.ignoredFixes, clean?.ignoredRunning], [3, ['d'], undefined]);
    });
    it('an operator rollback that allows downgrades goes below the running level to a level without the fix', () => {
      const rb = [pin({ level: 3, reason: 'rollback', allowDowngrade: true })];
      const d = desiredLevel(host({ ignore: ['c'], appliedLevel: 4 }), snap({ pins: rb }));
      assert.deepEqual(
        [d?.level, d?.reason, d?.allowDowngrade, d?.ignoredFixes, d?.ignoredRunning],
        [2, 'rollback', true, ['c'], ['c']],
      );
    });
    it('applies after pins, cut-offs and auto-update off', () => {
      assert.equal(desiredLevel(host({ ignore: ['d'] }), snap({ pins: [pin({ level: 4 })] }))?.level, 3);
      const cut = [pin({ kernelId: null, cutoff: '2026-03-03T12:00:00.000Z' })];
      assert.equal(desiredLevel(host({ ignore: ['c'] }), snap({ pins: cut }))?.level, 2);
      // A level published after the cut-off stays out even when it is the one without the fix.
      const late = new Map([
        [K, [published(1), { ...published(2), publishedAt: '2026-03-09T00:00:00.000Z' }, published(3)]],
      ]);
      assert.equal(desiredLevel(host({ ignore: ['c'] }), snap({ pins: cut, published: late }))?.level, 1);
      const manual = desiredLevel(host({ ignore: ['c'], autoUpdate: false }), snap());
      assert.deepEqual([manual?.level, manual?.reason, manual?.ignoredFixes], [2, 'manual', ['c']]);
    });
  });
});

describe('enrolment rate limiter', () => {
  it('allows a burst, then one request per refill interval, per key', () => {
    let now = 0;
    const rl = new RateLimiter({ burst: 3, perMinute: 2, now: () => now });
    assert.deepEqual([rl.take('a'), rl.take('a'), rl.take('a')], [0, 0, 0]);
    assert.equal(rl.take('a'), 30);
    assert.equal(rl.take('b'), 0, 'another IP has its own bucket');
    now += 29_000;
    assert.ok(rl.take('a') > 0);
    now += 1_000;
    assert.equal(rl.take('a'), 0);
    now += 3_600_000;
    assert.deepEqual(
      [rl.take('a'), rl.take('a'), rl.take('a'), rl.take('a') > 0],
      [0, 0, 0, true],
      'refills to the burst only',
    );
  });
});
