import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import {
  LivegraftError,
  type AuditEntry,
  type CheckinRequest,
  type DesiredLevel,
  type FeedRecord,
  type HaltRecord,
  type LatestResponse,
  type PinRecord,
  type PinScope,
} from '@livegraft/protocol';
import { AuditRepository } from '../db/audit.ts';
import { FeedRepository, toFeedLevel, type Feed } from '../db/feeds.ts';
import type { FleetHost, HostRepository } from '../db/hosts.ts';
import { PinRepository } from '../db/pins.ts';
import type { PatchRepository } from '../db/patches.ts';
import type { Database } from '../db/schema.ts';
import { ApiTokenRepository, RegistrationKeyRepository } from '../db/tokens.ts';
import type { FleetBus, Notice } from './bus.ts';
import { desiredLevel, feedKey, haltKey, type FleetSnapshot, type PublishedLevel } from './desired.ts';
import { LevelFixes, levelKey } from './level-fixes.ts';
import { evaluatePromotions, type Promotion } from './promotion.ts';
import { SnapshotCache, type KernelFacts } from './snapshot-cache.ts';

/** Who made a change, for the audit log. */
export interface Actor {
  id: string;
  name: string;
  role: string;
  ip: string | null;
}

/** The least time between two promotion checks of one feed that check-ins asked for. */
export const PROMOTION_CHECK_GAP_MS = 1000;

export const SYSTEM_ACTOR: Actor = { id: 'system', name: 'livegraft-server', role: 'system', ip: null };
/**
 * Apply failures that are about delivery or the host's own policy, not about
 * the patch on a kernel: a refused download, a full disk, a kernel that
 * enforces signatures. They are reported, but they do not halt a rollout.
 */
const NON_HALTING_CODES: ReadonlySet<string> = new Set([
  'DISK_FULL',
  'STAGING_WRITE_FAILED',
  'DOWNGRADE_REFUSED',
  'AGENT_DISABLED',
  'NEEDS_ATTENTION',
  'KERNEL_REJECTED_SIGNATURE',
  'BUSY',
  'CACHE_MISSING',
  'MODULE_HASH_MISMATCH',
  'RATE_LIMITED',
]);
const NON_HALTING_PREFIXES = ['TUF_', 'DOWNLOAD_', 'SERVER_'];

export function saysNothingAboutThePatch(code: string | undefined): boolean {
  if (code === undefined) return false;
  return NON_HALTING_CODES.has(code) || NON_HALTING_PREFIXES.some((p) => code.startsWith(p));
}

/** Kernel log events that halt a level when seen after it was applied; taints from livepatch itself do not. */
const HALTING_EVENTS = new Set(['warn', 'oops', 'bug', 'panic']);

export interface FleetOptions {
  db: Kysely<Database>;
  hosts: HostRepository;
  patches: PatchRepository;
  bus: FleetBus;
  clock: () => Date;
  randomId: () => string;
  log: Logger;
  stallSec: number;
}

/**
 * The rollout model: feeds with a level per kernel, promotions between them,
 * pins, rollbacks and halts. Every change is audited and announced on the bus
 * so push streams on every node learn of it.
 */
export class Fleet {
  readonly feeds: FeedRepository;
  readonly pins: PinRepository;
  readonly tokens: ApiTokenRepository;
  readonly registrationKeys: RegistrationKeyRepository;
  readonly audit: AuditRepository;
  readonly #o: FleetOptions;
  readonly #cache = new SnapshotCache();
  readonly #promotionChecks = new Map<string, { again: boolean }>();
  #stopped = false;
  readonly #levelFixes: LevelFixes;

  constructor(o: FleetOptions) {
    this.#o = o;
    this.feeds = new FeedRepository(o.db);
    this.pins = new PinRepository(o.db);
    this.tokens = new ApiTokenRepository(o.db);
    this.registrationKeys = new RegistrationKeyRepository(o.db);
    this.audit = new AuditRepository(o.db);
    this.#levelFixes = new LevelFixes(o.db);
  }

  get bus(): FleetBus {
    return this.#o.bus;
  }

  /** Drops the in-memory fleet snapshot: called on every fleet notice (any node's) and every local change. */
  invalidate(): void {
    this.#cache.invalidate();
  }

  async record(actor: Actor, action: string, target: string, details: unknown = null): Promise<void> {
    // Every fleet change is audited; the audit is where local writes reach the cache.
    this.#cache.invalidate();
    const entry: AuditEntry = {
      id: this.#o.randomId(),
      at: this.#o.clock().toISOString(),
      actor: { id: actor.id, name: actor.name, role: actor.role },
      ip: actor.ip,
      action,
      target,
      details,
    };
    await this.audit.append(entry);
  }

  async notify(n: Omit<Notice & { kind: 'desired' }, 'kind' | 'at'>): Promise<void> {
    // Before the bus delivers it (later, and asynchronously): this node's next answer must see the change.
    this.#cache.invalidate();
    await this.#o.bus.publish({ kind: 'desired', at: Date.now(), ...n });
  }

  async snapshot(kernelIds: string[]): Promise<FleetSnapshot> {
    const kernels = [...new Set(kernelIds)];
    const facts = new Map<string, KernelFacts>();
    const missing: string[] = [];
    for (const k of kernels) {
      const cached = this.#cache.kernel(k);
      if (cached === undefined) missing.push(k);
      else facts.set(k, cached);
    }
    let pins = this.#cache.pins();
    if (missing.length > 0 || pins === undefined) {
      const generation = this.#cache.generation;
      const [levels, halts, allPins, published] = await Promise.all([
        this.feeds.levels({ kernelIds: missing }),
        this.feeds.halts(missing),
        pins === undefined ? this.pins.list() : Promise.resolve(pins),
        this.#published(missing),
      ]);
      for (const k of missing) facts.set(k, { feedLevels: [], halts: [], published: published.get(k) ?? [] });
      for (const r of levels) facts.get(r.kernel_id)?.feedLevels.push(r);
      for (const h of halts) facts.get(h.kernelId)?.halts.push(h);
      for (const k of missing) {
        const f = facts.get(k);
        if (f !== undefined) this.#cache.setKernel(generation, k, f);
      }
      this.#cache.setPins(generation, allPins);
      pins = allPins;
    }
    const snap: FleetSnapshot = {
      feedLevels: new Map(),
      halted: new Set(),
      pins: pins.filter((p) => p.kernelId === null || kernels.includes(p.kernelId)),
      published: new Map(),
    };
    for (const [k, f] of facts) {
      for (const r of f.feedLevels) snap.feedLevels.set(feedKey(r.feed, r.kernel_id), r);
      for (const h of f.halts) snap.halted.add(haltKey(h.kernelId, h.level));
      if (f.published.length > 0) snap.published.set(k, f.published);
    }
    return snap;
  }

  async #published(kernelIds: string[]): Promise<Map<string, PublishedLevel[]>> {
    const out = new Map<string, PublishedLevel[]>();
    if (kernelIds.length === 0) return out;
    const rows = await this.#o.db
      .selectFrom('patches')
      .select(['kernel_id', 'level', 'published_at'])
      .where('kernel_id', 'in', kernelIds)
      .where('published_at', 'is not', null)
      .orderBy('kernel_id')
      .orderBy('level')
      .execute();
    // Host ignore-lists need each level's fixes; manifests are read once per level, not per snapshot.
    const fixes = await this.#levelFixes.of(rows.map((r) => ({ kernelId: r.kernel_id, level: r.level })));
    for (const r of rows) {
      const list = out.get(r.kernel_id) ?? [];
      const fixIds = fixes.get(levelKey(r.kernel_id, r.level)) ?? [];
      list.push({ level: r.level, publishedAt: r.published_at ?? '', fixIds });
      out.set(r.kernel_id, list);
    }
    return out;
  }

  async desiredFor(hosts: FleetHost[]): Promise<Map<string, DesiredLevel | null>> {
    const snap = await this.snapshot(hosts.map((h) => h.kernelId));
    return new Map(hosts.map((h) => [h.id, desiredLevel(h, snap)]));
  }

  /** For the push hub: fresh host facts plus desired levels. */
  async resolve(hostIds: string[]): Promise<Map<string, { host: FleetHost; desired: DesiredLevel | null }>> {
    const hosts = await this.#o.hosts.fleetHosts(hostIds);
    const desired = await this.desiredFor(hosts);
    return new Map(hosts.map((h) => [h.id, { host: h, desired: desired.get(h.id) ?? null }]));
  }

  /** The check-in answer's `latest`: the manifest of the desired level. */
  async manifestFor(kernelId: string, desired: DesiredLevel | null): Promise<LatestResponse | null> {
    if (desired === null || desired.level === 0) return null;
    const cached = this.#cache.manifest(kernelId, desired.level);
    if (cached !== undefined) return cached.value ?? null;
    const generation = this.#cache.generation;
    const found = await this.#o.patches.publishedLevel(kernelId, desired.level);
    this.#cache.setManifest(generation, kernelId, desired.level, found);
    return found ?? null;
  }

  async feedRecords(): Promise<FeedRecord[]> {
    const [feeds, levels, halts, pins, counts] = await Promise.all([
      this.feeds.list(),
      this.feeds.levels(),
      this.feeds.halts(),
      this.pins.list({ scope: 'feed' }),
      this.#o.hosts.countByFeed(),
    ]);
    const haltOf = new Map(halts.map((h) => [haltKey(h.kernelId, h.level), h]));
    return feeds.map((f) => ({
      ...f,
      levels: levels
        .filter((l) => l.feed === f.name)
        .map((l) => toFeedLevel(l, haltOf.get(haltKey(l.kernel_id, l.level)))),
      pins: pins.filter((p) => p.subject === f.name),
      hostCount: counts.get(f.name) ?? 0,
    }));
  }

  async requireFeed(name: string): Promise<Feed> {
    const feed = await this.feeds.get(name);
    if (feed === undefined)
      throw new LivegraftError('FEED_NOT_FOUND', `no feed named "${name}"; see GET /api/v1/feeds`);
    return feed;
  }

  /** Refuses a level that is neither 0 (no patch) nor published for the kernel. */
  async requirePublished(kernelId: string, level: number): Promise<void> {
    if (level === 0) return;
    if ((await this.#o.patches.publishedLevel(kernelId, level)) === undefined) {
      throw new LivegraftError('LEVEL_NOT_FOUND', `kernel ${kernelId} has no published level ${level}`);
    }
  }

  /** A passed VM validation or an operator's override is recorded for the level: gated feeds may take it. */
  async isValidated(kernelId: string, level: number): Promise<boolean> {
    return (await this.feeds.validatedLevels([kernelId])).has(haltKey(kernelId, level));
  }

  /**
   * A level was published: it lands in every auto-publish feed (a feed that
   * requires validation only when the level has one). Returns the feeds that moved.
   */
  async onPublished(kernelId: string, level: number, actor: Actor): Promise<string[]> {
    // A newly published level changes the snapshot even when no feed moves.
    this.#cache.invalidate();
    const now = this.#o.clock();
    const moved: string[] = [];
    // A halted level (failed, or rolled back by an operator) does not come back by being published again.
    if ((await this.feeds.halts([kernelId])).some((h) => h.level === level)) return moved;
    const validated = (await this.feeds.validatedLevels([kernelId])).has(haltKey(kernelId, level));
    for (const feed of (await this.feeds.list()).filter((f) => f.autoPublish && (validated || !f.requireValidated))) {
      const change = { feed: feed.name, kernelId, level, source: 'publish' as const, allowDowngrade: false };
      if ((await this.feeds.setLevel({ ...change, onlyUpward: true }, now)) !== undefined) moved.push(feed.name);
    }
    if (moved.length > 0) {
      await this.record(actor, 'feed.publish', kernelId, { level, feeds: moved });
      await this.notify({ feeds: moved, kernelIds: [kernelId] });
    }
    return moved;
  }

  /** An operator sets a feed's level; lower than now needs allowDowngrade (or use rollback). */
  async setFeedLevel(
    feedName: string,
    kernelId: string,
    level: number,
    allowDowngrade: boolean,
    actor: Actor,
  ): Promise<void> {
    const feed = await this.requireFeed(feedName);
    await this.requirePublished(kernelId, level);
    if (feed.requireValidated && level > 0 && !(await this.isValidated(kernelId, level))) {
      throw new LivegraftError(
        'NOT_VALIDATED',
        `feed ${feedName} requires validated levels, and level ${level} of kernel ${kernelId} has no passed validation; record an override (PUT /api/v1/kernels/${kernelId}/levels/${level}/validation) or turn the feed's requireValidated off`,
      );
    }
    const current = await this.feeds.level(feedName, kernelId);
    if (current !== undefined && level < current.level && !allowDowngrade) {
      throw new LivegraftError(
        'DOWNGRADE_REFUSED',
        `feed ${feedName} is at level ${current.level}; going to ${level} is a rollback: pass allowDowngrade or use POST /api/v1/rollback`,
      );
    }
    const change = { feed: feedName, kernelId, level, source: 'manual' as const, allowDowngrade, onlyUpward: false };
    await this.feeds.setLevel(change, this.#o.clock());
    await this.record(actor, 'feed.set-level', feedName, { kernelId, level, allowDowngrade });
    await this.notify({ feeds: [feedName], kernelIds: [kernelId] });
  }

  /**
   * Fleet rollback. A feed goes to the level with downgrades allowed, and the
   * levels above it are halted so promotion does not bring them back; a tag
   * gets a pin that allows downgrades.
   */
  async rollback(
    target: { feed: string } | { tag: string },
    kernelId: string,
    level: number,
    actor: Actor,
  ): Promise<void> {
    await this.requirePublished(kernelId, level);
    const now = this.#o.clock();
    if ('feed' in target) {
      await this.requireFeed(target.feed);
      const current = await this.feeds.level(target.feed, kernelId);
      const change = { feed: target.feed, kernelId, level, source: 'rollback' as const, allowDowngrade: true };
      await this.feeds.setLevel({ ...change, onlyUpward: false }, now);
      if (current !== undefined && current.level > level) {
        await this.feeds.halt({
          kernelId,
          level: current.level,
          reason: `rolled back in feed ${target.feed} to level ${level} by ${actor.name}`,
          hostId: null,
          at: now.toISOString(),
        });
      }
      await this.record(actor, 'rollback.feed', target.feed, { kernelId, level, from: current?.level ?? null });
      await this.notify({ kernelIds: [kernelId] });
    } else {
      await this.pins.set({
        scope: 'tag',
        subject: target.tag,
        kernelId,
        level,
        cutoff: null,
        allowDowngrade: true,
        reason: 'rollback',
        createdAt: now.toISOString(),
        createdBy: actor.name,
      });
      await this.record(actor, 'rollback.tag', target.tag, { kernelId, level });
      await this.notify({ tags: [target.tag] });
    }
  }

  async pin(
    scope: PinScope,
    subject: string,
    spec: { kernelId?: string; level?: number; cutoff?: string },
    actor: Actor,
  ): Promise<PinRecord> {
    if ((spec.level === undefined) === (spec.cutoff === undefined)) {
      throw new LivegraftError('VALIDATION_FAILED', 'a pin takes either "level" (with "kernelId") or "cutoff"', {
        details: { problems: [{ path: '/level', message: 'give exactly one of level and cutoff' }] },
      });
    }
    if (spec.level !== undefined && spec.kernelId === undefined) {
      throw new LivegraftError('VALIDATION_FAILED', 'a level pin needs "kernelId": levels are per kernel build', {
        details: { problems: [{ path: '/kernelId', message: 'required with level' }] },
      });
    }
    if (spec.level !== undefined && spec.kernelId !== undefined) await this.requirePublished(spec.kernelId, spec.level);
    const pin: PinRecord = {
      scope,
      subject,
      kernelId: spec.level === undefined ? null : (spec.kernelId ?? null),
      level: spec.level ?? null,
      cutoff: spec.cutoff === undefined ? null : new Date(spec.cutoff).toISOString(),
      allowDowngrade: false,
      reason: 'pin',
      createdAt: this.#o.clock().toISOString(),
      createdBy: actor.name,
    };
    await this.pins.set(pin);
    await this.record(actor, `pin.${scope}`, subject, pin);
    await this.notify(noticeFor(scope, subject));
    return pin;
  }

  async unpin(scope: PinScope, subject: string, kernelId: string | undefined, actor: Actor): Promise<number> {
    const removed = await this.pins.remove(scope, subject, kernelId);
    if (removed > 0) {
      await this.record(actor, `unpin.${scope}`, subject, { kernelId: kernelId ?? null, removed });
      await this.notify(noticeFor(scope, subject));
    }
    return removed;
  }

  async resume(kernelId: string, level: number, actor: Actor): Promise<boolean> {
    const resumed = await this.feeds.resume(kernelId, level);
    if (resumed) {
      await this.record(actor, 'rollout.resume', kernelId, { level });
      await this.notify({ kernelIds: [kernelId] });
    }
    return resumed;
  }

  async #halt(h: HaltRecord): Promise<void> {
    if (!(await this.feeds.halt(h))) return;
    this.#o.log.warn(h, 'rollout halted');
    await this.record(SYSTEM_ACTOR, 'rollout.halt', h.kernelId, h);
    await this.notify({ kernelIds: [h.kernelId] });
  }

  /**
   * Looks at a check-in for trouble after an apply: a failed apply, a
   * transition stuck longer than the stall limit, or a kernel warning/oops
   * reported after the last apply. Each halts the level concerned.
   */
  async reviewCheckin(
    hostId: string,
    report: CheckinRequest,
    before: { previousApplyAt: string | null; previousEventAt: string | null },
  ): Promise<HaltRecord[]> {
    const at = this.#o.clock().toISOString();
    const kernelId = report.kernel.id;
    const halts: HaltRecord[] = [];
    const last = report.lastApply;
    if (
      last !== undefined &&
      last.at !== before.previousApplyAt &&
      !last.ok &&
      last.action === 'apply' &&
      !saysNothingAboutThePatch(last.code)
    ) {
      const why = [last.code, last.message].filter((x) => x !== undefined).join(': ');
      halts.push({ kernelId, level: last.toLevel, reason: `apply failed on ${hostId}: ${why}`, hostId, at });
    }
    const ps = report.patchState;
    if (ps?.transition === true && (ps.transitionSec ?? 0) >= this.#o.stallSec) {
      const level = levelOfModule(ps.module) ?? last?.toLevel ?? report.appliedLevel;
      const reason = `transition stalled on ${hostId} for ${Math.round(ps.transitionSec ?? 0)} s`;
      if (level > 0) halts.push({ kernelId, level, reason, hostId, at });
    }
    const appliedAt = last?.ok === true ? last.at : before.previousApplyAt;
    const bad = (report.kernelEvents ?? []).filter(
      (e) =>
        HALTING_EVENTS.has(e.kind) &&
        (before.previousEventAt === null || e.at > before.previousEventAt) &&
        (appliedAt === null || e.at >= appliedAt),
    );
    if (bad.length > 0 && report.appliedLevel > 0) {
      const first = bad[0];
      const reason = `kernel ${first?.kind ?? 'event'} on ${hostId} after applying: ${(first?.message ?? '').slice(0, 200)}`;
      halts.push({ kernelId, level: report.appliedLevel, reason, hostId, at });
    }
    for (const h of halts) await this.#halt(h);
    return halts;
  }

  /**
   * A promotion check of one feed, soon, after a check-in that may have
   * changed its counts. During a rollout thousands of check-ins ask at once;
   * one run per feed is in flight, and asks that come meanwhile make one more
   * run after it, so every ask is followed by a run that saw its check-in.
   * That next run starts PROMOTION_CHECK_GAP_MS after the one before: rules
   * count hosts over minutes, and a run per reported apply only cost CPU.
   */
  checkPromotionsSoon(feed: string, onError: (err: unknown) => void): void {
    const running = this.#promotionChecks.get(feed);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const entry = { again: false };
    this.#promotionChecks.set(feed, entry);
    const run = async (): Promise<void> => {
      do {
        entry.again = false;
        await this.evaluatePromotions(feed);
        // Asks until the gap has passed wait for the next run; with none, the next ask runs at once.
        await new Promise((resolve) => setTimeout(resolve, PROMOTION_CHECK_GAP_MS).unref());
      } while (entry.again && !this.#stopped);
    };
    run()
      .catch(onError)
      .finally(() => this.#promotionChecks.delete(feed));
  }

  /** Ends the promotion checks check-ins asked for (a run in progress finishes); for server shutdown. */
  stop(): void {
    this.#stopped = true;
  }

  async evaluatePromotions(onlyFeed?: string): Promise<Promotion[]> {
    const done = await evaluatePromotions({ feeds: this.feeds, hosts: this.#o.hosts, clock: this.#o.clock }, onlyFeed);
    for (const p of done) {
      await this.record(SYSTEM_ACTOR, 'feed.promote', p.to, p);
      await this.notify({ feeds: [p.to], kernelIds: [p.kernelId] });
    }
    return done;
  }

  /** Manual promotion: copies the feed's levels (one kernel or all) into the feed it promotes to. */
  async promote(
    from: string,
    to: string | undefined,
    kernelId: string | undefined,
    actor: Actor,
  ): Promise<Promotion[]> {
    const source = await this.requireFeed(from);
    const dest = to ?? source.promotesTo;
    if (dest === null) {
      throw new LivegraftError(
        'BAD_REQUEST',
        `feed ${from} promotes to no feed: name the target feed with --to <feed> (the "to" field in the API)`,
      );
    }
    const destFeed = await this.requireFeed(dest);
    const now = this.#o.clock();
    const halted = new Set((await this.feeds.halts()).map((h) => haltKey(h.kernelId, h.level)));
    const validated = destFeed.requireValidated ? await this.feeds.validatedLevels() : undefined;
    const done: Promotion[] = [];
    for (const row of await this.feeds.levels({
      feed: from,
      ...(kernelId === undefined ? {} : { kernelIds: [kernelId] }),
    })) {
      if (halted.has(haltKey(row.kernel_id, row.level))) continue;
      // A gated feed takes no unproven level, even by hand (level 0, no patch, needs no proof).
      if (validated !== undefined && row.level > 0 && !validated.has(haltKey(row.kernel_id, row.level))) continue;
      const change = { feed: dest, kernelId: row.kernel_id, level: row.level, source: 'promotion' as const };
      const moved = await this.feeds.setLevel({ ...change, allowDowngrade: false, onlyUpward: true }, now);
      if (moved !== undefined)
        done.push({ from, to: dest, kernelId: row.kernel_id, level: row.level, previous: moved.previous });
    }
    for (const p of done) await this.notify({ feeds: [p.to], kernelIds: [p.kernelId] });
    await this.record(actor, 'feed.promote', dest, { from, kernelId: kernelId ?? null, promoted: done });
    return done;
  }
}

function noticeFor(scope: PinScope, subject: string): Omit<Notice & { kind: 'desired' }, 'kind' | 'at'> {
  if (scope === 'host') return { hostIds: [subject] };
  if (scope === 'tag') return { tags: [subject] };
  return { feeds: [subject] };
}

function levelOfModule(name: string | undefined): number | undefined {
  const m = /_l([0-9]+)$/.exec(name ?? '');
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
