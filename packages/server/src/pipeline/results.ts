import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import {
  LivegraftError,
  modinfoValue,
  type JobClaim,
  type JobRecord,
  type JobResult,
  type PlanState,
  type ValidationRecord,
  type ValidationSummary,
} from '@livegraft/protocol';
import type { RouteContext } from '../context.ts';
import type { Actor } from '../fleet/service.ts';
import { assertLivepatchModule } from '../routes/modules.ts';
import { checkManifest } from '../routes/patches.ts';
import { toJobRecord, type JobRow, type JobService } from './jobs.ts';
import type { PipelineDatabase } from './schema.ts';

export type ResultDeps = Pick<RouteContext, 'modules' | 'patches' | 'tuf' | 'fleet' | 'clock'> & {
  db: Kysely<PipelineDatabase>;
  jobs: JobService;
};

function refuse(message: string, details?: Record<string, unknown>): LivegraftError {
  return new LivegraftError('MANIFEST_MISMATCH', message, details === undefined ? undefined : { details });
}

export function summaryOf(v: ValidationRecord, worker: string): ValidationSummary {
  return {
    result: v.result,
    at: v.startedAt,
    worker,
    kernelRelease: v.kernelRelease,
    kernelVersion: v.kernelVersion,
    triggers: v.triggers.map((t) => ({ fixId: t.fixId, before: t.before, after: t.after })),
    workloadFailed: v.workload.failed,
  };
}

/** Checks a built module against the claim before anything is stored: kernel, level, hash, size, modinfo. */
async function checkBuilt(d: ResultDeps, claim: JobClaim, r: JobResult): Promise<Buffer> {
  const m = r.manifest;
  if (m === undefined || r.module === undefined) {
    throw new LivegraftError('VALIDATION_FAILED', 'outcome "built" needs "manifest" and "module"');
  }
  if (m.kernel.id !== claim.kernel.kernelId) {
    throw refuse(`the manifest is for kernel ${m.kernel.id}, but this job builds kernel ${claim.kernel.kernelId}`, {
      claimed: claim.kernel.kernelId,
      sent: m.kernel.id,
    });
  }
  if (m.level !== claim.level) {
    throw refuse(`the manifest is level ${m.level}, but this job builds level ${claim.level}`);
  }
  if (r.validation !== undefined && r.validation.level !== claim.level) {
    throw refuse(`the validation record is for level ${r.validation.level}, this job builds level ${claim.level}`);
  }
  const bytes = Buffer.from(r.module, 'base64');
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== m.module.sha256) {
    throw new LivegraftError(
      'MODULE_HASH_MISMATCH',
      `the module's sha256 is ${sha}, the manifest says ${m.module.sha256}`,
    );
  }
  if (bytes.length !== m.module.size) {
    throw new LivegraftError(
      'MODULE_SIZE_MISMATCH',
      `the manifest says ${m.module.size} bytes, the module has ${bytes.length}`,
    );
  }
  const info = assertLivepatchModule(bytes);
  const vermagic = (modinfoValue(info, 'vermagic') ?? '').trim();
  if (vermagic.split(/\s+/)[0] !== claim.kernel.release) {
    throw refuse(`the module's vermagic "${vermagic}" is not for ${claim.kernel.release}`);
  }
  if (m.kernel.vermagic.trim() !== vermagic) {
    throw refuse(`the module's vermagic "${vermagic}" differs from the manifest's "${m.kernel.vermagic}"`);
  }
  await d.modules.put(sha, bytes);
  // The same checks as a hand publish: module name, file, modinfo level and kernel id.
  await checkManifest(d, m);
  return bytes;
}

const PLAN_OF: Record<Exclude<JobResult['outcome'], 'built'>, PlanState> = {
  'already-fixed': 'already-fixed',
  'not-affected': 'not-affected',
  'not-live-patchable': 'not-live-patchable',
  failed: 'failed',
};

/**
 * A worker's result for the job it holds. A built level that passed its
 * validation is stored, published (signed, with the validation summary in
 * its TUF custom metadata) and handed to the feeds; one that failed is
 * stored unpublished and halted for its kernel build, so it never reaches a
 * host. Anything else ends the job with its outcome.
 */
export async function acceptResult(d: ResultDeps, jobId: string, r: JobResult, actor: Actor): Promise<JobRecord> {
  const { job, claim } = await d.jobs.held(jobId, r.leaseId);
  const logs = {
    build_log: r.buildLog,
    console_log: r.consoleLog ?? null,
    timings_json: JSON.stringify(r.timings),
    validation_json: r.validation === undefined ? null : JSON.stringify(r.validation),
  };
  if (r.outcome !== 'built') {
    const reason = r.reason ?? null;
    await end(d, job, { outcome: r.outcome, plan: PLAN_OF[r.outcome], reason, version: r.version ?? null }, logs);
    return toJobRecord(await d.jobs.get(jobId));
  }
  await checkBuilt(d, claim, r);
  const manifest = r.manifest;
  if (manifest === undefined) throw new Error('checked above');
  const v = r.validation;
  const passed = v?.result === 'passed';
  const now = d.clock();
  const stored = await d.patches.insert(manifest, now, passed);
  if (!stored.sameManifest) {
    const reason = `level ${claim.level} of ${claim.kernel.release} was recorded meanwhile with another module (a hand publish?); submit the fix again to build the next level`;
    await end(d, job, { outcome: 'failed', plan: 'failed', reason }, logs);
    return toJobRecord(await d.jobs.get(jobId));
  }
  const at = now.toISOString();
  const summary = v === undefined ? null : JSON.stringify(summaryOf(v, job.worker ?? actor.name));
  await d.db
    .insertInto('level_validations')
    .values({
      kernel_id: claim.kernel.kernelId,
      level: claim.level,
      result: passed ? 'passed' : 'failed',
      summary_json: summary,
      reason: passed ? null : (v?.reason ?? 'the worker sent no validation record'),
      actor: job.worker ?? actor.name,
      at,
    })
    .onConflict((oc) => oc.columns(['kernel_id', 'level']).doNothing())
    .execute();
  await d.fleet.record(actor, 'patch.record', claim.kernel.kernelId, { level: claim.level, job: jobId });
  if (passed) {
    await end(d, job, { outcome: 'built', plan: 'released', reason: null, level: claim.level }, logs);
    await d.tuf.sync();
    await d.fleet.onPublished(claim.kernel.kernelId, claim.level, actor);
  } else {
    const why = v === undefined ? 'no validation record was sent' : (v.reason ?? v.problems[0] ?? 'validation failed');
    const reason = `validation failed: ${why}`;
    const halt = { kernelId: claim.kernel.kernelId, level: claim.level, reason, hostId: null, at };
    if (await d.fleet.feeds.halt(halt)) await d.fleet.record(actor, 'rollout.halt', claim.kernel.kernelId, halt);
    await end(d, job, { outcome: 'built', plan: 'validation-failed', reason, level: claim.level }, logs);
  }
  return toJobRecord(await d.jobs.get(jobId));
}

async function end(
  d: ResultDeps,
  job: JobRow,
  f: Parameters<JobService['finish']>[1],
  logs: Parameters<JobService['finish']>[2],
): Promise<void> {
  if (!(await d.jobs.finish(job, f, logs))) {
    throw new LivegraftError('LEASE_LOST', `job ${job.id}: its result was already taken or its lease ran out`);
  }
}
