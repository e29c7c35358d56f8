import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely, Migration } from 'kysely';
import { API_PREFIX, type ApplyResult, type CheckinRequest } from '@livegraft/protocol';
import type { ApplyRecord } from '@livegraft/protocol/dashboard';
import type { App } from '../context.ts';

/**
 * Every apply, rollback, unload and boot re-apply hosts report, kept so the
 * dashboard can show a host's whole history (levels 1, 2, 3...) and the
 * fleet's recent applies, not only each host's last one. A check-in carries
 * the host's last apply; it is stored once (host, time, action).
 */

interface HostAppliesTable {
  host_id: string;
  at: string;
  action: string;
  kernel_id: string;
  from_level: number;
  to_level: number;
  /** 1 or 0 (portable across SQLite and PostgreSQL). */
  ok: number;
  code: string | null;
  message: string | null;
  duration_ms: number;
  received_at: string;
}

interface AppliesDb {
  host_applies: HostAppliesTable;
  hosts: { id: string; hostname: string };
}

/** 0070: the apply history. Schema builder only (SQLite and PostgreSQL). */
export const hostAppliesMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('host_applies')
      .addColumn('host_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('at', 'varchar(40)', (c) => c.notNull())
      .addColumn('action', 'varchar(16)', (c) => c.notNull())
      .addColumn('kernel_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('from_level', 'integer', (c) => c.notNull())
      .addColumn('to_level', 'integer', (c) => c.notNull())
      .addColumn('ok', 'integer', (c) => c.notNull())
      .addColumn('code', 'varchar(64)')
      .addColumn('message', 'text')
      .addColumn('duration_ms', 'double precision', (c) => c.notNull())
      .addColumn('received_at', 'varchar(40)', (c) => c.notNull())
      .addPrimaryKeyConstraint('host_applies_pk', ['host_id', 'at', 'action'])
      .execute();
    await db.schema.createIndex('host_applies_at_idx').on('host_applies').column('at').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('host_applies').execute();
  },
};

/** Hosts whose last stored apply is remembered, so a repeated check-in costs no write. */
const MAX_REMEMBERED_HOSTS = 50_000;
/** Messages are stored up to this (the check-in allows 4000 characters). */
const MAX_MESSAGE_CHARS = 4000;
/** How long a noted apply waits to be written with others. This node's reads include it meanwhile. */
export const APPLY_FLUSH_MS = 250;
/** Noted applies that force a write before the timer. */
export const APPLY_MAX_PENDING = 1000;
/** Rows per INSERT statement (11 parameters each; well under SQLite's and PostgreSQL's limits). */
const ROWS_PER_INSERT = 500;

/**
 * The apply history, written in batches: a fleet rollout reports thousands of
 * applies within seconds, and one transaction per batch costs the database a
 * fraction of one commit per apply. A batch that fails to write is logged and
 * forgotten as stored, so the host's next check-in (which repeats its last
 * apply) notes it again; nothing else depends on it.
 */
export class ApplyLog {
  readonly #db: Kysely<AppliesDb>;
  readonly #clock: () => Date;
  readonly #onError: (err: unknown) => void;
  readonly #stored = new Map<string, string>();
  #pending: HostAppliesTable[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Kysely<unknown>, clock: () => Date, onError: (err: unknown) => void) {
    this.#db = db as Kysely<AppliesDb>;
    this.#clock = clock;
    this.#onError = onError;
  }

  /** Notes the apply unless it is already stored or noted; it is written within APPLY_FLUSH_MS. */
  note(hostId: string, kernelId: string, a: ApplyResult): void {
    const key = `${a.at}\0${a.action}`;
    if (this.#stored.get(hostId) === key) return;
    this.#pending.push({
      host_id: hostId,
      at: new Date(a.at).toISOString(),
      action: a.action,
      kernel_id: kernelId,
      from_level: a.fromLevel,
      to_level: a.toLevel,
      ok: a.ok ? 1 : 0,
      code: a.code ?? null,
      message: a.message === undefined ? null : a.message.slice(0, MAX_MESSAGE_CHARS),
      duration_ms: a.durationMs,
      received_at: this.#clock().toISOString(),
    });
    this.#stored.delete(hostId);
    this.#stored.set(hostId, key);
    if (this.#stored.size > MAX_REMEMBERED_HOSTS) {
      const oldest = this.#stored.keys().next().value;
      if (oldest !== undefined) this.#stored.delete(oldest);
    }
    if (this.#pending.length >= APPLY_MAX_PENDING) {
      void this.flush();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), APPLY_FLUSH_MS);
      this.#timer.unref();
    }
  }

  /** Writes every noted apply; resolves when they (and any write already running) are stored or failed. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length === 0) return this.#flushing;
    const batch = this.#pending;
    this.#pending = [];
    this.#flushing = this.#flushing.then(() =>
      this.#write(batch).catch((err: unknown) => {
        for (const row of batch) {
          if (this.#stored.get(row.host_id) === `${row.at}\0${row.action}`) this.#stored.delete(row.host_id);
        }
        this.#onError(err);
      }),
    );
    return this.#flushing;
  }

  async #write(batch: HostAppliesTable[]): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      for (let i = 0; i < batch.length; i += ROWS_PER_INSERT) {
        await tx
          .insertInto('host_applies')
          .values(batch.slice(i, i + ROWS_PER_INSERT))
          .onConflict((oc) => oc.columns(['host_id', 'at', 'action']).doNothing())
          .execute();
      }
    });
  }

  /** One host's applies, newest first. */
  async forHost(hostId: string, limit: number): Promise<ApplyRecord[]> {
    await this.flush();
    const rows = await this.#select().where('a.host_id', '=', hostId).orderBy('a.at', 'desc').limit(limit).execute();
    return rows.map(toRecord);
  }

  /** The fleet's latest applies, newest first. */
  async recent(limit: number): Promise<ApplyRecord[]> {
    await this.flush();
    const rows = await this.#select().orderBy('a.at', 'desc').limit(limit).execute();
    return rows.map(toRecord);
  }

  #select() {
    return this.#db
      .selectFrom('host_applies as a')
      .leftJoin('hosts as h', 'h.id', 'a.host_id')
      .select([
        'a.host_id',
        'a.at',
        'a.action',
        'a.kernel_id',
        'a.from_level',
        'a.to_level',
        'a.ok',
        'a.code',
        'a.message',
        'a.duration_ms',
        'h.hostname',
      ]);
  }
}

type Row = Omit<HostAppliesTable, 'received_at'> & { hostname: string | null };

function toRecord(r: Row): ApplyRecord {
  return {
    hostId: r.host_id,
    hostname: r.hostname ?? r.host_id,
    kernelId: r.kernel_id,
    action: r.action as ApplyResult['action'],
    fromLevel: r.from_level,
    toLevel: r.to_level,
    ok: Number(r.ok) === 1,
    ...(r.code === null ? {} : { code: r.code }),
    ...(r.message === null ? {} : { message: r.message }),
    durationMs: Number(r.duration_ms),
    at: r.at,
  };
}

const CHECKIN_ROUTE = `${API_PREFIX}/hosts/checkin`;

/**
 * Notes the apply of each successful check-in before its answer is sent, so
 * this node's history reads include it once the host has its answer; the
 * database has it within APPLY_FLUSH_MS. Hooked onto the check-in route only,
 * as routes are added; call before the API registers.
 */
export function recordAppliesOnCheckin(root: App, log: ApplyLog): void {
  const store = async (req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    const who = req.principal;
    const report = req.body as CheckinRequest | undefined;
    if (reply.statusCode >= 300 || who?.kind !== 'host' || report?.lastApply === undefined) return payload;
    try {
      log.note(who.hostId, report.kernel.id, report.lastApply);
    } catch (err) {
      // The history is for people; it never stops patch delivery.
      req.log.error({ err, hostId: who.hostId }, 'could not store the apply in the host history');
    }
    return payload;
  };
  root.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.url !== CHECKIN_ROUTE || !methods.includes('POST')) return;
    const existing = route.onSend === undefined ? [] : Array.isArray(route.onSend) ? route.onSend : [route.onSend];
    route.onSend = [...existing, store] as typeof route.onSend;
  });
}
