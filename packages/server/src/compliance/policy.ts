import type { Kysely } from 'kysely';
import { DEFAULT_SLA_POLICY, slaPolicyValidator, type SlaPolicy } from '@livegraft/protocol';
import type { ComplianceDatabase } from './schema.ts';

const POLICY_KEY = 'sla_policy';

/** The SLA policy, stored in the database so every server node and restart sees the same one. */
export class PolicyRepository {
  readonly #db: Kysely<ComplianceDatabase>;
  readonly #fallback: SlaPolicy;

  /** `fallback` is the policy until one is set through the API (the configured or the built-in default). */
  constructor(db: Kysely<ComplianceDatabase>, fallback: SlaPolicy = DEFAULT_SLA_POLICY) {
    this.#db = db;
    this.#fallback = fallback;
  }

  async get(): Promise<SlaPolicy> {
    const row = await this.#db
      .selectFrom('compliance_settings')
      .select('value_json')
      .where('key', '=', POLICY_KEY)
      .executeTakeFirst();
    if (row === undefined) return this.#fallback;
    return slaPolicyValidator.parse(JSON.parse(row.value_json));
  }

  async set(policy: SlaPolicy, now: Date): Promise<SlaPolicy> {
    const value = slaPolicyValidator.parse(policy);
    const values = { key: POLICY_KEY, value_json: JSON.stringify(value), updated_at: now.toISOString() };
    await this.#db
      .insertInto('compliance_settings')
      .values(values)
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({ value_json: values.value_json, updated_at: values.updated_at }),
      )
      .execute();
    return value;
  }
}
