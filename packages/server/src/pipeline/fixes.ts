import type { Kysely, Selectable } from 'kysely';
import type { Logger } from 'pino';
import {
  LivegraftError,
  type FixBundle,
  type FixRecord,
  type JobState,
  type PlanEntry,
  type PlanState,
} from '@livegraft/protocol';
import type { Actor, Fleet } from '../fleet/service.ts';
import { checkBundle, sameCommit, type CheckedBundle, type Commit } from './bundle.ts';
import { readCatalogue } from './catalogue.ts';
import { branchOf, compareVersions, fleetKernels, type FleetKernelFacts } from './kernels.ts';
import type { FixesTable, PipelineDatabase } from './schema.ts';

/** How many times a submission retries after another node took the same submission number. */
const MAX_SEQ_ATTEMPTS = 5;

export interface FixServiceOptions {
  db: Kysely<PipelineDatabase>;
  fleet: Fleet;
  clock: () => Date;
  randomId: () => string;
  log: Logger;
  /** A directory of shipped fixes (one sub-directory with a fix.json each) that submissions must not repeat. */
  catalogueDir?: string;
}

/** What the plan says for one kernel build when the fix is submitted. */
export function planFor(
  spec: FixBundle['spec'],
  k: Pick<FleetKernelFacts, 'upstreamVersion'>,
): {
  state: PlanState;
  version: string | null;
} {
  const upstream = k.upstreamVersion;
  const fixedIn = upstream === null ? undefined : spec.fixedIn?.[branchOf(upstream)];
  if (upstream !== null && fixedIn !== undefined && compareVersions(fixedIn, upstream) <= 0) {
    return { state: 'already-fixed', version: fixedIn };
  }
  return { state: 'to-build', version: null };
}

function duplicate(message: string, details: Record<string, unknown>): LivegraftError {
  return new LivegraftError('FIX_DUPLICATE', message, { details });
}

/** Submitted fixes: checks, duplicates, storage and the plan per fleet kernel build. */
export class FixService {
  readonly #o: FixServiceOptions;

  constructor(o: FixServiceOptions) {
    this.#o = o;
  }

  async #checkDuplicates(c: CheckedBundle): Promise<void> {
    const { db } = this.#o;
    const id = c.spec.id;
    const same = await db
      .selectFrom('fixes')
      .select(['id', 'sha256', 'commits_json'])
      .where((eb) => eb.or([eb('id', '=', id), eb('sha256', '=', c.sha256)]))
      .executeTakeFirst();
    if (same?.id === id) {
      throw duplicate(`a fix with id ${id} was already submitted; give a new fix a new id`, { fixId: id });
    }
    if (same !== undefined) {
      throw duplicate(`the same fix (bundle sha256 ${c.sha256}) was already submitted as ${same.id}`, {
        fixId: same.id,
      });
    }
    const ids = c.commits.map((x) => x.id).filter((x): x is string => x !== null);
    if (ids.length > 0) {
      const rows = await db.selectFrom('fixes').select(['id', 'commits_json']).execute();
      for (const r of rows) {
        const theirs = (JSON.parse(r.commits_json) as Commit[]).map((x) => x.id).filter((x) => x !== null);
        const hit = ids.find((a) => theirs.some((b) => sameCommit(a, b)));
        if (hit !== undefined) {
          throw duplicate(`upstream commit ${hit} is already submitted as fix ${r.id}`, { fixId: r.id, commit: hit });
        }
      }
    }
    if (this.#o.catalogueDir === undefined) return;
    for (const f of await readCatalogue(this.#o.catalogueDir, this.#o.log)) {
      if (f.id === id) {
        throw duplicate(`fix ${id} is already in the shipped catalogue`, { catalogueFix: f.id });
      }
      const cve = c.spec.cves.find((x) => f.cves.includes(x));
      const theirs = f.commits.map((x) => x.id).filter((x) => x !== null);
      const commit = ids.find((a) => theirs.some((b) => sameCommit(a, b)));
      if (cve !== undefined && commit !== undefined) {
        throw duplicate(`the shipped catalogue already fixes ${cve} with commit ${commit} (fix ${f.id})`, {
          catalogueFix: f.id,
          cve,
          commit,
        });
      }
    }
  }

  /** Checks, stores and plans a fix: one entry per kernel build the fleet runs, and a job where one must be built. */
  async submit(bundle: FixBundle, actor: Actor): Promise<FixRecord> {
    const { db } = this.#o;
    const checked = checkBundle(bundle);
    await this.#checkDuplicates(checked);
    const kernels = await fleetKernels(db);
    const now = this.#o.clock().toISOString();
    for (let attempt = 0; ; attempt++) {
      const top = await db
        .selectFrom('fixes')
        .select((eb) => eb.fn.max('seq').as('max'))
        .executeTakeFirst();
      const seq = Number(top?.max ?? 0) + 1;
      try {
        await db.transaction().execute(async (tx) => {
          await tx
            .insertInto('fixes')
            .values({
              id: checked.spec.id,
              seq,
              title: checked.spec.title,
              cves_json: JSON.stringify(checked.spec.cves),
              commits_json: JSON.stringify(checked.commits),
              sha256: checked.sha256,
              bundle_json: checked.json,
              submitted_at: now,
              submitted_by: actor.name,
            })
            .execute();
          for (const k of kernels) {
            const plan = planFor(checked.spec, k);
            const jobId = plan.state === 'to-build' ? this.#o.randomId() : null;
            if (jobId !== null) {
              await tx
                .insertInto('jobs')
                .values({
                  id: jobId,
                  fix_id: checked.spec.id,
                  fix_seq: seq,
                  kernel_id: k.kernelId,
                  release: k.release,
                  proc_version: k.procVersion,
                  package_version: k.packageVersion,
                  state: 'queued',
                  outcome: null,
                  reason: null,
                  level: null,
                  attempts: 0,
                  worker: null,
                  phase: null,
                  lease_id: null,
                  lease_expires_at: null,
                  claim_json: null,
                  created_at: now,
                  started_at: null,
                  finished_at: null,
                  timings_json: null,
                  validation_json: null,
                  build_log: null,
                  console_log: null,
                })
                .execute();
            }
            await tx
              .insertInto('fix_plans')
              .values({
                fix_id: checked.spec.id,
                kernel_id: k.kernelId,
                release: k.release,
                state: plan.state,
                version: plan.version,
                reason: null,
                job_id: jobId,
                level: null,
                updated_at: now,
              })
              .execute();
          }
        });
        break;
      } catch (err) {
        // Another submission won the id, the bytes or the number meanwhile: say which, or take the next number.
        await this.#checkDuplicates(checked);
        if (attempt + 1 >= MAX_SEQ_ATTEMPTS) throw err;
      }
    }
    const planned = kernels.map((k) => ({ kernelId: k.kernelId, ...planFor(checked.spec, k) }));
    await this.#o.fleet.record(actor, 'fix.submit', checked.spec.id, {
      sha256: checked.sha256,
      cves: checked.spec.cves,
      plan: planned,
    });
    return this.get(checked.spec.id);
  }

  async list(): Promise<FixRecord[]> {
    const rows = await this.#o.db.selectFrom('fixes').selectAll().orderBy('seq', 'desc').execute();
    return this.#records(rows);
  }

  async get(id: string): Promise<FixRecord> {
    const row = await this.#o.db.selectFrom('fixes').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined) throw new LivegraftError('FIX_NOT_FOUND', `no submitted fix ${id}; see GET /api/v1/fixes`);
    const [record] = await this.#records([row]);
    if (record === undefined) throw new Error('fix record vanished');
    return record;
  }

  /** The stored bundle of a submitted fix, or undefined. */
  async bundle(id: string): Promise<{ bundle: FixBundle; sha256: string } | undefined> {
    const row = await this.#o.db
      .selectFrom('fixes')
      .select(['bundle_json', 'sha256'])
      .where('id', '=', id)
      .executeTakeFirst();
    // Written by submit() from a checked bundle.
    return row === undefined ? undefined : { bundle: JSON.parse(row.bundle_json) as FixBundle, sha256: row.sha256 };
  }

  async #records(rows: Selectable<FixesTable>[]): Promise<FixRecord[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const plans = await this.#o.db
      .selectFrom('fix_plans')
      .leftJoin('jobs', 'jobs.id', 'fix_plans.job_id')
      .select([
        'fix_plans.fix_id',
        'fix_plans.kernel_id',
        'fix_plans.release',
        'fix_plans.state',
        'fix_plans.version',
        'fix_plans.reason',
        'fix_plans.job_id',
        'fix_plans.level',
        'fix_plans.updated_at',
        'jobs.state as job_state',
      ])
      .where('fix_plans.fix_id', 'in', ids)
      .orderBy('fix_plans.release')
      .execute();
    const byFix = new Map<string, PlanEntry[]>();
    for (const p of plans) {
      const list = byFix.get(p.fix_id) ?? [];
      list.push({
        kernelId: p.kernel_id,
        release: p.release,
        state: p.state as PlanState,
        version: p.version,
        reason: p.reason,
        jobId: p.job_id,
        jobState: (p.job_state ?? null) as JobState | null,
        level: p.level,
        updatedAt: p.updated_at,
      });
      byFix.set(p.fix_id, list);
    }
    return rows.map((r) => ({
      id: r.id,
      title: r.title,
      cves: JSON.parse(r.cves_json) as string[],
      commits: JSON.parse(r.commits_json) as Commit[],
      sha256: r.sha256,
      submittedAt: r.submitted_at,
      submittedBy: r.submitted_by,
      plan: byFix.get(r.id) ?? [],
    }));
  }
}
