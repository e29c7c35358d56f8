import type { Kysely, Selectable } from 'kysely';
import {
  effectiveRelease,
  type ApplyResult,
  type CheckinRequest,
  type HostRecord,
  type HostState,
  type KernelIdentity,
} from '@livegraft/protocol';
import type { Database, HostsTable } from './schema.ts';

type HostRow = Selectable<HostsTable>;

export interface NewHost {
  id: string;
  hostname: string;
  tokenHash: string;
  kernel: KernelIdentity;
  agentVersion: string;
}

export class HostRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async enroll(host: NewHost, now: Date): Promise<void> {
    await this.#db
      .insertInto('hosts')
      .values({
        id: host.id,
        hostname: host.hostname,
        token_hash: host.tokenHash,
        kernel_id: host.kernel.id,
        release: host.kernel.release,
        kernel_json: JSON.stringify(host.kernel),
        applied_level: 0,
        state: 'unpatched',
        last_error: null,
        last_apply_json: null,
        agent_version: host.agentVersion,
        uptime_sec: null,
        enrolled_at: now.toISOString(),
        last_checkin_at: null,
      })
      .execute();
  }

  /** The host id whose token hashes to tokenHash, with the stored hash for a constant-time recheck. */
  async findByTokenHash(tokenHash: string): Promise<{ id: string; tokenHash: string } | undefined> {
    const row = await this.#db
      .selectFrom('hosts')
      .select(['id', 'token_hash'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return row === undefined ? undefined : { id: row.id, tokenHash: row.token_hash };
  }

  async checkin(id: string, report: CheckinRequest, now: Date): Promise<void> {
    await this.#db
      .updateTable('hosts')
      .set({
        kernel_id: report.kernel.id,
        release: report.kernel.release,
        kernel_json: JSON.stringify(report.kernel),
        applied_level: report.appliedLevel,
        state: report.state,
        last_error: report.lastError ?? null,
        // A report without lastApply keeps the previous one: it is history, not state.
        ...(report.lastApply === undefined ? {} : { last_apply_json: JSON.stringify(report.lastApply) }),
        agent_version: report.agentVersion,
        uptime_sec: report.uptimeSec,
        last_checkin_at: now.toISOString(),
      })
      .where('id', '=', id)
      .execute();
  }

  async get(id: string): Promise<HostRecord | undefined> {
    const row = await this.#db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toHostRecord(row);
  }

  async list(): Promise<HostRecord[]> {
    const rows = await this.#db.selectFrom('hosts').selectAll().orderBy('hostname').orderBy('id').execute();
    return rows.map(toHostRecord);
  }
}

function toHostRecord(row: HostRow): HostRecord {
  return {
    id: row.id,
    hostname: row.hostname,
    kernelId: row.kernel_id,
    release: row.release,
    effectiveRelease: effectiveRelease(row.release, row.applied_level),
    appliedLevel: row.applied_level,
    state: row.state as HostState,
    lastError: row.last_error,
    lastApply: row.last_apply_json === null ? null : (JSON.parse(row.last_apply_json) as ApplyResult),
    agentVersion: row.agent_version,
    enrolledAt: row.enrolled_at,
    lastCheckinAt: row.last_checkin_at,
  };
}
