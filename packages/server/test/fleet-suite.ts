import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  type ApiError,
  type AuditEntry,
  type FeedRecord,
  type HaltRecord,
  type HostRecord,
  type RegistrationKeyCreated,
  type TokenCreated,
  type TokenRecord,
} from '@livegraft/protocol';
import { KERNEL_ID, kernelIdentity } from './helpers.ts';
import {
  ManualClock,
  SseClient,
  startFleetHarness,
  type FleetHarness,
  type FleetHarnessOptions,
} from './fleet-helpers.ts';

/** Gives each harness a database: a fresh PostgreSQL database, or undefined for SQLite in the data dir. */
export type DatabaseMaker = () => Promise<string | undefined>;

/**
 * The fleet behaviour over real HTTP, run once per storage backend (SQLite,
 * PostgreSQL) with the same assertions.
 */
export function fleetSuite(backend: string, makeDatabase: DatabaseMaker, skip: string | false = false): void {
  describe(`fleet rollout (${backend})`, { skip }, () => {
    const open: FleetHarness[] = [];
    async function start(o: FleetHarnessOptions = {}): Promise<FleetHarness> {
      const database = await makeDatabase();
      const h = await startFleetHarness({ ...o, ...(database === undefined ? {} : { database }) });
      open.push(h);
      return h;
    }
    after(async () => {
      for (const h of open) await h.stop();
    });

    async function ringKey(h: FleetHarness, feed: string, tags: string[] = []): Promise<string> {
      const k = await h.ok<RegistrationKeyCreated>('POST', '/registration-keys', { json: { name: feed, feed, tags } });
      return k.key;
    }
    async function feed(h: FleetHarness, name: string): Promise<FeedRecord> {
      return h.ok<FeedRecord>('GET', `/feeds/${name}`);
    }
    const levelOf = (f: FeedRecord): number | undefined => f.levels.find((l) => l.kernelId === KERNEL_ID)?.level;

    it('zero-config: a host on the default key gets a newly published level at once (production auto-publishes)', async () => {
      const h = await start();
      const feeds = await h.ok<FeedRecord[]>('GET', '/feeds');
      assert.deepEqual(
        feeds.map((f) => [f.name, f.promotesTo, f.autoPublish]),
        [
          ['canary', 'staging', true],
          ['production', null, true],
          ['staging', 'production', false],
        ],
      );
      const host = await h.enroll('web1');
      const before = await h.checkin(host.token);
      assert.equal(before.latest, null);
      assert.equal(before.desired, undefined);
      await h.publish(1);
      const res = await h.checkin(host.token);
      assert.equal(res.kernelSupported, true);
      assert.equal(res.latest?.level, 1);
      assert.deepEqual(res.desired, { level: 1, reason: 'feed', allowDowngrade: false, feed: 'production' });
      assert.equal(levelOf(await feed(h, 'canary')), 1);
      assert.equal(levelOf(await feed(h, 'staging')), undefined, 'staging only gets levels by promotion');
      const rec = await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`);
      assert.equal(rec.feed, 'production');
      assert.deepEqual(rec.desired, res.desired);
    });

    it('keeps the clock skew each agent reports, shows it on the host and counts skewed hosts in /metrics', async () => {
      const h = await start();
      const fast = await h.enroll('fast-clock');
      const fine = await h.enroll('fine-clock');
      await h.checkin(fast.token, { clockSkewSec: 2 * 365 * 86_400 });
      await h.checkin(fine.token, { clockSkewSec: 0 });
      assert.equal((await h.ok<HostRecord>('GET', `/hosts/${fast.hostId}`)).clockSkewSec, 2 * 365 * 86_400);
      assert.equal((await h.ok<HostRecord>('GET', `/hosts/${fine.hostId}`)).clockSkewSec, 0);
      const metrics = (await h.call('GET', '/metrics')).bytes.toString();
      assert.match(metrics, /^livegraft_hosts_clock_skewed\{feed="production"\} 1$/m);
      // A later report without skew (an older agent) clears it rather than keeping a stale figure.
      await h.checkin(fast.token);
      assert.equal((await h.ok<HostRecord>('GET', `/hosts/${fast.hostId}`)).clockSkewSec, null);
      const bad = await h.call('POST', '/hosts/checkin', {
        token: fine.token,
        json: {
          kernel: kernelIdentity(),
          appliedLevel: 0,
          state: 'unpatched',
          agentVersion: '0.2.0',
          uptimeSec: 1,
          clockSkewSec: 1.5,
        },
      });
      assert.equal(bad.status, 400, 'a fractional skew is refused');
    });

    it('promotes after the rule delay, evaluated with an injected clock', async () => {
      const clock = new ManualClock();
      const h = await start({ deps: { clock: clock.now } });
      await h.ok('POST', '/feeds', { json: { name: 'late', promotion: null, requireValidated: false } });
      await h.ok('POST', '/feeds', {
        json: {
          name: 'early',
          autoPublish: true,
          promotesTo: 'late',
          promotion: { afterSec: 3600 },
          requireValidated: false,
        },
      });
      await h.publish(1);
      assert.deepEqual(await h.server.fleet.fleet.evaluatePromotions(), []);
      clock.advance(3599);
      assert.deepEqual(await h.server.fleet.fleet.evaluatePromotions(), []);
      assert.equal(levelOf(await feed(h, 'late')), undefined);
      clock.advance(1);
      const done = await h.server.fleet.fleet.evaluatePromotions();
      assert.deepEqual(
        done.filter((p) => p.to === 'late'),
        [{ from: 'early', to: 'late', kernelId: KERNEL_ID, level: 1, previous: 0 }],
      );
      const late = await feed(h, 'late');
      assert.equal(levelOf(late), 1);
      assert.equal(late.levels[0]?.source, 'promotion');
      const audit = await h.ok<AuditEntry[]>('GET', '/audit?action=feed.promote');
      assert.ok(audit.some((e) => e.target === 'late' && e.actor.id === 'system'));
    });

    it('promotes by health: N hosts applied with no failure for T, then the next feed gets it', async () => {
      const clock = new ManualClock();
      const h = await start({ deps: { clock: clock.now } });
      await h.ok('POST', '/feeds', { json: { name: 'wide', requireValidated: false } });
      await h.ok('POST', '/feeds', {
        json: {
          name: 'pilot',
          autoPublish: true,
          promotesTo: 'wide',
          promotion: { minHosts: 2, healthySec: 300 },
          requireValidated: false,
        },
      });
      const key = await ringKey(h, 'pilot');
      const a = await h.enroll('pilot-a', { key });
      const b = await h.enroll('pilot-b', { key });
      await h.enroll('pilot-c', { key });
      await h.publish(1);
      const patched = { appliedLevel: 1, state: 'patched' as const };
      await h.checkin(a.token, patched);
      await h.server.fleet.fleet.evaluatePromotions();
      assert.equal((await feed(h, 'pilot')).levels[0]?.healthySince, null, 'one host is not enough');
      await h.checkin(b.token, patched);
      await h.server.fleet.fleet.evaluatePromotions();
      const since = (await feed(h, 'pilot')).levels[0]?.healthySince;
      assert.equal(since, clock.now().toISOString(), 'the condition started holding now');
      assert.equal(levelOf(await feed(h, 'wide')), undefined, 'not yet healthy for 300 s');
      clock.advance(300);
      await h.server.fleet.fleet.evaluatePromotions();
      assert.equal(levelOf(await feed(h, 'wide')), 1);
    });

    it('promotes only inside the destination feed maintenance window (UTC weekly)', async () => {
      const clock = new ManualClock();
      clock.set('2026-03-02T10:00:00.000Z'); // a Monday
      const h = await start({ deps: { clock: clock.now } });
      await h.ok('POST', '/feeds', {
        json: { name: 'db', windows: [{ days: ['sat'], start: '23:00', end: '02:00' }], requireValidated: false },
      });
      await h.ok('POST', '/feeds', {
        json: { name: 'web', autoPublish: true, promotesTo: 'db', promotion: { afterSec: 0 }, requireValidated: false },
      });
      await h.publish(1);
      await h.server.fleet.fleet.evaluatePromotions();
      assert.equal(levelOf(await feed(h, 'db')), undefined, 'Monday is outside the window');
      clock.set('2026-03-07T22:59:00.000Z'); // Saturday, a minute early
      await h.server.fleet.fleet.evaluatePromotions();
      assert.equal(levelOf(await feed(h, 'db')), undefined);
      clock.set('2026-03-08T01:30:00.000Z'); // Sunday 01:30: still Saturday night's window
      await h.server.fleet.fleet.evaluatePromotions();
      assert.equal(levelOf(await feed(h, 'db')), 1);
    });

    it('an apply failure halts the level: no promotion, hosts not on it stay back, recorded; resume lifts it', async () => {
      const clock = new ManualClock();
      const h = await start({ deps: { clock: clock.now } });
      await h.ok('POST', '/feeds', { json: { name: 'after', requireValidated: false } });
      await h.ok('POST', '/feeds', {
        json: {
          name: 'first',
          autoPublish: true,
          promotesTo: 'after',
          promotion: { afterSec: 60 },
          requireValidated: false,
        },
      });
      const key = await ringKey(h, 'first');
      const bad = await h.enroll('bad', { key });
      const other = await h.enroll('other', { key });
      await h.publish(1);
      await h.checkin(bad.token, { appliedLevel: 1, state: 'patched' });
      await h.publish(2);
      const failed = await h.checkin(bad.token, {
        appliedLevel: 1,
        state: 'error',
        lastApply: {
          action: 'apply',
          fromLevel: 1,
          toLevel: 2,
          ok: false,
          code: 'TRANSITION_STALLED',
          message: 'stuck',
          durationMs: 30000,
          at: clock.now().toISOString(),
        },
      });
      assert.equal(failed.desired?.level, 1, 'the failing host is told to stay on 1');
      const halts = await h.ok<HaltRecord[]>('GET', '/halts');
      assert.equal(halts.length, 1);
      assert.deepEqual([halts[0]?.kernelId, halts[0]?.level, halts[0]?.hostId], [KERNEL_ID, 2, bad.hostId]);
      assert.match(halts[0]?.reason ?? '', /TRANSITION_STALLED/);
      assert.equal((await h.checkin(other.token)).desired?.level, 1, 'hosts not on 2 do not get it');
      const first = await feed(h, 'first');
      assert.equal(first.levels[0]?.level, 2);
      assert.ok(first.levels[0]?.haltedAt !== null);
      clock.advance(3600);
      await h.server.fleet.fleet.evaluatePromotions();
      assert.equal(levelOf(await feed(h, 'after')), undefined, 'a halted feed level promotes nothing');
      const audit = await h.ok<AuditEntry[]>('GET', '/audit?action=rollout.halt');
      assert.equal(audit.length, 1);
      assert.equal(audit[0]?.actor.id, 'system');

      await h.ok('DELETE', `/halts/${KERNEL_ID}/2`);
      assert.equal((await h.checkin(other.token)).desired?.level, 2);
      await h.server.fleet.fleet.evaluatePromotions();
      assert.equal(levelOf(await feed(h, 'after')), 2);
    });

    it('a kernel oops reported after applying, or a stalled transition, halts the level', async () => {
      const clock = new ManualClock();
      const h = await start({ deps: { clock: clock.now }, config: { stallSec: 60 } });
      const host = await h.enroll('oopsy');
      await h.publish(1);
      const appliedAt = clock.now().toISOString();
      const lastApply = {
        action: 'apply' as const,
        fromLevel: 0,
        toLevel: 1,
        ok: true,
        durationMs: 900,
        at: appliedAt,
        phasesMs: { download: 100, transition: 700 },
      };
      await h.checkin(host.token, { appliedLevel: 1, state: 'patched', lastApply });
      // An old oops (before the apply) does not count.
      await h.checkin(host.token, {
        appliedLevel: 1,
        state: 'patched',
        kernelEvents: [{ at: '2026-01-01T00:00:00.000Z', kind: 'oops', message: 'old' }],
      });
      assert.deepEqual(await h.ok('GET', '/halts'), []);
      clock.advance(10);
      await h.checkin(host.token, {
        appliedLevel: 1,
        state: 'patched',
        kernelEvents: [{ at: clock.now().toISOString(), kind: 'oops', message: 'BUG: unable to handle page fault' }],
      });
      const halts = await h.ok<HaltRecord[]>('GET', '/halts');
      assert.deepEqual(
        halts.map((x) => x.level),
        [1],
      );
      assert.match(halts[0]?.reason ?? '', /oops.*page fault/);
      const rec = await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`);
      assert.equal(rec.kernelEvents?.length, 2);
      assert.deepEqual(rec.lastApply?.phasesMs, { download: 100, transition: 700 });

      await h.publish(2);
      await h.checkin(host.token, {
        appliedLevel: 1,
        state: 'patched',
        patchState: { module: 'livegraft_x_l2', enabled: true, transition: true, transitionSec: 61 },
        blockingTasks: [{ pid: 42, comm: 'stuckd' }],
      });
      const after = await h.ok<HaltRecord[]>('GET', '/halts');
      assert.deepEqual(after.map((x) => x.level).sort(), [1, 2]);
      assert.deepEqual((await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`)).blockingTasks, [
        { pid: 42, comm: 'stuckd' },
      ]);
    });

    it('pins: a host pinned to a level, a feed to a cut-off date, auto-update off; all in the host record', async () => {
      const clock = new ManualClock();
      const h = await start({ deps: { clock: clock.now } });
      const host = await h.enroll('pinned');
      const peer = await h.enroll('peer');
      await h.publish(1);
      clock.advance(86400);
      const cutoff = clock.now().toISOString();
      clock.advance(86400);
      await h.publish(2);
      await h.publish(3);
      assert.equal((await h.checkin(peer.token)).desired?.level, 3);

      const pin = await h.ok<{ level: number }>('PUT', `/hosts/${host.hostId}/pin`, {
        json: { kernelId: KERNEL_ID, level: 2 },
      });
      assert.equal(pin.level, 2);
      const pinned = await h.checkin(host.token);
      assert.deepEqual(pinned.desired, { level: 2, reason: 'pin', allowDowngrade: false, feed: 'production' });
      assert.equal(pinned.latest?.level, 2, 'latest is the desired level manifest');

      await h.ok('PUT', '/feeds/production/pin', { json: { cutoff } });
      assert.equal((await h.checkin(peer.token)).desired?.level, 1, 'nothing published after the cut-off');
      assert.equal((await h.checkin(host.token)).desired?.level, 2, 'the host pin is more specific');
      const rec = await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`);
      assert.deepEqual(rec.pins?.map((p) => [p.scope, p.level, p.cutoff]).sort(), [
        ['feed', null, cutoff],
        ['host', 2, null],
      ]);

      assert.deepEqual(await h.ok('DELETE', `/hosts/${host.hostId}/pin`), { removed: 1 });
      assert.deepEqual(await h.ok('DELETE', '/feeds/production/pin'), { removed: 1 });
      assert.equal((await h.checkin(host.token)).desired?.level, 3);

      await h.ok('PATCH', `/hosts/${host.hostId}`, { json: { autoUpdate: false } });
      const manual = await h.checkin(host.token);
      assert.deepEqual(manual.desired, { level: 3, reason: 'manual', allowDowngrade: false, feed: 'production' });
      assert.equal((await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`)).autoUpdate, false);

      const both = await h.call('PUT', `/hosts/${host.hostId}/pin`, { json: { level: 1, cutoff } });
      assert.equal(both.status, 400);
      const unpublished = await h.call('PUT', `/hosts/${host.hostId}/pin`, { json: { kernelId: KERNEL_ID, level: 9 } });
      assert.equal((unpublished.json as ApiError).code, 'LEVEL_NOT_FOUND');
    });

    it('ignore-list: PATCH replaces it, audited and pushed; levels carrying an ignored fix are not offered', async () => {
      const h = await start();
      const host = await h.enroll('picky');
      const peer = await h.enroll('peer');
      // The test modules carry one fix each: level n has fix-n.
      for (const level of [1, 2, 3]) await h.publish(level);
      const sse = await SseClient.open(h.server.url, host.token);
      await sse.waitFor((e) => e.desired?.level === 3);

      const rec = await h.ok<HostRecord>('PATCH', `/hosts/${host.hostId}`, { json: { ignore: ['fix-3'] } });
      assert.deepEqual(rec.ignore, ['fix-3']);
      const pushed = await sse.waitFor((e) => e.desired?.level === 2);
      assert.deepEqual(pushed.desired?.ignoredFixes, ['fix-3'], 'the change reaches the host at once');
      const held = await h.checkin(host.token, { appliedLevel: 2, state: 'patched' });
      assert.deepEqual(held.desired, {
        level: 2,
        reason: 'feed',
        allowDowngrade: false,
        feed: 'production',
        ignoredFixes: ['fix-3'],
      });
      assert.equal(held.latest?.level, 2, 'the manifest offered is the level below the ignored fix');
      assert.equal((await h.checkin(peer.token)).desired?.level, 3, 'other hosts are not affected');
      const shown = await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`);
      assert.deepEqual([shown.ignore, shown.desired], [['fix-3'], held.desired]);
      const listed = await h.ok<HostRecord[]>('GET', '/hosts');
      assert.deepEqual(listed.find((x) => x.id === peer.hostId)?.ignore, []);
      const [audit] = await h.ok<AuditEntry[]>('GET', '/audit?action=host.update');
      assert.deepEqual([audit?.target, audit?.details], [host.hostId, { ignore: ['fix-3'] }]);

      const bad = await h.call('PATCH', `/hosts/${host.hostId}`, { json: { ignore: ['fix-3', 'no spaces'] } });
      assert.equal(bad.status, 400);
      assert.equal((bad.json as ApiError).code, 'VALIDATION_FAILED');
      assert.match(JSON.stringify(bad.json), /\/ignore\/1/, 'the bad entry is named');
      const many = Array.from({ length: 257 }, (_, i) => `fix-${i}`);
      assert.equal((await h.call('PATCH', `/hosts/${host.hostId}`, { json: { ignore: many } })).status, 400);
      const twice = await h.call('PATCH', `/hosts/${host.hostId}`, { json: { ignore: ['fix-1', 'fix-1'] } });
      assert.equal(twice.status, 400);
      assert.deepEqual((await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`)).ignore, ['fix-3'], 'unchanged');

      // A later level without the ignored fix is offered again; the running level's ignored fix is reported.
      await h.publish(4);
      const later = await h.checkin(host.token, { appliedLevel: 3, state: 'patched' });
      assert.deepEqual([later.desired?.level, later.desired?.ignoredFixes], [4, undefined]);
      await h.ok('PATCH', `/hosts/${host.hostId}`, { json: { ignore: ['fix-4'] } });
      const running = await h.checkin(host.token, { appliedLevel: 4, state: 'patched' });
      assert.deepEqual(
        [running.desired?.level, running.desired?.ignoredRunning],
        [4, ['fix-4']],
        'not taken down by the list alone',
      );
      await h.ok('PATCH', `/hosts/${host.hostId}`, { json: { ignore: [] } });
      const cleared = await h.checkin(host.token, { appliedLevel: 4, state: 'patched' });
      assert.deepEqual(cleared.desired, { level: 4, reason: 'feed', allowDowngrade: false, feed: 'production' });
      await sse.close();
    });

    it('fleet rollback of a feed or a tag: desired with allowDowngrade, the bad level halted and not re-published', async () => {
      const h = await start();
      const web = await h.enroll('web');
      const dbKey = await ringKey(h, 'production', ['db']);
      const db = await h.enroll('db1', { key: dbKey });
      await h.publish(1);
      await h.publish(2);
      await h.publish(3);
      await h.checkin(web.token, { appliedLevel: 3, state: 'patched' });

      await h.ok('POST', '/rollback', { json: { tag: 'db', kernelId: KERNEL_ID, level: 2 } });
      assert.deepEqual((await h.checkin(db.token)).desired, {
        level: 2,
        reason: 'rollback',
        allowDowngrade: true,
        feed: 'production',
      });
      assert.equal((await h.checkin(web.token)).desired?.level, 3, 'untagged hosts are not affected');

      await h.ok('POST', '/rollback', { json: { feed: 'production', kernelId: KERNEL_ID, level: 1 } });
      const res = await h.checkin(web.token, { appliedLevel: 3, state: 'patched' });
      assert.deepEqual(res.desired, { level: 1, reason: 'rollback', allowDowngrade: true, feed: 'production' });
      assert.equal(res.latest?.level, 1);
      assert.equal(res.latest?.manifest.level, 1);
      const halts = await h.ok<HaltRecord[]>('GET', '/halts');
      assert.ok(halts.some((x) => x.level === 3 && /rolled back/.test(x.reason)));
      await h.publish(3); // publishing the bad level again is idempotent and does not undo the rollback
      assert.equal((await h.checkin(web.token)).desired?.level, 1);
      await h.publish(4);
      assert.deepEqual((await h.checkin(web.token)).desired, {
        level: 4,
        reason: 'feed',
        allowDowngrade: false,
        feed: 'production',
      });

      const toZero = await h.call('POST', '/rollback', { json: { feed: 'production', kernelId: KERNEL_ID, level: 0 } });
      assert.equal(toZero.status, 200);
      const none = await h.checkin(web.token);
      assert.equal(none.desired?.level, 0);
      assert.equal(none.latest, null);
      const neither = await h.call('POST', '/rollback', { json: { kernelId: KERNEL_ID, level: 1 } });
      assert.equal(neither.status, 400);
      assert.match((neither.json as ApiError).message, /feed.*tag/);
    });

    it('pushes a desired event over SSE within a second of publishing, with a spread delay in the window', async () => {
      const h = await start({ config: { pushSpreadSec: 30 } });
      const host = await h.enroll('listener');
      const sse = await SseClient.open(h.server.url, host.token);
      assert.equal(sse.status, 200);
      const first = await sse.waitFor(() => true);
      assert.equal(first.desired, null, 'the stream opens with the current state');
      const t0 = Date.now();
      await h.publish(1);
      const ev = await sse.waitFor((e) => e.desired?.level === 1, 1000);
      assert.ok(Date.now() - t0 < 1000);
      assert.equal(ev.kernelId, KERNEL_ID);
      assert.deepEqual(ev.desired, { level: 1, reason: 'feed', allowDowngrade: false, feed: 'production' });
      assert.ok(ev.spreadMs >= 0 && ev.spreadMs < 30_000, `spreadMs ${ev.spreadMs}`);

      // Moving the host to a feed without the level pushes that too.
      await h.ok('PATCH', `/hosts/${host.hostId}`, { json: { feed: 'staging' } });
      await sse.waitFor((e) => e.desired === null && sse.events.length >= 3);
      await h.ok('PUT', `/feeds/staging/levels/${KERNEL_ID}`, { json: { level: 1 } });
      const set = await sse.waitFor((e) => e.desired?.feed === 'staging');
      assert.equal(set.desired?.level, 1);
      await sse.close();
    });

    it('revoking a host closes its stream and its token gets 401', async () => {
      const h = await start();
      const host = await h.enroll('gone');
      const sse = await SseClient.open(h.server.url, host.token);
      await sse.waitFor(() => true);
      await h.ok('POST', `/hosts/${host.hostId}/revoke`);
      await sse.waitClosed();
      const checkin = await h.call('POST', '/hosts/checkin', {
        token: host.token,
        json: { kernel: {}, appliedLevel: 0, state: 'unpatched', agentVersion: 'x', uptimeSec: 1 },
      });
      assert.equal(checkin.status, 401);
      assert.equal((await SseClient.open(h.server.url, host.token)).status, 401);
      const rec = await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`);
      assert.ok(rec.revokedAt !== null);
      assert.equal((await h.call('POST', `/hosts/${host.hostId}/revoke`)).status, 404);
    });

    it('roles: viewer reads only, operator runs rollouts, admin manages tokens; revoked tokens stop working', async () => {
      const h = await start();
      const make = async (role: string): Promise<TokenCreated> =>
        h.ok<TokenCreated>('POST', '/tokens', { json: { name: `${role} bot`, role } });
      const viewer = await make('viewer');
      const operator = await make('operator');
      const admin = await make('admin');
      const host = await h.enroll('h');
      await h.publish(1);
      const list = await h.ok<TokenRecord[]>('GET', '/tokens');
      assert.equal(list.length, 3);
      assert.ok(
        list.every((t) => !('token' in t) && !('tokenHash' in t)),
        'secrets are shown once only',
      );

      const reads = ['/feeds', '/hosts', `/hosts/${host.hostId}`, '/audit', '/halts', '/pins', '/patches', '/metrics'];
      for (const path of reads) {
        assert.equal((await h.call('GET', path, { token: viewer.token })).status, 200, `viewer GET ${path}`);
      }
      const changes: [string, string, unknown][] = [
        ['POST', '/feeds', { name: 'x' }],
        ['PATCH', '/feeds/canary', { autoPublish: false }],
        ['PUT', `/feeds/staging/levels/${KERNEL_ID}`, { level: 1 }],
        ['POST', '/feeds/canary/promote', {}],
        ['PUT', '/feeds/canary/pin', { cutoff: '2026-01-01T00:00:00Z' }],
        ['POST', '/rollback', { feed: 'production', kernelId: KERNEL_ID, level: 0 }],
        ['PATCH', `/hosts/${host.hostId}`, { autoUpdate: false }],
        ['POST', `/hosts/${host.hostId}/revoke`, undefined],
        ['POST', '/tokens', { name: 'n', role: 'viewer' }],
        ['POST', '/registration-keys', { name: 'k', feed: 'canary' }],
      ];
      for (const [method, path, json] of changes) {
        const res = await h.call(method, path, { token: viewer.token, ...(json === undefined ? {} : { json }) });
        assert.equal(res.status, 403, `viewer ${method} ${path}`);
        assert.equal((res.json as ApiError).code, 'FORBIDDEN');
      }
      assert.equal((await h.call('POST', '/feeds', { token: operator.token, json: { name: 'ops' } })).status, 201);
      assert.equal(
        (await h.call('PUT', '/feeds/ops/pin', { token: operator.token, json: { cutoff: '2026-01-01T00:00:00Z' } }))
          .status,
        200,
      );
      const opTokens = await h.call('POST', '/tokens', { token: operator.token, json: { name: 'n', role: 'viewer' } });
      assert.equal(opTokens.status, 403, 'operators cannot mint tokens');
      assert.equal((await h.call('GET', '/tokens', { token: admin.token })).status, 200);
      assert.equal(
        (await h.call('GET', '/feeds', { token: host.token })).status,
        403,
        'a host token is not an API token',
      );

      await h.ok('POST', `/tokens/${viewer.id}/revoke`);
      const revoked = await h.call('GET', '/feeds', { token: viewer.token });
      assert.equal(revoked.status, 401);
      assert.equal((revoked.json as ApiError).code, 'AUTH_INVALID');
    });

    it('audits every change with who, what, when and from where', async () => {
      const clock = new ManualClock();
      const h = await start({ deps: { clock: clock.now } });
      const op = await h.ok<TokenCreated>('POST', '/tokens', { json: { name: 'release bot', role: 'operator' } });
      await h.call('POST', '/feeds', { token: op.token, json: { name: 'blue', description: 'blue hosts' } });
      const host = await h.enroll('audited');
      await h.ok('PATCH', `/hosts/${host.hostId}`, { token: op.token, json: { feed: 'blue', tags: ['eu'] } });
      const entries = await h.ok<AuditEntry[]>('GET', '/audit');
      const actions = entries.map((e) => e.action);
      for (const a of ['token.create', 'feed.create', 'host.enroll', 'host.update']) assert.ok(actions.includes(a), a);
      const create = entries.find((e) => e.action === 'feed.create');
      assert.deepEqual(create?.actor, { id: op.id, name: 'release bot', role: 'operator' });
      assert.equal(create?.target, 'blue');
      assert.equal(create?.at, clock.now().toISOString());
      assert.match(create?.ip ?? '', /127\.0\.0\.1/);
      const tokenEntry = entries.find((e) => e.action === 'token.create');
      assert.equal(tokenEntry?.actor.name, 'bootstrap admin');
      assert.ok(!JSON.stringify(entries).includes(op.token), 'secrets never reach the audit log');
      const limited = await h.ok<AuditEntry[]>('GET', '/audit?limit=1');
      assert.equal(limited.length, 1);
      const bad = await h.call('GET', '/audit?limit=0');
      assert.equal(bad.status, 400);
      assert.match((bad.json as ApiError).message, /limit/);
      const rec = await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`);
      assert.deepEqual([rec.feed, rec.tags], ['blue', ['eu']]);
    });

    it('rate-limits enrolment per IP with 429 and Retry-After', async () => {
      let ms = 1_000_000;
      const h = await start({ config: { enrollBurst: 2, enrollPerMinute: 6 }, deps: { fleet: { now: () => ms } } });
      await h.enroll('r1');
      const wrong = await h.call('POST', '/hosts/enroll', {
        token: null,
        json: { registrationKey: 'not-the-key-at-all', hostname: 'r2', kernel: {}, agentVersion: '1' },
      });
      assert.equal(wrong.status, 400, 'bad requests count too');
      const limited = await h.call('POST', '/hosts/enroll', { token: null, json: {} });
      assert.equal(limited.status, 429);
      assert.equal((limited.json as ApiError).code, 'RATE_LIMITED');
      assert.equal(limited.headers.get('retry-after'), '10');
      ms += 10_000;
      await h.enroll('r3');
    });

    it('registration keys bind a feed and tags; feeds validate their fields', async () => {
      const h = await start();
      await h.ok('POST', '/feeds', { json: { name: 'edge', autoPublish: true, requireValidated: false } });
      const key = await ringKey(h, 'edge', ['eu', 'web']);
      const host = await h.enroll('edge1', { key });
      const rec = await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`);
      assert.deepEqual([rec.feed, rec.tags], ['edge', ['eu', 'web']]);
      await h.checkin(host.token, { tags: ['rack-7'] });
      assert.deepEqual((await h.ok<HostRecord>('GET', `/hosts/${host.hostId}`)).tags, ['eu', 'rack-7', 'web']);
      assert.equal((await h.ok<HostRecord[]>('GET', '/hosts?tag=rack-7')).length, 1);
      assert.equal((await h.ok<HostRecord[]>('GET', '/hosts?feed=canary')).length, 0);

      const badName = await h.call('POST', '/feeds', { json: { name: 'Bad Name!' } });
      assert.equal(badName.status, 400);
      assert.match((badName.json as ApiError).message, /\/name/);
      const badWindow = await h.call('POST', '/feeds', {
        json: { name: 'w', windows: [{ days: ['funday'], start: '25:00', end: '01:00' }] },
      });
      assert.equal(badWindow.status, 400);
      assert.match((badWindow.json as ApiError).message, /windows/);
      const unknown = await h.call('POST', '/feeds', { json: { name: 'u', promotesTo: 'nowhere' } });
      assert.equal((unknown.json as ApiError).code, 'FEED_NOT_FOUND');
      assert.equal((await h.call('DELETE', '/feeds/edge')).status, 409, 'a feed with hosts is not deleted');
      const revoked = await h.ok<{ id: string }[]>('GET', '/registration-keys');
      await h.ok('POST', `/registration-keys/${revoked[0]?.id ?? ''}/revoke`);
      const refused = await h.call('POST', '/hosts/enroll', {
        token: null,
        json: { registrationKey: key, hostname: 'late', kernel: kernelIdentity(), agentVersion: '1' },
      });
      assert.equal(refused.status, 403);
      assert.equal((refused.json as ApiError).code, 'REGISTRATION_KEY_INVALID');
    });

    it('serves /openapi.json built from the route schemas and /metrics with the fleet series', async () => {
      const h = await start();
      const host = await h.enroll('metered');
      const sse = await SseClient.open(h.server.url, host.token);
      await sse.waitFor(() => true);
      await h.publish(1);
      await sse.waitFor((e) => e.desired?.level === 1);
      await h.checkin(host.token, {
        appliedLevel: 1,
        state: 'patched',
        lastApply: {
          action: 'apply',
          fromLevel: 0,
          toLevel: 1,
          ok: true,
          durationMs: 5,
          at: '2026-03-02T10:00:00.000Z',
        },
      });
      const doc = (await h.call('GET', '/openapi.json', { token: null })).json as {
        openapi: string;
        paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
      };
      assert.equal(doc.openapi, '3.1.0');
      for (const p of [
        '/api/v1/feeds',
        '/api/v1/feeds/{name}',
        '/api/v1/rollback',
        '/api/v1/events/stream',
        '/api/v1/hosts/checkin',
        '/api/v1/tokens',
        '/api/v1/audit',
        '/api/v1/hosts/{subject}/pin',
        '/metrics',
      ]) {
        assert.ok(doc.paths[p] !== undefined, `openapi lists ${p}`);
      }
      const body = doc.paths['/api/v1/rollback']?.['post']?.requestBody?.content['application/json']?.schema as {
        properties: Record<string, unknown>;
      };
      assert.deepEqual(Object.keys(body.properties).sort(), ['feed', 'kernelId', 'level', 'tag']);

      const metrics = await h.call('GET', '/metrics');
      assert.equal(metrics.status, 200);
      const text = metrics.bytes.toString();
      assert.match(text, /livegraft_hosts\{feed="production",state="patched"\} 1/);
      assert.match(text, new RegExp(`livegraft_feed_level\\{feed="production",kernel_id="${KERNEL_ID}"\\} 1`));
      assert.match(text, /livegraft_sse_connections 1/);
      assert.match(text, /livegraft_checkin_duration_seconds_count\{outcome="feed"\} [1-9]/);
      assert.match(text, /livegraft_apply_results_total\{action="apply",result="ok"\} 1/);
      assert.match(text, /livegraft_push_latency_seconds_count [1-9]/);
      assert.equal((await h.call('GET', '/metrics', { token: null })).status, 401);
      await sse.close();
    });
  });
}
