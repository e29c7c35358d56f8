import type { Kysely } from 'kysely';
import { CompiledShapes, runSteps, type Steps } from './compiled.ts';
import type { WriteSync } from './node-sqlite.ts';
import type { Database } from './schema.ts';

/** How long a heartbeat waits to be written with others. Reads through HostRepository see it meanwhile. */
export const HEARTBEAT_FLUSH_MS = 500;
/** Pending heartbeats that force a flush before the timer. */
export const HEARTBEAT_MAX_PENDING = 5000;
/**
 * Beats per transaction. On SQLite a transaction runs at once on the event
 * loop (see WriteSync), so a full flush is cut into chunks with requests
 * served in between.
 */
export const HEARTBEATS_PER_TRANSACTION = 500;

export interface Beat {
  at: string;
  uptimeSec: number;
}

/**
 * Check-ins that repeat the host's last report change only its last
 * check-in time and uptime. Those two columns are written here in batches,
 * one transaction per HEARTBEATS_PER_TRANSACTION beats of a flush, instead of
 * one commit per check-in. Anything else a check-in changes is written at
 * once by the repository, which drops the host's pending beat first. A flush
 * never moves a host's check-in time backwards, so a newer write from another
 * node wins. The update is compiled once and reused for every beat.
 */
export class HeartbeatBuffer {
  readonly #db: Kysely<Database>;
  readonly #onError: (err: unknown) => void;
  #pending = new Map<string, Beat>();
  /** The batch being written, still visible to readers until it is stored. */
  #writing = new Map<string, Beat>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  readonly #writeSync: WriteSync | undefined;
  readonly #shapes = new CompiledShapes();

  /** `writeSync` (SQLite only) writes each chunk at once, without a round trip through Kysely per beat. */
  constructor(db: Kysely<Database>, onError: (err: unknown) => void, writeSync?: WriteSync) {
    this.#db = db;
    this.#onError = onError;
    this.#writeSync = writeSync;
  }

  add(hostId: string, at: string, uptimeSec: number): void {
    this.#pending.set(hostId, { at, uptimeSec });
    if (this.#pending.size >= HEARTBEAT_MAX_PENDING) {
      void this.flush();
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), HEARTBEAT_FLUSH_MS);
      this.#timer.unref();
    }
  }

  drop(hostId: string): void {
    this.#pending.delete(hostId);
  }

  /** The host's beat not yet stored, if any. */
  pending(hostId: string): Beat | undefined {
    return this.#pending.get(hostId) ?? this.#writing.get(hostId);
  }

  /** Writes every pending beat; resolves when they (and any flush already running) are stored. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.size === 0) return this.#flushing;
    const batch = this.#pending;
    this.#pending = new Map();
    this.#flushing = this.#flushing
      .then(async () => {
        this.#writing = batch;
        await this.#write(batch);
      })
      .catch((err: unknown) => this.#onError(err))
      .finally(() => {
        if (this.#writing === batch) this.#writing = new Map();
      });
    return this.#flushing;
  }

  async #write(batch: Map<string, Beat>): Promise<void> {
    const beats = [...batch];
    for (let i = 0; i < beats.length; i += HEARTBEATS_PER_TRANSACTION) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const updates = beats.slice(i, i + HEARTBEATS_PER_TRANSACTION).map(([id, b]) =>
        this.#shapes.of('beat', [b.at, b.uptimeSec, id, b.at], () =>
          this.#db
            .updateTable('hosts')
            .set({ last_checkin_at: b.at, uptime_sec: b.uptimeSec })
            .where('id', '=', id)
            .where((w) => w.or([w('last_checkin_at', 'is', null), w('last_checkin_at', '<=', b.at)])),
        ),
      );
      await runSteps(this.#db as unknown as Kysely<unknown>, this.#writeSync, function* (): Steps<void> {
        for (const u of updates) yield u;
      });
    }
  }
}
