import type { DesiredLevel, HostRecord } from '@livegraft/protocol';
import {
  MAX_HELD_LISTED,
  MAX_HOST_FACET,
  type DashboardRollouts,
  type HostPage,
  type HostPageQuery,
  type HostRow,
  type HostSort,
  type RolloutHealth,
} from '@livegraft/protocol/dashboard';
import { HOST_STATUSES, hostStatus } from '@livegraft/protocol/dashboard-rules';
import type { RouteContext } from '../context.ts';
import { DEFAULT_FEED } from '../db/fleet-migration.ts';
import { fleetHostOf } from '../db/hosts.ts';
import { kernelString, type ComplianceHost, type ExposureService } from '../compliance/exposure.ts';

/** Rows a page gets unless it asks for another number. */
export const DEFAULT_HOST_PAGE = 50;
/** A snapshot is reused for ten times as long as it took to make, at most this long, while nothing changed. */
const MAX_REUSE_MS = 30_000;
const REUSE_FACTOR = 10;

interface Snapshot {
  generatedAt: string;
  hosts: HostRecord[];
  desired: Map<string, DesiredLevel | null>;
  /** Per host id: its open CVEs (only when asked for). */
  exposure: Map<string, { critical: number; high: number; total: number }> | undefined;
}

/**
 * The host list and the rollout counts the dashboard pages show, computed on
 * the server from one snapshot of the fleet (hosts, the levels the server
 * wants for them and, for roles that may read it, their exposure), so a
 * page downloads one page of rows whatever the fleet's size. The snapshot is
 * shared by concurrent requests and reused briefly while no change was
 * announced to the live dashboards (paging through it stays consistent).
 */
export class HostTable {
  readonly #ctx: RouteContext;
  readonly #changes: () => number;
  readonly #last = new Map<
    boolean,
    { snap: Promise<Snapshot>; at: number; reuseMs: number; gen: number; pending: boolean }
  >();

  constructor(ctx: RouteContext, changes: () => number) {
    this.#ctx = ctx;
    this.#changes = changes;
  }

  async page(query: HostPageQuery, withExposure: boolean): Promise<HostPage> {
    const snap = await this.#snapshot(withExposure);
    const now = Date.parse(snap.generatedAt);
    const interval = this.#ctx.config.checkinIntervalSec;
    const all: HostRow[] = snap.hosts.map((h) => {
      const desired = snap.desired.get(h.id) ?? null;
      return {
        id: h.id,
        hostname: h.hostname,
        status: hostStatus({ ...h, desired }, interval, now),
        feed: h.feed ?? DEFAULT_FEED,
        tags: h.tags ?? [],
        kernelId: h.kernelId,
        release: h.release,
        appliedLevel: h.appliedLevel,
        desiredLevel: desired !== null && desired.level !== h.appliedLevel ? desired.level : null,
        lastCheckinAt: h.lastCheckinAt,
        exposure: snap.exposure?.get(h.id) ?? null,
      };
    });
    const needle = (query.q ?? '').trim().toLowerCase();
    const matching = all.filter(
      (r) =>
        (needle === '' || r.hostname.toLowerCase().includes(needle) || r.id.startsWith(needle)) &&
        (query.status === undefined || r.status === query.status) &&
        (query.feed === undefined || r.feed === query.feed) &&
        (query.tag === undefined || r.tags.includes(query.tag)) &&
        (query.kernel === undefined || r.release === query.kernel) &&
        (query.level === undefined || r.appliedLevel === query.level),
    );
    const key = sortKey(query.sort ?? 'status');
    const sign = query.order === 'desc' ? -1 : 1;
    matching.sort((a, b) => sign * compare(key(a), key(b)) || compare(a.hostname, b.hostname) || compare(a.id, b.id));
    const offset = query.offset ?? 0;
    const limit = query.limit ?? DEFAULT_HOST_PAGE;
    return {
      generatedAt: snap.generatedAt,
      total: all.length,
      matching: matching.length,
      offset,
      limit,
      exposure: snap.exposure !== undefined,
      facets: {
        feeds: facet(all.map((r) => r.feed)),
        tags: facet(all.flatMap((r) => r.tags)),
        kernels: facet(all.map((r) => r.release)),
        levels: [...new Set(all.map((r) => r.appliedLevel))].sort((a, b) => a - b).slice(0, MAX_HOST_FACET),
      },
      items: matching.slice(offset, offset + limit),
    };
  }

  /** Per feed and kernel build with live hosts: hosts on the feed's level, failed, and held by their ignore-list. */
  async rollouts(): Promise<DashboardRollouts> {
    const snap = await this.#snapshot(false);
    const levels = new Map(
      (await this.#ctx.fleet.feeds.levels()).map((r): [string, number] => [`${r.feed}\0${r.kernel_id}`, r.level]),
    );
    const groups = new Map<string, RolloutHealth>();
    for (const h of snap.hosts) {
      if ((h.revokedAt ?? null) !== null) continue;
      const feed = h.feed ?? DEFAULT_FEED;
      const key = `${feed}\0${h.kernelId}`;
      let g = groups.get(key);
      if (g === undefined) {
        g = {
          feed,
          kernelId: h.kernelId,
          level: levels.get(key) ?? 0,
          total: 0,
          applied: 0,
          failed: 0,
          heldCount: 0,
          held: [],
        };
        groups.set(key, g);
      }
      g.total++;
      if (h.state === 'error') {
        g.failed++;
        continue;
      }
      if (h.appliedLevel >= g.level) {
        g.applied++;
        continue;
      }
      const ignored = snap.desired.get(h.id)?.ignoredFixes ?? [];
      if (ignored.length === 0) continue;
      g.heldCount++;
      if (g.held.length < MAX_HELD_LISTED) g.held.push({ hostId: h.id, hostname: h.hostname, ignoredFixes: ignored });
    }
    return {
      generatedAt: snap.generatedAt,
      groups: [...groups.values()].sort((a, b) => compare(a.feed, b.feed) || compare(a.kernelId, b.kernelId)),
    };
  }

  #snapshot(withExposure: boolean): Promise<Snapshot> {
    const gen = this.#changes();
    const now = performance.now();
    const last = this.#last.get(withExposure);
    if (last !== undefined && last.gen === gen && (last.pending || now - last.at < last.reuseMs)) return last.snap;
    const entry = { snap: this.#take(withExposure), at: now, reuseMs: 0, gen, pending: true };
    this.#last.set(withExposure, entry);
    entry.snap.then(
      () => {
        entry.pending = false;
        entry.reuseMs = Math.min(MAX_REUSE_MS, REUSE_FACTOR * (performance.now() - now));
        entry.at = performance.now();
      },
      () => {
        if (this.#last.get(withExposure) === entry) this.#last.delete(withExposure);
      },
    );
    return entry.snap;
  }

  async #take(withExposure: boolean): Promise<Snapshot> {
    const ctx = this.#ctx;
    const generatedAt = ctx.clock().toISOString();
    const hosts = await ctx.hosts.list();
    const desired = await ctx.fleet.desiredFor(hosts.filter((h) => (h.revokedAt ?? null) === null).map(fleetHostOf));
    const exposure = withExposure ? await perHostExposure(ctx.compliance.exposure) : undefined;
    return { generatedAt, hosts, desired, exposure };
  }
}

/** Each live host's open CVEs, evaluated once per (kernel, level) like the overview's totals. */
async function perHostExposure(
  exposure: ExposureService,
): Promise<Map<string, { critical: number; high: number; total: number }>> {
  const groups = new Map<string, ComplianceHost[]>();
  for (const h of await exposure.hosts()) {
    const key = `${h.kernelId}\0${kernelString(h.procVersion, h.release)}\0${h.appliedLevel}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [h]);
    else g.push(h);
  }
  const out = new Map<string, { critical: number; high: number; total: number }>();
  for (const hosts of groups.values()) {
    const e = await exposure.hostExposure(hosts[0]!);
    if (e.error !== undefined) continue;
    const counts = { critical: e.counts.critical, high: e.counts.high, total: e.counts.total };
    for (const h of hosts) out.set(h.id, counts);
  }
  return out;
}

type Key = string | number;

function sortKey(sort: HostSort): (r: HostRow) => Key {
  switch (sort) {
    case 'status':
      return (r) => HOST_STATUSES.indexOf(r.status as (typeof HOST_STATUSES)[number]);
    case 'hostname':
      return (r) => r.hostname;
    case 'feed':
      return (r) => r.feed;
    case 'kernel':
      return (r) => r.release;
    case 'level':
      return (r) => r.appliedLevel;
    case 'checkin':
      return (r) => r.lastCheckinAt ?? '';
    case 'exposure':
      return (r) => (r.exposure === null ? -1 : r.exposure.critical * 1e12 + r.exposure.high * 1e6 + r.exposure.total);
  }
}

function compare(a: Key, b: Key): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return a < b ? -1 : a > b ? 1 : 0;
}

function facet(values: string[]): string[] {
  return [...new Set(values)].sort(compare).slice(0, MAX_HOST_FACET);
}
