import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Migrator, type Kysely } from 'kysely';
import { AuditRepository } from '../src/db/audit.ts';
import { FeedRepository } from '../src/db/feeds.ts';
import { HeartbeatBuffer, HEARTBEATS_PER_TRANSACTION } from '../src/db/heartbeats.ts';
import { HostRepository, ID_CHUNK } from '../src/db/hosts.ts';
import { migrateToLatest, migrations } from '../src/db/migrations.ts';
import type { ReadSync, WriteSync } from '../src/db/node-sqlite.ts';
import { PatchRepository } from '../src/db/patches.ts';
import { PinRepository } from '../src/db/pins.ts';
import type { Database } from '../src/db/schema.ts';
import { ApiTokenRepository, RegistrationKeyRepository } from '../src/db/tokens.ts';
import { buildPatch, KERNEL_ID, kernelIdentity, OTHER_KERNEL_ID, PROC_VERSION } from './helpers.ts';

/** The user-space tables the check-in's host read looks into (the user-space module owns them). */
interface UserspaceOfferTables {
  userspace_feed_levels: {
    feed: string;
    build_id: string;
    level: number;
    previous_level: number;
    source: string;
    allow_downgrade: number;
    set_at: string;
  };
  userspace_pins: { host_id: string; build_id: string; level: number; created_at: string };
}

export interface ContractDb {
  db: Kysely<Database>;
  /** SQLite's synchronous read, which the server gives its host repository. */
  readSync?: ReadSync;
  /** SQLite's synchronous write, likewise. */
  writeSync?: WriteSync;
  close(): Promise<void>;
}

const T0 = Date.parse('2026-03-01T00:00:00.000Z');
const at = (sec: number): Date => new Date(T0 + sec * 1000);

/**
 * The storage contract every backend meets: the same migrations, and the
 * same answers from every repository, including the conditional writes that
 * keep concurrent server nodes consistent. Run once per backend.
 */
export function runStorageContract(
  name: string,
  makeDb: () => Promise<ContractDb>,
  skip: string | false = false,
): void {
  describe(`storage contract (${name})`, { skip }, () => {
    let c: ContractDb;
    let hosts: HostRepository;
    let feeds: FeedRepository;
    before(async () => {
      c = await makeDb();
      hosts = new HostRepository(c.db, undefined, c.readSync, c.writeSync);
      feeds = new FeedRepository(c.db);
    });
    after(async () => c.close());

    it('migrations create the default feeds and are idempotent', async () => {
      await migrateToLatest(c.db as unknown as Kysely<unknown>);
      const list = await feeds.list();
      assert.deepEqual(
        list.map((f) => [f.name, f.promotesTo, f.autoPublish, f.promotion]),
        [
          ['canary', 'staging', true, { afterSec: 86400 }],
          ['production', null, true, null],
          ['staging', 'production', false, { afterSec: 86400 }],
        ],
      );
    });

    it('patches: insert never overwrites; publish sets the time once', async () => {
      const patches = new PatchRepository(c.db);
      const p = buildPatch({ level: 1 });
      assert.equal((await patches.insert(p.manifest, at(0), false)).inserted, true);
      const again = await patches.insert(p.manifest, at(5), true);
      assert.deepEqual([again.inserted, again.sameManifest, again.row.published_at], [false, true, null]);
      assert.equal((await patches.publish(KERNEL_ID, 1, at(10)))?.publishedAt, at(10).toISOString());
      assert.equal((await patches.publish(KERNEL_ID, 1, at(20)))?.publishedAt, at(10).toISOString());
    });

    it('hosts: enrol into a feed with tags, check in, revoke; fleet facts and counts', async () => {
      await hosts.enroll(
        {
          id: 'h1',
          hostname: 'a',
          tokenHash: 'a'.repeat(64),
          kernel: kernelIdentity(),
          agentVersion: '1',
          feed: 'canary',
          tags: ['x'],
        },
        at(0),
      );
      await hosts.enroll(
        { id: 'h2', hostname: 'b', tokenHash: 'b'.repeat(64), kernel: kernelIdentity(), agentVersion: '1' },
        at(0),
      );
      assert.deepEqual(await hosts.findByTokenHash('a'.repeat(64)), { id: 'h1', tokenHash: 'a'.repeat(64) });
      const report = {
        kernel: kernelIdentity(),
        appliedLevel: 1,
        state: 'patched' as const,
        agentVersion: '2',
        uptimeSec: 5.5,
        tags: ['y', 'x'],
        lastApply: {
          action: 'apply' as const,
          fromLevel: 0,
          toLevel: 1,
          ok: true,
          durationMs: 3,
          at: at(1).toISOString(),
        },
        kernelEvents: [{ at: at(2).toISOString(), kind: 'warn' as const, message: 'w' }],
      };
      const first = await hosts.checkin('h1', report, at(3));
      assert.deepEqual(first, {
        previousLevel: 0,
        previousApplyAt: null,
        previousEventAt: null,
        // The host as the check-in left it, the same as reading it afresh.
        host: await hosts.fleetHost('h1'),
        userspaceOffer: false,
      });
      assert.equal(first?.host?.appliedLevel, 1);
      // The same events again are not stored twice.
      assert.deepEqual(await hosts.checkin('h1', report, at(4)), {
        previousLevel: 1,
        previousApplyAt: at(1).toISOString(),
        previousEventAt: at(2).toISOString(),
        host: await hosts.fleetHost('h1'),
        userspaceOffer: false,
      });
      // A library level in the host's feed, or a library pin on the host, is read with the host.
      const userspace = c.db as unknown as Kysely<UserspaceOfferTables>;
      const offer = async (): Promise<boolean | undefined> =>
        (await hosts.checkin('h1', report, at(4)))?.userspaceOffer;
      await userspace
        .insertInto('userspace_feed_levels')
        .values({
          feed: 'stable',
          build_id: 'b'.repeat(40),
          level: 1,
          previous_level: 0,
          source: 'manual',
          allow_downgrade: 0,
          set_at: at(4).toISOString(),
        })
        .execute();
      assert.equal(await offer(), false, 'a level in another feed offers nothing');
      await userspace.updateTable('userspace_feed_levels').set({ feed: 'canary' }).execute();
      assert.equal(await offer(), true, 'a level in the host feed');
      await userspace.deleteFrom('userspace_feed_levels').execute();
      await userspace
        .insertInto('userspace_pins')
        .values({ host_id: 'h1', build_id: 'b'.repeat(40), level: 1, created_at: at(4).toISOString() })
        .execute();
      assert.equal(await offer(), true, 'a pin on the host');
      await userspace.deleteFrom('userspace_pins').execute();
      assert.equal(await offer(), false);
      const rec = await hosts.get('h1');
      assert.deepEqual(
        [rec?.feed, rec?.tags, rec?.kernelEvents?.length, rec?.uptimeSec],
        ['canary', ['x', 'y'], 1, 5.5],
      );
      assert.deepEqual(await hosts.fleetHost('h1'), {
        id: 'h1',
        feed: 'canary',
        kernelId: KERNEL_ID,
        tags: ['x', 'y'],
        autoUpdate: true,
        appliedLevel: 1,
        ignore: [],
      });
      assert.equal((await hosts.get('h2'))?.feed, 'production', 'the default feed');
      assert.deepEqual(await hosts.appliedStats('canary', KERNEL_ID, 1), { total: 1, applied: 1 });
      assert.deepEqual(await hosts.appliedStats('canary', KERNEL_ID, 2), { total: 1, applied: 0 });
      assert.deepEqual(await hosts.appliedStats('production', OTHER_KERNEL_ID, 1), { total: 0, applied: 0 });
      assert.ok(await hosts.update('h2', { feed: 'staging', autoUpdate: false, tags: ['z'] }));
      assert.equal(await hosts.update('nope', { feed: 'staging' }), false);
      assert.deepEqual(
        (await hosts.list({ tag: 'z' })).map((h) => h.id),
        ['h2'],
      );
      assert.deepEqual(
        (await hosts.countsByFeedAndState()).sort((a, b) => a.feed.localeCompare(b.feed)),
        [
          { feed: 'canary', state: 'patched', count: 1 },
          { feed: 'staging', state: 'unpatched', count: 1 },
        ],
      );
      assert.ok(await hosts.revoke('h2', at(9)));
      assert.equal(await hosts.revoke('h2', at(9)), false);
      assert.equal(await hosts.findByTokenHash('b'.repeat(64)), undefined);
      assert.deepEqual(
        (await hosts.fleetHosts(['h1', 'h2'])).map((h) => h.id),
        ['h1'],
        'revoked hosts are left out',
      );
    });

    it('hosts: a repeated report batches only its time and uptime; any change is written at once', async () => {
      const id = 'hb1';
      await hosts.enroll(
        { id, hostname: id, tokenHash: 'c'.repeat(64), kernel: kernelIdentity(), agentVersion: '2' },
        at(0),
      );
      const lastApply = {
        action: 'apply' as const,
        ok: true,
        fromLevel: 0,
        toLevel: 1,
        at: at(9).toISOString(),
        durationMs: 900,
      };
      const report = {
        kernel: kernelIdentity(),
        appliedLevel: 1,
        state: 'patched' as const,
        agentVersion: '2',
        uptimeSec: 10,
        lastApply,
        kernelEvents: [{ kind: 'warn' as const, message: 'x', at: at(8).toISOString() }],
      };
      const first = await hosts.checkin(id, report, at(10));
      assert.deepEqual([first?.previousLevel, first?.previousApplyAt, first?.previousEventAt], [0, null, null]);
      // The same report again: nothing in it is new, and only the time and uptime wait to be written.
      const again = await hosts.checkin(id, { ...report, uptimeSec: 70 }, at(70));
      assert.deepEqual(
        [again?.previousLevel, again?.previousApplyAt, again?.previousEventAt],
        [1, lastApply.at, at(8).toISOString()],
      );
      assert.equal(again?.host?.appliedLevel, 1);
      const read = await hosts.get(id);
      assert.equal(read?.lastCheckinAt, at(70).toISOString(), 'a read sees the batched time');
      assert.equal(read?.uptimeSec, 70);
      // A pending beat never moves the time back over a newer full write.
      await hosts.checkin(id, { ...report, uptimeSec: 80 }, at(80));
      const changed = await hosts.checkin(id, { ...report, state: 'error', lastError: 'boom', uptimeSec: 90 }, at(90));
      assert.equal(changed?.previousLevel, 1);
      await hosts.flushHeartbeats();
      const after = await hosts.get(id);
      assert.deepEqual([after?.state, after?.lastError, after?.lastCheckinAt], ['error', 'boom', at(90).toISOString()]);
      const fresh = new HostRepository(c.db);
      await fresh.checkin(id, { ...report, state: 'error', lastError: 'boom', uptimeSec: 95 }, at(85));
      await fresh.flushHeartbeats();
      assert.equal((await hosts.get(id))?.lastCheckinAt, at(90).toISOString(), 'an older beat does not win');
      // A revoked host's repeated report is not stored.
      assert.ok(await hosts.revoke(id, at(100)));
      const revoked = await hosts.checkin(id, { ...report, state: 'error', lastError: 'boom', uptimeSec: 99 }, at(110));
      assert.equal(revoked?.host, undefined);
      assert.equal((await hosts.get(id))?.lastCheckinAt, at(90).toISOString());
    });

    it('hosts: a change without events keeps the stored ones, and a new kernel moves the host to it and back', async () => {
      const id = 'hk1';
      await hosts.enroll(
        { id, hostname: id, tokenHash: 'e'.repeat(64), kernel: kernelIdentity(), agentVersion: '2' },
        at(0),
      );
      const lastApply = {
        action: 'apply' as const,
        ok: true,
        fromLevel: 0,
        toLevel: 1,
        at: at(9).toISOString(),
        durationMs: 1,
      };
      const report = {
        kernel: kernelIdentity(),
        appliedLevel: 1,
        state: 'patched' as const,
        agentVersion: '2',
        uptimeSec: 10,
        lastApply,
      };
      await hosts.checkin(
        id,
        { ...report, kernelEvents: [{ kind: 'warn' as const, message: 'x', at: at(8).toISOString() }] },
        at(10),
      );
      const other = kernelIdentity(PROC_VERSION.replace('6.1.76-1', '6.1.77-1'));
      const moved = await hosts.checkin(
        id,
        { ...report, kernel: other, appliedLevel: 0, state: 'unpatched', uptimeSec: 1 },
        at(20),
      );
      assert.deepEqual(
        [moved?.previousLevel, moved?.previousApplyAt, moved?.host?.kernelId],
        [1, lastApply.at, OTHER_KERNEL_ID],
      );
      let read = await hosts.get(id);
      assert.deepEqual([read?.kernelId, read?.kernelEvents?.length], [OTHER_KERNEL_ID, 1]);
      assert.deepEqual(
        (await hosts.list({ kernelId: OTHER_KERNEL_ID })).map((h) => h.id),
        [id],
        'the kernel index follows',
      );
      await hosts.checkin(id, { ...report, uptimeSec: 2 }, at(30));
      read = await hosts.get(id);
      assert.deepEqual([read?.kernelId, read?.appliedLevel, read?.kernelEvents?.length], [KERNEL_ID, 1, 1]);
      assert.deepEqual(
        (await hosts.list({ kernelId: OTHER_KERNEL_ID })).map((h) => h.id),
        [],
      );
    });

    it('hosts: the ignore-list persists, reaches the check-in facts, and an existing database migrates to it', async () => {
      assert.ok(await hosts.update('h1', { ignore: ['fix-2', 'CVE-fix.3'] }));
      assert.deepEqual((await hosts.get('h1'))?.ignore, ['fix-2', 'CVE-fix.3']);
      assert.deepEqual((await hosts.fleetHost('h1'))?.ignore, ['fix-2', 'CVE-fix.3']);
      const report = {
        kernel: kernelIdentity(),
        appliedLevel: 1,
        state: 'patched' as const,
        agentVersion: '2',
        uptimeSec: 1,
      };
      assert.deepEqual((await hosts.checkin('h1', report, at(5)))?.host?.ignore, ['fix-2', 'CVE-fix.3']);
      assert.ok(await hosts.update('h1', { autoUpdate: false }));
      assert.deepEqual((await hosts.get('h1'))?.ignore, ['fix-2', 'CVE-fix.3'], 'other changes keep it');

      // Back to the schema before the ignore-list, with hosts in it, and forward again.
      const migrator = new Migrator({
        db: c.db as unknown as Kysely<unknown>,
        provider: { getMigrations: () => Promise.resolve(migrations) },
      });
      const down = await migrator.migrateTo('0020_dashboard_sessions');
      assert.equal(down.error, undefined);
      assert.deepEqual(
        // Later migrations (0040 on) go down first; these two are the ones this test is about.
        down.results?.filter((r) => r.migrationName < '0040').map((r) => [r.migrationName, r.direction, r.status]),
        [
          ['0031_host_report_fp', 'Down', 'Success'],
          ['0030_host_ignore', 'Down', 'Success'],
        ],
      );
      const old = await (c.db as unknown as Kysely<{ hosts: { id: string } }>)
        .selectFrom('hosts')
        .selectAll()
        .where('id', '=', 'h1')
        .executeTakeFirst();
      assert.equal(old !== undefined && 'ignore_json' in old, false);
      await migrateToLatest(c.db as unknown as Kysely<unknown>);
      assert.deepEqual((await hosts.get('h1'))?.ignore, [], 'existing hosts start with an empty list');
      assert.deepEqual((await hosts.fleetHost('h1'))?.ignore, []);
      assert.ok(await hosts.update('h1', { autoUpdate: true }));
    });

    it('hosts: looks up more ids than one IN list holds', async () => {
      const n = ID_CHUNK + 7;
      await c.db.transaction().execute(async (tx) => {
        const many = new HostRepository(tx);
        for (let i = 0; i < n; i++) {
          const id = `bulk-${String(i).padStart(4, '0')}`;
          await many.enroll(
            {
              id,
              hostname: id,
              tokenHash: String(i).padStart(64, '0'),
              kernel: kernelIdentity(),
              agentVersion: '1',
            },
            at(0),
          );
        }
      });
      const ids = Array.from({ length: n }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);
      assert.equal((await hosts.fleetHosts(ids)).length, n);
    });

    it('hosts: a flush of more beats than one transaction holds stores them all, never moving a time back', async () => {
      // The hosts the test before enrolled.
      const ids = Array.from({ length: ID_CHUNK + 7 }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);
      assert.ok(ids.length > HEARTBEATS_PER_TRANSACTION, 'the batch spans two transactions');
      const errors: unknown[] = [];
      const beats = new HeartbeatBuffer(c.db, (err) => errors.push(err), c.writeSync);
      for (const id of ids) beats.add(id, at(50).toISOString(), 50);
      await beats.flush();
      // The last host of the second transaction has a newer time stored already: its older beat loses.
      const last = ids.at(-1) ?? '';
      beats.add(last, at(60).toISOString(), 60);
      await beats.flush();
      for (const id of ids.slice(0, -1)) beats.add(id, at(70).toISOString(), 70);
      beats.add(last, at(55).toISOString(), 55);
      await beats.flush();
      assert.deepEqual(errors, []);
      const stored = new Map((await hosts.list()).map((h) => [h.id, [h.lastCheckinAt, h.uptimeSec]]));
      for (const id of ids.slice(0, -1)) assert.deepEqual(stored.get(id), [at(70).toISOString(), 70], id);
      assert.deepEqual(stored.get(last), [at(60).toISOString(), 60]);
    });

    it('feed levels: upward-only changes, rollbacks, previous level, and one winner among concurrent writers', async () => {
      const up = (level: number) => ({
        feed: 'canary',
        kernelId: KERNEL_ID,
        level,
        source: 'publish' as const,
        allowDowngrade: false,
        onlyUpward: true,
      });
      assert.deepEqual(await feeds.setLevel(up(2), at(0)), { previous: 0 });
      assert.equal(await feeds.setLevel(up(2), at(1)), undefined, 'same level: no change');
      assert.equal(await feeds.setLevel(up(1), at(1)), undefined, 'publish never lowers');
      assert.deepEqual(await feeds.setLevel(up(3), at(2)), { previous: 2 });
      const rollback = { ...up(1), source: 'rollback' as const, allowDowngrade: true, onlyUpward: false };
      assert.deepEqual(await feeds.setLevel(rollback, at(3)), { previous: 3 });
      const row = await feeds.level('canary', KERNEL_ID);
      assert.deepEqual(
        [row?.level, row?.previous_level, row?.source, Number(row?.allow_downgrade), row?.set_at],
        [1, 3, 'rollback', 1, at(3).toISOString()],
      );
      await feeds.setHealthySince('canary', KERNEL_ID, 1, at(4).toISOString());
      assert.equal((await feeds.level('canary', KERNEL_ID))?.healthy_since, at(4).toISOString());

      const racers = await Promise.all(
        [5, 9, 7, 6, 8].map((level) =>
          feeds.setLevel({ ...up(level), feed: 'staging', kernelId: OTHER_KERNEL_ID }, at(5)),
        ),
      );
      assert.equal((await feeds.level('staging', OTHER_KERNEL_ID))?.level, 9);
      assert.ok(racers.some((r) => r !== undefined));
      assert.deepEqual(
        (await feeds.levels({ kernelIds: [OTHER_KERNEL_ID] })).map((r) => r.feed),
        ['staging'],
      );
      assert.deepEqual(await feeds.levels({ kernelIds: [] }), []);
    });

    it('feeds: create, update, refuse duplicates, delete with their levels and pins', async () => {
      assert.ok(
        await feeds.create(
          {
            name: 'ring1',
            promotesTo: 'production',
            promotion: { minPercent: 50 },
            windows: [{ days: ['mon'], start: '01:00', end: '02:00' }],
          },
          at(0),
        ),
      );
      assert.equal(await feeds.create({ name: 'ring1' }, at(0)), false);
      assert.ok(await feeds.update('ring1', { autoPublish: true, promotion: null, description: 'd' }));
      const f = await feeds.get('ring1');
      assert.deepEqual([f?.autoPublish, f?.promotion, f?.description, f?.windows.length], [true, null, 'd', 1]);
      await feeds.setLevel(
        { feed: 'ring1', kernelId: KERNEL_ID, level: 1, source: 'manual', allowDowngrade: false, onlyUpward: false },
        at(0),
      );
      await new PinRepository(c.db).set({
        scope: 'feed',
        subject: 'ring1',
        kernelId: null,
        level: null,
        cutoff: at(0).toISOString(),
        allowDowngrade: false,
        reason: 'pin',
        createdAt: at(0).toISOString(),
        createdBy: 't',
      });
      await feeds.delete('ring1');
      assert.equal(await feeds.get('ring1'), undefined);
      assert.deepEqual(await feeds.levels({ feed: 'ring1' }), []);
      assert.deepEqual(await new PinRepository(c.db).list({ subject: 'ring1' }), []);
    });

    it('halts: recorded once, listed, resumed', async () => {
      const h = { kernelId: KERNEL_ID, level: 4, reason: 'r', hostId: 'h1', at: at(0).toISOString() };
      assert.ok(await feeds.halt(h));
      assert.equal(await feeds.halt({ ...h, reason: 'again' }), false);
      assert.deepEqual(await feeds.halts([KERNEL_ID]), [h]);
      assert.deepEqual(await feeds.halts([OTHER_KERNEL_ID]), []);
      assert.ok(await feeds.resume(KERNEL_ID, 4));
      assert.equal(await feeds.resume(KERNEL_ID, 4), false);
    });

    it('pins: one per subject and kernel, replaced in place, removed per kernel or all', async () => {
      const pins = new PinRepository(c.db);
      const base = {
        scope: 'host' as const,
        subject: 'h1',
        cutoff: null,
        allowDowngrade: false,
        reason: 'pin' as const,
        createdAt: at(0).toISOString(),
        createdBy: 't',
      };
      await pins.set({ ...base, kernelId: KERNEL_ID, level: 1 });
      await pins.set({ ...base, kernelId: KERNEL_ID, level: 2 });
      await pins.set({ ...base, kernelId: null, level: null, cutoff: at(0).toISOString() });
      await pins.set({ ...base, kernelId: OTHER_KERNEL_ID, level: 3 });
      const mine = await pins.list({ scope: 'host', subject: 'h1' });
      assert.deepEqual(
        mine.map((p) => [p.kernelId, p.level]).sort(),
        [
          [KERNEL_ID, 2],
          [OTHER_KERNEL_ID, 3],
          [null, null],
        ].sort(),
      );
      assert.equal(await pins.remove('host', 'h1', KERNEL_ID), 2, 'the kernel pin and the any-kernel cut-off');
      assert.equal(await pins.remove('host', 'h1'), 1);
      assert.deepEqual(await pins.list({ scope: 'host' }), []);
    });

    it('API tokens and registration keys: stored hashed, found while live, revoked once', async () => {
      const tokens = new ApiTokenRepository(c.db);
      await tokens.create({
        id: 't1',
        name: 'ci',
        role: 'operator',
        tokenHash: 'd'.repeat(64),
        createdAt: at(0).toISOString(),
        createdBy: 'x',
      });
      assert.equal((await tokens.findLiveByHash('d'.repeat(64)))?.role, 'operator');
      assert.deepEqual(Object.keys((await tokens.list())[0] ?? {}).sort(), [
        'createdAt',
        'createdBy',
        'expiresAt',
        'id',
        'name',
        'revokedAt',
        'role',
      ]);
      assert.ok(await tokens.revoke('t1', at(1)));
      assert.equal(await tokens.revoke('t1', at(1)), false);
      assert.equal(await tokens.findLiveByHash('d'.repeat(64)), undefined);

      const keys = new RegistrationKeyRepository(c.db);
      await keys.create({
        id: 'k1',
        name: 'dc1',
        feed: 'canary',
        tags: ['dc1'],
        keyHash: 'e'.repeat(64),
        createdAt: at(0).toISOString(),
      });
      assert.deepEqual((await keys.findLiveByHash('e'.repeat(64)))?.tags, ['dc1']);
      assert.ok(await keys.revoke('k1', at(1)));
      assert.equal(await keys.findLiveByHash('e'.repeat(64)), undefined);
      assert.equal((await keys.list())[0]?.revokedAt, at(1).toISOString());
    });

    it('audit: newest first, filtered by action and time, limited', async () => {
      const audit = new AuditRepository(c.db);
      for (let i = 0; i < 5; i++) {
        await audit.append({
          id: `a${i}`,
          at: at(i).toISOString(),
          actor: { id: 'u', name: 'user', role: 'admin' },
          ip: i % 2 === 0 ? '10.0.0.1' : null,
          action: i % 2 === 0 ? 'even' : 'odd',
          target: `t${i}`,
          details: { i, nested: [i] },
        });
      }
      assert.deepEqual(
        (await audit.list()).map((e) => e.id),
        ['a4', 'a3', 'a2', 'a1', 'a0'],
      );
      assert.deepEqual(
        (await audit.list({ action: 'odd' })).map((e) => e.id),
        ['a3', 'a1'],
      );
      assert.deepEqual(
        (await audit.list({ since: at(3).toISOString() })).map((e) => e.id),
        ['a4', 'a3'],
      );
      assert.deepEqual((await audit.list({ limit: 1 }))[0]?.details, { i: 4, nested: [4] });
      assert.equal((await audit.list({ action: 'odd' }))[0]?.ip, null);
    });
  });
}
