import type { Kysely } from 'kysely';
import type { AuditEntry } from '@livegraft/protocol';
import type { Database } from './schema.ts';

export const DEFAULT_AUDIT_LIMIT = 100;

export class AuditRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async append(e: AuditEntry): Promise<void> {
    await this.#db
      .insertInto('audit_log')
      .values({
        id: e.id,
        at: e.at,
        actor_id: e.actor.id,
        actor_name: e.actor.name,
        actor_role: e.actor.role,
        ip: e.ip,
        action: e.action,
        target: e.target,
        details_json: JSON.stringify(e.details ?? null),
      })
      .execute();
  }

  /** Newest first. */
  async list(q: { limit?: number; action?: string; since?: string } = {}): Promise<AuditEntry[]> {
    let query = this.#db.selectFrom('audit_log').selectAll();
    if (q.action !== undefined) query = query.where('action', '=', q.action);
    if (q.since !== undefined) query = query.where('at', '>=', q.since);
    const rows = await query
      .orderBy('at', 'desc')
      .orderBy('id', 'desc')
      .limit(q.limit ?? DEFAULT_AUDIT_LIMIT)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: { id: r.actor_id, name: r.actor_name, role: r.actor_role },
      ip: r.ip,
      action: r.action,
      target: r.target,
      details: JSON.parse(r.details_json) as unknown,
    }));
  }
}
