import type { DesiredLevel, PinRecord } from '@livegraft/protocol';
import type { FeedLevelRow } from '../db/feeds.ts';
import type { FleetHost } from '../db/hosts.ts';

/** One published level of a kernel build. */
export interface PublishedLevel {
  level: number;
  publishedAt: string;
  /** The fix ids in the level's manifest; a level is cumulative, so these are all the fixes it carries. */
  fixIds: string[];
}

/** Everything needed to work out desired levels for hosts on some kernels, read once. */
export interface FleetSnapshot {
  /** key: feed + '\0' + kernelId */
  feedLevels: Map<string, FeedLevelRow>;
  /** key: kernelId + '\0' + level */
  halted: Set<string>;
  pins: PinRecord[];
  /** Published levels per kernel, ascending. */
  published: Map<string, PublishedLevel[]>;
}

export const feedKey = (feed: string, kernelId: string): string => `${feed}\u0000${kernelId}`;
export const haltKey = (kernelId: string, level: number): string => `${kernelId}\u0000${level}`;

/** The highest published, not halted level of a kernel at or below `max` (0 if none), skipping what `skip` says. */
function bestAtOrBelow(
  snap: FleetSnapshot,
  kernelId: string,
  max: number,
  publishedBy?: string,
  skip?: (p: PublishedLevel) => boolean,
): number {
  let best = 0;
  for (const p of snap.published.get(kernelId) ?? []) {
    if (p.level > max) break;
    if (publishedBy !== undefined && p.publishedAt > publishedBy) continue;
    if (snap.halted.has(haltKey(kernelId, p.level))) continue;
    if (skip?.(p) === true) continue;
    best = p.level;
  }
  return best;
}

/** The host's ignored fixes that a published level carries (none for level 0 or a level not published). */
function ignoredIn(snap: FleetSnapshot, host: FleetHost, level: number): string[] {
  if (level === 0 || host.ignore.length === 0) return [];
  const fixIds = snap.published.get(host.kernelId)?.find((p) => p.level === level)?.fixIds ?? [];
  return host.ignore.filter((f) => fixIds.includes(f));
}

/** The feed's level for the host's kernel, stepping back to the previous level while it is halted. */
function fromFeed(host: FleetHost, snap: FleetSnapshot): DesiredLevel | null {
  const row = snap.feedLevels.get(feedKey(host.feed, host.kernelId));
  if (row === undefined) return null;
  const allowDowngrade = Number(row.allow_downgrade) !== 0;
  if (row.source === 'rollback') return { level: row.level, reason: 'rollback', allowDowngrade, feed: host.feed };
  if (row.level > 0 && snap.halted.has(haltKey(host.kernelId, row.level))) {
    // Hosts not on the halted level yet wait on the previous one; those on it keep it (see below).
    const fallback = snap.halted.has(haltKey(host.kernelId, row.previous_level))
      ? bestAtOrBelow(snap, host.kernelId, row.previous_level)
      : row.previous_level;
    return { level: fallback, reason: 'feed', allowDowngrade: false, feed: host.feed };
  }
  return { level: row.level, reason: 'feed', allowDowngrade, feed: host.feed };
}

/** The pin that applies: host over tag over feed; within one, a kernel's level pin over a cut-off. */
function applicablePin(host: FleetHost, snap: FleetSnapshot, resolve: (p: PinRecord) => number): PinRecord | null {
  const fits = (p: PinRecord): boolean => p.kernelId === null || p.kernelId === host.kernelId;
  const best = (list: PinRecord[]): PinRecord | null => {
    const specific = list.filter((p) => p.kernelId !== null);
    const pool = specific.length > 0 ? specific : list;
    // Several tags may pin the host; the lowest level is the cautious choice.
    return pool.reduce<PinRecord | null>((a, p) => (a === null || resolve(p) < resolve(a) ? p : a), null);
  };
  const mine = snap.pins.filter(fits);
  return (
    best(mine.filter((p) => p.scope === 'host' && p.subject === host.id)) ??
    best(mine.filter((p) => p.scope === 'tag' && host.tags.includes(p.subject))) ??
    best(mine.filter((p) => p.scope === 'feed' && p.subject === host.feed))
  );
}

/**
 * What a host should run: its feed's level for its kernel, overridden by the
 * most specific pin (a tag rollback is a tag pin that allows downgrades). A
 * host with auto-update off gets reason 'manual': the level is on offer, the
 * agent applies it only when asked. A level carrying a fix on the host's
 * ignore-list is not offered: levels are cumulative, so the host waits on the
 * highest level below it without any ignored fix (`ignoredFixes` says which
 * held it). Unless downgrades are allowed, the level is never below the one
 * the host runs; ignored fixes in that level are reported (`ignoredRunning`),
 * not taken away. Null when nothing is on offer.
 */
export function desiredLevel(host: FleetHost, snap: FleetSnapshot): DesiredLevel | null {
  const base = fromFeed(host, snap);
  const cap = base?.level ?? 0;
  const resolve = (p: PinRecord): number =>
    p.level ?? (p.cutoff === null ? cap : bestAtOrBelow(snap, host.kernelId, cap, p.cutoff));
  const pin = applicablePin(host, snap, resolve);
  let out: DesiredLevel | null = base;
  // A cut-off pin bounds the levels the ignore-list may step down to as well.
  let cutoff: string | undefined;
  if (pin !== null && (pin.level !== null || base !== null)) {
    out = { level: resolve(pin), reason: pin.reason, allowDowngrade: pin.allowDowngrade, feed: host.feed };
    if (pin.level === null && pin.cutoff !== null) cutoff = pin.cutoff;
  }
  if (out !== null && !host.autoUpdate && out.reason !== 'rollback') out = { ...out, reason: 'manual' };
  if (out === null) return null;
  const offered = out.level;
  const holding = ignoredIn(snap, host, offered);
  if (holding.length > 0) {
    const ignore = new Set(host.ignore);
    const level = bestAtOrBelow(snap, host.kernelId, offered - 1, cutoff, (p) => p.fixIds.some((f) => ignore.has(f)));
    out = { ...out, level };
  }
  // Without an operator's downgrade, a host never goes below what it runs (a halt or a cut-off holds it there).
  if (!out.allowDowngrade && out.level < host.appliedLevel) out = { ...out, level: host.appliedLevel };
  if (holding.length > 0 && out.level < offered) out = { ...out, ignoredFixes: holding };
  const running = ignoredIn(snap, host, host.appliedLevel);
  if (running.length > 0) out = { ...out, ignoredRunning: running };
  return out;
}
