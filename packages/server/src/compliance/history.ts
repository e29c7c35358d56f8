import type { Kysely } from 'kysely';
import type { CheckinRequest } from '@livegraft/protocol';
import { BoundedMap } from '../bounded-map.ts';
import { CompiledShapes, runSteps, type Steps } from '../db/compiled.ts';
import type { WriteSync } from '../db/node-sqlite.ts';
import type { ComplianceDatabase } from './schema.ts';

export interface KernelSegment {
  seq: number;
  kernelId: string;
  release: string;
  procVersion: string;
  firstSeen: string;
  lastSeen: string;
}

export interface LevelSegment {
  seq: number;
  kernelId: string;
  level: number;
  cves: string[];
  from: string;
  to: string | null;
}

export interface HostHistory {
  kernels: KernelSegment[];
  levels: LevelSegment[];
}

/** Latest of two ISO timestamps. */
function later(a: string, b: string): string {
  return Date.parse(a) >= Date.parse(b) ? a : b;
}

/**
 * When the level the host reports became live: the report's own apply time
 * when it describes reaching this level, else the check-in time (which can be
 * up to a check-in interval late, never early).
 */
function levelSince(report: CheckinRequest, now: Date, notBefore: string): string {
  const a = report.lastApply;
  const at = a?.at === undefined ? NaN : Date.parse(a.at);
  if (a !== undefined && a.ok && a.toLevel === report.appliedLevel && at <= now.getTime()) {
    return later(new Date(at).toISOString(), notBefore);
  }
  return now.toISOString();
}

/**
 * How stale a kernel segment's last_seen may get while a host keeps
 * reporting the same thing. It only bounds when the server last saw the
 * kernel (a new kernel is dated by its boot time), and check-ins come hourly.
 */
export const LAST_SEEN_REFRESH_MS = 60_000;
/** Hosts whose last recorded report is remembered (the oldest are dropped past this). */
export const HISTORY_HEADS_MAX = 200_000;

/** What this node last wrote for a host, to skip the transaction while nothing changes. */
interface Head {
  kernelId: string;
  level: number;
  applyAt: string | null;
  uptimeSec: number;
  writtenAt: number;
}

/** The newest kernel row of a host, as far as recording the next check-in needs it. */
interface KernelTail {
  seq: number;
  kernel_id: string;
  first_seen: string;
  last_seen: string;
}

/** The newest level row of a host, likewise. */
interface LevelTail {
  seq: number;
  kernel_id: string;
  level: number;
  from_at: string;
  to_at: string | null;
}

/** What a host's history ends with after this node's last write. */
interface Tail {
  kernel: KernelTail;
  level: LevelTail;
}

export interface HistoryOptions {
  /**
   * This process is the only writer of the history (the embedded SQLite
   * database, which one server node opens): the newest rows it wrote are then
   * known without reading them back. Never with PostgreSQL, where another
   * node may have written since.
   */
  soleWriter?: boolean;
  /** SQLite only: runs the history's transaction at once on the connection (see WriteSync). */
  writeSync?: WriteSync | undefined;
}

/**
 * Kernel and patch-level history of hosts, recorded at each check-in: the
 * source of exposure windows. A kernel change is dated at the host's boot
 * (now - uptime), since a kernel only changes by booting.
 */
export class HistoryRepository {
  readonly #db: Kysely<ComplianceDatabase>;
  readonly #heads = new BoundedMap<string, Head>(HISTORY_HEADS_MAX);
  /** Sole writer only: each host's newest rows, so a change costs no reads. */
  readonly #tails: BoundedMap<string, Tail> | undefined;
  readonly #writeSync: WriteSync | undefined;
  readonly #shapes = new CompiledShapes();

  constructor(db: Kysely<ComplianceDatabase>, o: HistoryOptions = {}) {
    this.#db = db;
    this.#writeSync = o.writeSync;
    this.#tails = o.soleWriter === true ? new BoundedMap<string, Tail>(HISTORY_HEADS_MAX) : undefined;
  }

  /**
   * Whether the report repeats what this node last recorded for the host,
   * recently. Another node may have recorded a change in between (several
   * nodes share the database), but a host comes back to the same kernel and
   * level only through a reboot (uptime falls) or another apply (its time
   * differs), and either sends it down the full path.
   */
  #unchanged(hostId: string, report: CheckinRequest, now: number): boolean {
    const h = this.#heads.get(hostId);
    return (
      h !== undefined &&
      h.kernelId === report.kernel.id &&
      h.level === report.appliedLevel &&
      h.applyAt === (report.lastApply?.at ?? null) &&
      report.uptimeSec >= h.uptimeSec &&
      now - h.writtenAt >= 0 &&
      now - h.writtenAt < LAST_SEEN_REFRESH_MS
    );
  }

  #remember(hostId: string, report: CheckinRequest, now: number): void {
    this.#heads.set(hostId, {
      kernelId: report.kernel.id,
      level: report.appliedLevel,
      applyAt: report.lastApply?.at ?? null,
      uptimeSec: report.uptimeSec,
      writtenAt: now,
    });
  }

  async recordCheckin(hostId: string, report: CheckinRequest, now: Date, levelCves: readonly string[]): Promise<void> {
    if (this.#unchanged(hostId, report, now.getTime())) return;
    this.#heads.delete(hostId);
    await this.#record(hostId, report, now, levelCves);
    this.#remember(hostId, report, now.getTime());
  }

  async #record(hostId: string, report: CheckinRequest, now: Date, levelCves: readonly string[]): Promise<void> {
    const known = this.#tails?.get(hostId);
    this.#tails?.delete(hostId);
    const tail = await runSteps(this.#db as unknown as Kysely<unknown>, this.#writeSync, () =>
      this.#steps(hostId, report, now, levelCves, known),
    );
    // Kept only once the rows are committed: a failed transaction leaves the next check-in to read them.
    this.#tails?.set(hostId, tail);
  }

  /** The statements that record one check-in, as one transaction (see runSteps). */
  *#steps(
    hostId: string,
    report: CheckinRequest,
    now: Date,
    levelCves: readonly string[],
    known: Tail | undefined,
  ): Steps<Tail> {
    const db = this.#db;
    const sh = this.#shapes;
    const nowIso = now.toISOString();
    const lastKernel =
      known?.kernel ??
      ((yield sh.of('kernel.tail', [hostId, 1], () =>
        db
          .selectFrom('host_kernel_history')
          .select(['seq', 'kernel_id', 'first_seen', 'last_seen'])
          .where('host_id', '=', hostId)
          .orderBy('seq', 'desc')
          .limit(1),
      ))[0] as KernelTail | undefined);
    let kernel: KernelTail;
    if (lastKernel !== undefined && lastKernel.kernel_id === report.kernel.id) {
      kernel = { ...lastKernel, last_seen: nowIso };
      yield sh.of('kernel.seen', [nowIso, hostId, lastKernel.seq], () =>
        db
          .updateTable('host_kernel_history')
          .set({ last_seen: nowIso })
          .where('host_id', '=', hostId)
          .where('seq', '=', lastKernel.seq),
      );
    } else {
      const booted = new Date(now.getTime() - Math.max(0, report.uptimeSec) * 1000).toISOString();
      let kernelSince: string;
      if (lastKernel === undefined) {
        // The first report: first seen when it enrolled (the server knows nothing earlier).
        const host = (yield sh.of('host.enrolled', [hostId], () =>
          db.selectFrom('hosts').select('enrolled_at').where('id', '=', hostId),
        ))[0] as { enrolled_at: string } | undefined;
        kernelSince = host === undefined ? nowIso : earlier(host.enrolled_at, nowIso);
      } else {
        kernelSince = later(booted, lastKernel.last_seen);
      }
      kernel = {
        seq: (lastKernel?.seq ?? 0) + 1,
        kernel_id: report.kernel.id,
        first_seen: kernelSince,
        last_seen: nowIso,
      };
      const row = {
        host_id: hostId,
        ...kernel,
        release: report.kernel.release,
        proc_version: report.kernel.procVersion,
      };
      yield sh.of('kernel.insert', Object.values(row), () => db.insertInto('host_kernel_history').values(row));
    }

    const lastLevel =
      known?.level ??
      ((yield sh.of('level.tail', [hostId, 1], () =>
        db
          .selectFrom('host_level_history')
          .select(['seq', 'kernel_id', 'level', 'from_at', 'to_at'])
          .where('host_id', '=', hostId)
          .orderBy('seq', 'desc')
          .limit(1),
      ))[0] as LevelTail | undefined);
    if (
      lastLevel !== undefined &&
      lastLevel.kernel_id === report.kernel.id &&
      lastLevel.level === report.appliedLevel &&
      lastLevel.to_at === null
    ) {
      return { kernel, level: lastLevel };
    }
    const from =
      lastLevel === undefined
        ? kernel.first_seen
        : levelSince(report, now, later(lastLevel.from_at, kernel.first_seen));
    if (lastLevel !== undefined && lastLevel.to_at === null) {
      yield sh.of('level.close', [from, hostId, lastLevel.seq], () =>
        db
          .updateTable('host_level_history')
          .set({ to_at: from })
          .where('host_id', '=', hostId)
          .where('seq', '=', lastLevel.seq),
      );
    }
    const level: LevelTail = {
      seq: (lastLevel?.seq ?? 0) + 1,
      kernel_id: report.kernel.id,
      level: report.appliedLevel,
      from_at: from,
      to_at: null,
    };
    const row = { host_id: hostId, ...level, cves_json: JSON.stringify([...levelCves].sort()) };
    yield sh.of('level.insert', Object.values(row), () => db.insertInto('host_level_history').values(row));
    return { kernel, level };
  }

  async history(hostId: string): Promise<HostHistory> {
    const map = await this.histories([hostId]);
    return map.get(hostId) ?? { kernels: [], levels: [] };
  }

  /** Histories of many hosts in two queries (all hosts when ids is undefined). */
  async histories(hostIds?: readonly string[]): Promise<Map<string, HostHistory>> {
    const out = new Map<string, HostHistory>();
    if (hostIds !== undefined && hostIds.length === 0) return out;
    const get = (id: string): HostHistory => {
      let h = out.get(id);
      if (h === undefined) {
        h = { kernels: [], levels: [] };
        out.set(id, h);
      }
      return h;
    };
    let kq = this.#db.selectFrom('host_kernel_history').selectAll();
    let lq = this.#db.selectFrom('host_level_history').selectAll();
    if (hostIds !== undefined) {
      kq = kq.where('host_id', 'in', hostIds);
      lq = lq.where('host_id', 'in', hostIds);
    }
    for (const r of await kq.orderBy('host_id').orderBy('seq').execute()) {
      get(r.host_id).kernels.push({
        seq: r.seq,
        kernelId: r.kernel_id,
        release: r.release,
        procVersion: r.proc_version,
        firstSeen: r.first_seen,
        lastSeen: r.last_seen,
      });
    }
    for (const r of await lq.orderBy('host_id').orderBy('seq').execute()) {
      get(r.host_id).levels.push({
        seq: r.seq,
        kernelId: r.kernel_id,
        level: r.level,
        cves: JSON.parse(r.cves_json) as string[],
        from: r.from_at,
        to: r.to_at,
      });
    }
    return out;
  }
}

function earlier(a: string, b: string): string {
  return new Date(Math.min(Date.parse(a), Date.parse(b))).toISOString();
}
