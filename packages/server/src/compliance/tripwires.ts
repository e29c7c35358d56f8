import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { TripwireEvent, TripwireRecord } from '@livegraft/protocol';
import type { ComplianceDatabase, TripwireEventsTable } from './schema.ts';

/** Most events one listing returns. */
export const MAX_TRIPWIRE_LIST = 1_000;
export const DEFAULT_TRIPWIRE_LIST = 100;

export interface TripwireQuery {
  hostId?: string;
  cve?: string;
  limit?: number;
}

/**
 * Same host and same event fields give the same id, so an agent that resends
 * a batch after a lost answer does not double-count.
 */
export function tripwireId(hostId: string, e: TripwireEvent): string {
  const key = [hostId, e.cve, e.fixId ?? '', e.level ?? '', e.pid, e.uid, e.comm, e.kernelTime ?? '', e.at].join('\0');
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 32);
}

export class TripwireRepository {
  readonly #db: Kysely<ComplianceDatabase>;

  constructor(db: Kysely<ComplianceDatabase>) {
    this.#db = db;
  }

  /** Stores the events not stored before; returns those newly stored. */
  async record(hostId: string, events: readonly TripwireEvent[], now: Date): Promise<TripwireRecord[]> {
    const receivedAt = now.toISOString();
    const fresh: TripwireRecord[] = [];
    await this.#db.transaction().execute(async (tx) => {
      const host = await tx.selectFrom('hosts').select('hostname').where('id', '=', hostId).executeTakeFirst();
      for (const e of events) {
        const row: TripwireEventsTable = {
          id: tripwireId(hostId, e),
          host_id: hostId,
          cve: e.cve,
          fix_id: e.fixId ?? null,
          level: e.level ?? null,
          pid: e.pid,
          uid: e.uid,
          comm: e.comm,
          kernel_time: e.kernelTime ?? null,
          at: new Date(e.at).toISOString(),
          received_at: receivedAt,
          message: e.message ?? null,
        };
        const r = await tx
          .insertInto('tripwire_events')
          .values(row)
          .onConflict((oc) => oc.column('id').doNothing())
          .executeTakeFirst();
        if (Number(r.numInsertedOrUpdatedRows ?? 0n) > 0) fresh.push(toRecord(row, host?.hostname ?? hostId));
      }
    });
    return fresh;
  }

  /** Events stored for the host. */
  async countForHost(hostId: string): Promise<number> {
    const row = await this.#db
      .selectFrom('tripwire_events')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('host_id', '=', hostId)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Deletes events that arrived before `before`; returns how many. */
  async expire(before: Date): Promise<number> {
    const r = await this.#db
      .deleteFrom('tripwire_events')
      .where('received_at', '<', before.toISOString())
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Newest first. */
  async list(q: TripwireQuery): Promise<TripwireRecord[]> {
    let query = this.#db
      .selectFrom('tripwire_events')
      .leftJoin('hosts', 'hosts.id', 'tripwire_events.host_id')
      .selectAll('tripwire_events')
      .select('hosts.hostname');
    if (q.hostId !== undefined) query = query.where('tripwire_events.host_id', '=', q.hostId);
    if (q.cve !== undefined) query = query.where('tripwire_events.cve', '=', q.cve);
    const limit = Math.min(Math.max(1, q.limit ?? DEFAULT_TRIPWIRE_LIST), MAX_TRIPWIRE_LIST);
    const rows = await query
      .orderBy('tripwire_events.at', 'desc')
      .orderBy('tripwire_events.received_at', 'desc')
      .orderBy('tripwire_events.id')
      .limit(limit)
      .execute();
    return rows.map((r) => toRecord(r, r.hostname ?? r.host_id));
  }
}

function toRecord(r: TripwireEventsTable, hostname: string): TripwireRecord {
  return {
    id: r.id,
    hostId: r.host_id,
    hostname,
    cve: r.cve,
    fixId: r.fix_id,
    level: r.level,
    // PostgreSQL bigint columns come back as strings.
    pid: Number(r.pid),
    uid: Number(r.uid),
    comm: r.comm,
    kernelTime: r.kernel_time === null ? null : Number(r.kernel_time),
    at: r.at,
    receivedAt: r.received_at,
    message: r.message,
  };
}
