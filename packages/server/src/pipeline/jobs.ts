import type { Kysely, Selectable } from 'kysely';
import type { Logger } from 'pino';
import {
  LivegraftError,
  type JobClaim,
  type JobPhase,
  type JobRecord,
  type JobState,
  type PlanState,
  type ValidationRecord,
} from '@livegraft/protocol';
import type { PatchRepository } from '../db/patches.ts';
import type { Fleet } from '../fleet/service.ts';
import { haltKey } from '../fleet/desired.ts';
import type { JobsTable, PipelineDatabase } from './schema.ts';

/** A job whose lease ran out this many times ends failed ("worker lost"). */
export const MAX_JOB_ATTEMPTS = 3;
/** Queued jobs looked at per claim. */
const CLAIM_SCAN = 100;

export type JobRow = Selectable<JobsTable>;

export interface JobServiceOptions {
  db: Kysely<PipelineDatabase>;
  patches: PatchRepository;
  fleet: Fleet;
  clock: () => Date;
  randomId: () => string;
  log: Logger;
  leaseSec: number;
}

const RUNNING: JobState[] = ['building', 'validating'];

export function toJobRecord(r: JobRow): JobRecord {
  return {
    id: r.id,
    fixId: r.fix_id,
    kernelId: r.kernel_id,
    release: r.release,
    state: r.state as JobState,
    outcome: r.outcome,
    reason: r.reason,
    level: r.level,
    attempts: r.attempts,
    worker: r.worker,
    phase: r.phase as JobPhase | null,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    timings: r.timings_json === null ? null : (JSON.parse(r.timings_json) as JobRecord['timings']),
    validation: r.validation_json === null ? null : (JSON.parse(r.validation_json) as ValidationRecord),
  };
}

/** Job queue with leases: claim, heartbeat, expiry and retries; jobs of one kernel build run in submission order. */
export class JobService {
  readonly #o: JobServiceOptions;

  constructor(o: JobServiceOptions) {
    this.#o = o;
  }

  #at(offsetSec = 0): string {
    return new Date(this.#o.clock().getTime() + offsetSec * 1000).toISOString();
  }

  /** Ends a job (conditionally on its lease, when given) and moves its plan entry. */
  async finish(
    job: JobRow,
    f: { outcome: string; plan: PlanState; reason: string | null; version?: string | null; level?: number | null },
    extra: Partial<JobsTable> = {},
  ): Promise<boolean> {
    const now = this.#at();
    let q = this.#o.db
      .updateTable('jobs')
      .set({
        state: 'done',
        outcome: f.outcome,
        reason: f.reason,
        finished_at: now,
        lease_id: null,
        lease_expires_at: null,
        phase: null,
        ...(f.level === undefined ? {} : { level: f.level }),
        ...extra,
      })
      .where('id', '=', job.id)
      .where('state', '!=', 'done');
    q = job.lease_id === null ? q.where('lease_id', 'is', null) : q.where('lease_id', '=', job.lease_id);
    const res = await q.executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) return false;
    await this.#o.db
      .updateTable('fix_plans')
      .set({
        state: f.plan,
        reason: f.reason,
        version: f.version ?? null,
        level: f.level ?? null,
        updated_at: now,
      })
      .where('fix_id', '=', job.fix_id)
      .where('kernel_id', '=', job.kernel_id)
      .execute();
    return true;
  }

  /**
   * Leases that ran out: the job is queued again for another worker, or,
   * after MAX_JOB_ATTEMPTS claims, ends failed ("worker lost").
   */
  async expireLeases(): Promise<number> {
    const now = this.#at();
    const stale = await this.#o.db
      .selectFrom('jobs')
      .selectAll()
      .where('state', 'in', RUNNING)
      .where('lease_expires_at', '<', now)
      .execute();
    for (const j of stale) {
      if (j.attempts >= MAX_JOB_ATTEMPTS) {
        const reason = `worker lost: no heartbeat or result within the lease, ${j.attempts} times (last worker ${j.worker ?? '?'})`;
        await this.finish(j, { outcome: 'failed', plan: 'failed', reason });
        this.#o.log.warn({ jobId: j.id, attempts: j.attempts }, 'job failed: worker lost');
        continue;
      }
      await this.#o.db
        .updateTable('jobs')
        .set({ state: 'queued', lease_id: null, lease_expires_at: null, phase: null, worker: null, claim_json: null })
        .where('id', '=', j.id)
        .where('lease_id', '=', j.lease_id)
        .execute();
      this.#o.log.info({ jobId: j.id, worker: j.worker }, 'job lease expired; queued again');
    }
    return stale.length;
  }

  async #hostsOn(kernelId: string): Promise<number> {
    const r = await this.#o.db
      .selectFrom('hosts')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('kernel_id', '=', kernelId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** The fix ids a stored level was built from: the job's claim when the pipeline built it, else its manifest. */
  async #fixesOf(kernelId: string, level: number): Promise<string[]> {
    const built = await this.#o.db
      .selectFrom('jobs')
      .select('claim_json')
      .where('kernel_id', '=', kernelId)
      .where('level', '=', level)
      .where('outcome', '=', 'built')
      .executeTakeFirst();
    if (built !== undefined && built.claim_json !== null)
      return (JSON.parse(built.claim_json) as JobClaim).fixes.map((f) => f.id);
    const stored = await this.#o.patches.level(kernelId, level);
    if (stored === undefined) return [];
    return [...stored.manifest.fixes.map((f) => f.id), ...(stored.manifest.skipped ?? []).map((s) => s.id)];
  }

  /**
   * The claim for a queued job, or a reason it cannot be built: the level is
   * the highest recorded for the kernel + 1; its fixes are the latest released
   * level's, then the new one.
   */
  async #prepare(job: JobRow): Promise<Omit<JobClaim, 'jobId' | 'leaseId' | 'leaseExpiresAt' | 'attempt'> | string> {
    const { db } = this.#o;
    const k = job.kernel_id;
    const top = await db
      .selectFrom('patches')
      .select((eb) => eb.fn.max('level').as('max'))
      .where('kernel_id', '=', k)
      .executeTakeFirst();
    const level = Number(top?.max ?? 0) + 1;
    const halted = new Set((await this.#o.fleet.feeds.halts([k])).map((h) => haltKey(h.kernelId, h.level)));
    const published = await db
      .selectFrom('patches')
      .select(['level', 'module_sha256'])
      .where('kernel_id', '=', k)
      .where('published_at', 'is not', null)
      .orderBy('level', 'desc')
      .execute();
    const prev = published.find((p) => !halted.has(haltKey(k, p.level)));
    const prevFixes = prev === undefined ? [] : (await this.#fixesOf(k, prev.level)).filter((f) => f !== job.fix_id);
    const ids = [...prevFixes, job.fix_id];
    const rows = await db.selectFrom('fixes').select(['id', 'sha256']).where('id', 'in', ids).execute();
    const sha = new Map(rows.map((r) => [r.id, r.sha256]));
    const missing = ids.filter((id) => !sha.has(id));
    if (missing.length > 0) {
      return `level ${prev?.level ?? 0} of ${job.release} carries fix(es) ${missing.join(', ')} that were never submitted to the pipeline; submit them (livegraft fixes submit) so the next cumulative level can be built`;
    }
    return {
      kernel: {
        kernelId: k,
        release: job.release,
        procVersion: job.proc_version,
        packageVersion: job.package_version,
      },
      level,
      fixes: ids.map((id) => ({ id, sha256: sha.get(id) ?? '' })),
      newFix: job.fix_id,
      previous: prev === undefined ? null : { level: prev.level, moduleSha256: prev.module_sha256 },
    };
  }

  /**
   * Gives the worker the first claimable job: queued, and no earlier job of
   * its kernel build unfinished (levels are cumulative, so they are built in
   * submission order). Undefined when there is none.
   */
  async claim(workerId: string): Promise<JobClaim | undefined> {
    const { db } = this.#o;
    await this.expireLeases();
    const firstOpen = await db
      .selectFrom('jobs')
      .select(['kernel_id', (eb) => eb.fn.min('fix_seq').as('seq')])
      .where('state', '!=', 'done')
      .groupBy('kernel_id')
      .execute();
    const head = new Map(firstOpen.map((r) => [r.kernel_id, Number(r.seq)]));
    const queued = await db
      .selectFrom('jobs')
      .selectAll()
      .where('state', '=', 'queued')
      .orderBy('fix_seq')
      .orderBy('created_at')
      .limit(CLAIM_SCAN)
      .execute();
    for (const job of queued) {
      if (head.get(job.kernel_id) !== job.fix_seq) continue;
      if ((await this.#hostsOn(job.kernel_id)) === 0) {
        const reason = `no host runs ${job.release} any more`;
        if (await this.finish(job, { outcome: 'superseded', plan: 'superseded', reason })) return this.claim(workerId);
        continue;
      }
      const prepared = await this.#prepare(job);
      if (typeof prepared === 'string') {
        if (await this.finish(job, { outcome: 'failed', plan: 'failed', reason: prepared }))
          return this.claim(workerId);
        continue;
      }
      const leaseId = this.#o.randomId();
      const leaseExpiresAt = this.#at(this.#o.leaseSec);
      const attempt = job.attempts + 1;
      const claim: JobClaim = { jobId: job.id, leaseId, leaseExpiresAt, attempt, ...prepared };
      const res = await db
        .updateTable('jobs')
        .set({
          state: 'building',
          phase: 'build',
          worker: workerId,
          lease_id: leaseId,
          lease_expires_at: leaseExpiresAt,
          attempts: attempt,
          level: prepared.level,
          claim_json: JSON.stringify(claim),
          started_at: job.started_at ?? this.#at(),
        })
        .where('id', '=', job.id)
        .where('state', '=', 'queued')
        .executeTakeFirst();
      // Another worker (or node) took it first: look again.
      if (Number(res.numUpdatedRows) === 0) return this.claim(workerId);
      this.#o.log.info({ jobId: job.id, workerId, level: prepared.level, attempt }, 'job claimed');
      return claim;
    }
    return undefined;
  }

  /** The job if this lease holds it now; LEASE_LOST otherwise (expired, finished, or another worker's). */
  async held(jobId: string, leaseId: string | undefined): Promise<{ job: JobRow; claim: JobClaim }> {
    const job = await this.get(jobId);
    const lost = (why: string): LivegraftError =>
      new LivegraftError('LEASE_LOST', `job ${jobId}: ${why}; claim a job again`, { details: { jobId } });
    if (leaseId === undefined || leaseId === '') throw lost('no lease given (header x-livegraft-lease)');
    if (job.lease_id !== leaseId || !RUNNING.includes(job.state as JobState) || job.claim_json === null) {
      throw lost('this worker does not hold its lease');
    }
    if ((job.lease_expires_at ?? '') < this.#at()) {
      await this.expireLeases();
      throw lost('the lease ran out');
    }
    return { job, claim: JSON.parse(job.claim_json) as JobClaim };
  }

  async heartbeat(
    jobId: string,
    leaseId: string,
    phase: JobPhase,
    message?: string,
  ): Promise<{ leaseExpiresAt: string }> {
    const { job } = await this.held(jobId, leaseId);
    const leaseExpiresAt = this.#at(this.#o.leaseSec);
    const res = await this.#o.db
      .updateTable('jobs')
      .set({ lease_expires_at: leaseExpiresAt, phase, state: phase === 'validate' ? 'validating' : 'building' })
      .where('id', '=', job.id)
      .where('lease_id', '=', leaseId)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) {
      throw new LivegraftError('LEASE_LOST', `job ${jobId}: this worker does not hold its lease; claim a job again`);
    }
    if (message !== undefined) this.#o.log.info({ jobId, phase, message }, 'job heartbeat');
    return { leaseExpiresAt };
  }

  async get(jobId: string): Promise<JobRow> {
    const row = await this.#o.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
    if (row === undefined) throw new LivegraftError('JOB_NOT_FOUND', `no job ${jobId}; see GET /api/v1/jobs`);
    return row;
  }

  async list(filter: { fixId?: string; kernelId?: string; state?: string } = {}, limit = 500): Promise<JobRecord[]> {
    await this.expireLeases();
    let q = this.#o.db
      .selectFrom('jobs')
      .select([
        'id',
        'fix_id',
        'fix_seq',
        'kernel_id',
        'release',
        'proc_version',
        'package_version',
        'state',
        'outcome',
        'reason',
        'level',
        'attempts',
        'worker',
        'phase',
        'lease_id',
        'lease_expires_at',
        'claim_json',
        'created_at',
        'started_at',
        'finished_at',
        'timings_json',
        'validation_json',
      ]);
    if (filter.fixId !== undefined) q = q.where('fix_id', '=', filter.fixId);
    if (filter.kernelId !== undefined) q = q.where('kernel_id', '=', filter.kernelId);
    if (filter.state !== undefined) q = q.where('state', '=', filter.state);
    const rows = await q.orderBy('fix_seq', 'desc').orderBy('release').limit(limit).execute();
    return rows.map((r) => toJobRecord({ ...r, build_log: null, console_log: null }));
  }
}
