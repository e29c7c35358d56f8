import { Type } from 'typebox';
import {
  CoverageReport,
  FixId,
  FixRecord,
  FixSubmitRequest,
  FleetKernel,
  KernelId,
  LivegraftError,
  MAX_FIX_BYTES,
  PatchLevel,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { coverageReport, type CoverageSource } from '../pipeline/coverage.ts';
import { fleetKernels, publicKernel } from '../pipeline/kernels.ts';
import type { Pipeline } from '../pipeline/service.ts';
import { actorOf } from './actor.ts';

/** A fix's files travel base64 (4/3) inside JSON, with fix.json beside them. */
const MAX_FIX_BODY_BYTES = Math.ceil((MAX_FIX_BYTES * 4) / 3) + 512 * 1024;
/** OpenAPI summary and tags (a function result: Fastify's schema type does not list them). */
const doc = (summary: string): { summary: string; tags: string[] } => ({ summary, tags: ['pipeline'] });

const NoQuery = Type.Object({}, { additionalProperties: false });
const FixParams = Type.Object({ id: FixId }, { additionalProperties: false });
const LevelParams = Type.Object({ kernelId: KernelId, level: PatchLevel }, { additionalProperties: false });
const OverrideBody = Type.Object(
  { reason: Type.String({ minLength: 3, maxLength: 1000 }) },
  { additionalProperties: false },
);
const OverrideAnswer = Type.Object({
  kernelId: KernelId,
  level: PatchLevel,
  result: Type.String(),
  reason: Type.String(),
});

/** Fleet kernel builds, fix submission and plans, and the operator's validation override for a hand-built level. */
export function pipelineRoutes(app: App, ctx: RouteContext, pipeline: Pipeline, cves: CoverageSource): void {
  app.get(
    '/coverage',
    {
      schema: { ...doc('CVE x kernel build: where each CVE affecting the fleet stands'), querystring: NoQuery },
      config: { answer: CoverageReport },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (): Promise<CoverageReport> => coverageReport(pipeline.db, cves, ctx.clock()),
  );

  app.get(
    '/fleet/kernels',
    {
      schema: { ...doc('Kernel builds the fleet runs, with host counts'), querystring: NoQuery },
      config: { answer: Type.Array(FleetKernel) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (): Promise<FleetKernel[]> => (await fleetKernels(pipeline.db)).map(publicKernel),
  );

  app.post(
    '/fixes',
    {
      schema: { ...doc('Submit a fix: planned and queued for every fleet kernel build'), body: FixSubmitRequest },
      config: { answer: FixRecord },
      bodyLimit: MAX_FIX_BODY_BYTES,
      onRequest: guard(ctx.auth, 'operator'),
    },
    async (req, reply): Promise<FixRecord> => {
      const record = await pipeline.fixes.submit(req.body.fix, actorOf(req));
      req.log.info({ fixId: record.id, plan: record.plan.map((p) => p.state) }, 'fix submitted');
      void reply.status(201);
      return record;
    },
  );

  app.get(
    '/fixes',
    {
      schema: { ...doc('Submitted fixes with their plan per kernel build'), querystring: NoQuery },
      config: { answer: Type.Array(FixRecord) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (): Promise<FixRecord[]> => pipeline.fixes.list(),
  );

  app.get(
    '/fixes/:id',
    {
      schema: { ...doc('One submitted fix and its plan'), params: FixParams },
      config: { answer: FixRecord },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req): Promise<FixRecord> => pipeline.fixes.get(req.params.id),
  );

  app.put(
    '/kernels/:kernelId/levels/:level/validation',
    {
      schema: {
        ...doc('Let a level without a passed VM validation enter gated feeds (audited override)'),
        params: LevelParams,
        body: OverrideBody,
      },
      config: { answer: OverrideAnswer },
      onRequest: guard(ctx.auth, 'operator'),
    },
    async (req) => {
      const { kernelId, level } = req.params;
      const stored = await ctx.patches.level(kernelId, level);
      if (stored === undefined) throw new LivegraftError('LEVEL_NOT_FOUND', `kernel ${kernelId} has no level ${level}`);
      const actor = actorOf(req);
      const existing = await pipeline.db
        .selectFrom('level_validations')
        .select(['result'])
        .where('kernel_id', '=', kernelId)
        .where('level', '=', level)
        .executeTakeFirst();
      if (existing?.result === 'failed') {
        throw new LivegraftError(
          'NOT_VALIDATED',
          `level ${level} of kernel ${kernelId} failed its VM validation; an override is for levels never validated (built by hand), not for failed ones`,
        );
      }
      const at = ctx.clock().toISOString();
      if (existing === undefined) {
        await pipeline.db
          .insertInto('level_validations')
          .values({
            kernel_id: kernelId,
            level,
            result: 'override',
            summary_json: null,
            reason: req.body.reason,
            actor: actor.name,
            at,
          })
          .onConflict((oc) => oc.columns(['kernel_id', 'level']).doNothing())
          .execute();
      }
      await ctx.fleet.record(actor, 'level.validation-override', kernelId, { level, reason: req.body.reason });
      // Gated auto-publish feeds may take it now.
      if (stored.record.published) await ctx.fleet.onPublished(kernelId, level, actor);
      return { kernelId, level, result: existing?.result ?? 'override', reason: req.body.reason };
    },
  );
}
