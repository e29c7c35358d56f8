import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import {
  FixBundle,
  FixId,
  JobClaim,
  JobClaimRequest,
  JobHeartbeat,
  JobLease,
  JobRecord,
  JobResult,
  JobState,
  KernelId,
  LivegraftError,
  PatchManifest,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { toJobRecord } from '../pipeline/jobs.ts';
import { acceptResult } from '../pipeline/results.ts';
import type { Pipeline } from '../pipeline/service.ts';
import { actorOf } from './actor.ts';

/** A result carries the module (up to 64 MiB, base64) and the logs: the one large JSON body. */
export const MAX_RESULT_BODY_BYTES = 96 * 1024 * 1024;
export const LEASE_HEADER = 'x-livegraft-lease';
/** OpenAPI summary and tags (a function result: Fastify's schema type does not list them). */
const doc = (summary: string): { summary: string; tags: string[] } => ({ summary, tags: ['pipeline'] });

const JobParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });
const JobFixParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 64 }), fixId: FixId },
  { additionalProperties: false },
);
const JobsQuery = Type.Object(
  { fixId: Type.Optional(FixId), kernelId: Type.Optional(KernelId), state: Type.Optional(JobState) },
  { additionalProperties: false },
);

function leaseOf(req: FastifyRequest): string | undefined {
  const v = req.headers[LEASE_HEADER];
  return typeof v === 'string' ? v : undefined;
}

/**
 * The job queue. Workers (a token with the worker role, and nothing else)
 * claim, heartbeat, fetch their inputs and send results while they hold a
 * lease; viewers read jobs and their logs.
 */
export function jobRoutes(app: App, ctx: RouteContext, pipeline: Pipeline): void {
  const { jobs } = pipeline;
  const worker = guard(ctx.auth, 'worker');
  const viewer = guard(ctx.auth, 'viewer');

  app.post(
    '/jobs/claim',
    {
      schema: { ...doc('Claim the next build job (204: none)'), body: JobClaimRequest },
      config: { answer: JobClaim },
      onRequest: worker,
    },
    async (req, reply) => {
      const claim = await jobs.claim(req.body.workerId);
      if (claim === undefined) return reply.status(204).send();
      return claim;
    },
  );

  app.post(
    '/jobs/:id/heartbeat',
    {
      schema: { ...doc('Extend a held lease and report the phase'), params: JobParams, body: JobHeartbeat },
      config: { answer: JobLease },
      onRequest: worker,
    },
    async (req): Promise<JobLease> => jobs.heartbeat(req.params.id, req.body.leaseId, req.body.phase, req.body.message),
  );

  app.get(
    '/jobs/:id/fixes/:fixId',
    {
      schema: { ...doc('A fix of the held job (lease in x-livegraft-lease)'), params: JobFixParams },
      config: { answer: FixBundle },
      onRequest: worker,
    },
    async (req): Promise<FixBundle> => {
      const { claim } = await jobs.held(req.params.id, leaseOf(req));
      if (!claim.fixes.some((f) => f.id === req.params.fixId)) {
        throw new LivegraftError('FIX_NOT_FOUND', `fix ${req.params.fixId} is not part of job ${req.params.id}`);
      }
      const found = await pipeline.fixes.bundle(req.params.fixId);
      if (found === undefined) throw new LivegraftError('FIX_NOT_FOUND', `fix ${req.params.fixId} is not stored`);
      return found.bundle;
    },
  );

  const previous = async (id: string, lease: string | undefined): Promise<PatchManifest> => {
    const { claim } = await jobs.held(id, lease);
    if (claim.previous === null) {
      throw new LivegraftError('LEVEL_NOT_FOUND', `job ${id} builds the first level: there is no previous one`);
    }
    const stored = await ctx.patches.level(claim.kernel.kernelId, claim.previous.level);
    if (stored === undefined) throw new LivegraftError('LEVEL_NOT_FOUND', `level ${claim.previous.level} is gone`);
    return stored.manifest;
  };

  app.get(
    '/jobs/:id/previous/manifest',
    {
      schema: { ...doc('Manifest of the level the held job replaces'), params: JobParams },
      config: { answer: PatchManifest },
      onRequest: worker,
    },
    async (req): Promise<PatchManifest> => previous(req.params.id, leaseOf(req)),
  );

  app.get(
    '/jobs/:id/previous/module',
    {
      schema: { ...doc('Module bytes of the level the held job replaces'), params: JobParams },
      onRequest: worker,
    },
    async (req, reply) => {
      const m = await previous(req.params.id, leaseOf(req));
      const opened = await ctx.modules.open(m.module.sha256);
      if (opened === undefined)
        throw new LivegraftError('MODULE_NOT_FOUND', `no module with sha256 ${m.module.sha256}`);
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', opened.size)
        .send(opened.handle.createReadStream());
    },
  );

  app.post(
    '/jobs/:id/result',
    {
      schema: { ...doc('Send the outcome of the held job'), params: JobParams, body: JobResult },
      config: { answer: JobRecord },
      bodyLimit: MAX_RESULT_BODY_BYTES,
      onRequest: worker,
    },
    async (req): Promise<JobRecord> => {
      const record = await acceptResult({ ...ctx, db: pipeline.db, jobs }, req.params.id, req.body, actorOf(req));
      req.log.info({ jobId: record.id, outcome: record.outcome, level: record.level }, 'job result');
      return record;
    },
  );

  app.get(
    '/jobs',
    {
      schema: { ...doc('Build jobs, newest fix first'), querystring: JobsQuery },
      config: { answer: Type.Array(JobRecord) },
      onRequest: viewer,
    },
    async (req): Promise<JobRecord[]> => jobs.list(req.query),
  );

  app.get(
    '/jobs/:id',
    {
      schema: { ...doc('One build job'), params: JobParams },
      config: { answer: JobRecord },
      onRequest: viewer,
    },
    async (req): Promise<JobRecord> => {
      await jobs.expireLeases();
      return toJobRecord(await jobs.get(req.params.id));
    },
  );

  for (const [path, column, what] of [
    ['log', 'build_log', 'build log'],
    ['console', 'console_log', "validation VM's console log"],
  ] as const) {
    app.get(
      `/jobs/:id/${path}`,
      { schema: { ...doc(`A job's ${what} (text)`), params: JobParams }, onRequest: viewer },
      async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
        const job = await jobs.get(req.params.id);
        const text = job[column];
        if (text === null) throw new LivegraftError('NOT_FOUND', `job ${job.id} has no ${what} (yet)`);
        return reply.header('content-type', 'text/plain; charset=utf-8').send(text);
      },
    );
  }
}
