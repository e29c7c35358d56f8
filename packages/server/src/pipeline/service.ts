import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { RouteContext } from '../context.ts';
import { FixService } from './fixes.ts';
import { JobService } from './jobs.ts';
import type { PipelineDatabase } from './schema.ts';

/** A worker's lease when the configuration names none. */
export const DEFAULT_JOB_LEASE_SEC = 120;

/** The build pipeline: submitted fixes and their plans, and the job queue workers claim from. */
export interface Pipeline {
  db: Kysely<PipelineDatabase>;
  fixes: FixService;
  jobs: JobService;
}

export function createPipeline(ctx: RouteContext, db: Kysely<unknown>, log: Logger): Pipeline {
  const pdb = db as unknown as Kysely<PipelineDatabase>;
  const common = { db: pdb, fleet: ctx.fleet, clock: ctx.clock, randomId: ctx.randomId, log };
  return {
    db: pdb,
    fixes: new FixService({
      ...common,
      ...(ctx.config.catalogueDir === undefined ? {} : { catalogueDir: ctx.config.catalogueDir }),
    }),
    jobs: new JobService({
      ...common,
      patches: ctx.patches,
      leaseSec: ctx.config.jobLeaseSec ?? DEFAULT_JOB_LEASE_SEC,
    }),
  };
}
