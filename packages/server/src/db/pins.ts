import type { Kysely, Selectable } from 'kysely';
import type { PinRecord, PinScope } from '@livegraft/protocol';
import type { PinsTable } from './fleet-schema.ts';
import type { Database } from './schema.ts';

/** The kernel key of a cut-off pin, which holds for every kernel build. */
export const ANY_KERNEL = '*';

export class PinRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Creates or replaces the pin of (scope, subject, kernel). */
  async set(p: PinRecord): Promise<void> {
    const values = {
      scope: p.scope,
      subject: p.subject,
      kernel_key: p.kernelId ?? ANY_KERNEL,
      level: p.level,
      cutoff: p.cutoff,
      allow_downgrade: p.allowDowngrade ? 1 : 0,
      reason: p.reason,
      created_at: p.createdAt,
      created_by: p.createdBy,
    };
    await this.#db
      .insertInto('pins')
      .values(values)
      .onConflict((oc) =>
        oc.columns(['scope', 'subject', 'kernel_key']).doUpdateSet({
          level: values.level,
          cutoff: values.cutoff,
          allow_downgrade: values.allow_downgrade,
          reason: values.reason,
          created_at: values.created_at,
          created_by: values.created_by,
        }),
      )
      .execute();
  }

  /** Removes the subject's pins (one kernel's, or all); returns how many went. */
  async remove(scope: PinScope, subject: string, kernelId?: string): Promise<number> {
    let q = this.#db.deleteFrom('pins').where('scope', '=', scope).where('subject', '=', subject);
    if (kernelId !== undefined) q = q.where('kernel_key', 'in', [kernelId, ANY_KERNEL]);
    const res = await q.executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  async list(filter: { scope?: PinScope; subject?: string } = {}): Promise<PinRecord[]> {
    let q = this.#db.selectFrom('pins').selectAll();
    if (filter.scope !== undefined) q = q.where('scope', '=', filter.scope);
    if (filter.subject !== undefined) q = q.where('subject', '=', filter.subject);
    const rows = await q.orderBy('scope').orderBy('subject').orderBy('kernel_key').execute();
    return rows.map(toPin);
  }
}

function toPin(r: Selectable<PinsTable>): PinRecord {
  return {
    scope: r.scope as PinScope,
    subject: r.subject,
    kernelId: r.kernel_key === ANY_KERNEL ? null : r.kernel_key,
    level: r.level,
    cutoff: r.cutoff,
    allowDowngrade: Number(r.allow_downgrade) !== 0,
    reason: r.reason === 'rollback' ? 'rollback' : 'pin',
    createdAt: r.created_at,
    createdBy: r.created_by,
  };
}
