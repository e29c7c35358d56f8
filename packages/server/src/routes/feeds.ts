import { Type } from 'typebox';
import {
  FeedCreate,
  FeedName,
  FeedUpdate,
  KernelId,
  LivegraftError,
  PatchLevel,
  PromoteRequest,
  RollbackRequest,
  SetLevelRequest,
  type FeedRecord,
  type HaltRecord,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import type { Promotion } from '../fleet/promotion.ts';
import { actorOf } from './actor.ts';

const FeedParams = Type.Object({ name: FeedName }, { additionalProperties: false });
const FeedKernelParams = Type.Object({ name: FeedName, kernelId: KernelId }, { additionalProperties: false });
const HaltParams = Type.Object({ kernelId: KernelId, level: PatchLevel }, { additionalProperties: false });

export function feedRoutes(app: App, ctx: RouteContext): void {
  const { fleet } = ctx;
  const one = async (name: string): Promise<FeedRecord> => {
    const found = (await fleet.feedRecords()).find((f) => f.name === name);
    if (found === undefined) throw new LivegraftError('FEED_NOT_FOUND', `no feed named "${name}"`);
    return found;
  };
  const checkTarget = async (name: string, promotesTo: string | null | undefined): Promise<void> => {
    if (promotesTo === undefined || promotesTo === null) return;
    if (promotesTo === name) throw new LivegraftError('BAD_REQUEST', `feed ${name} cannot promote to itself`);
    await fleet.requireFeed(promotesTo);
  };

  app.get('/feeds', { onRequest: guard(ctx.auth, 'viewer') }, async (): Promise<FeedRecord[]> => fleet.feedRecords());

  app.get(
    '/feeds/:name',
    { schema: { params: FeedParams }, onRequest: guard(ctx.auth, 'viewer') },
    async (req): Promise<FeedRecord> => one(req.params.name),
  );

  app.post(
    '/feeds',
    { schema: { body: FeedCreate }, onRequest: guard(ctx.auth, 'operator') },
    async (req, reply): Promise<FeedRecord> => {
      await checkTarget(req.body.name, req.body.promotesTo);
      if (!(await fleet.feeds.create(req.body, ctx.clock()))) {
        throw new LivegraftError('FEED_EXISTS', `a feed named "${req.body.name}" exists already`);
      }
      await fleet.record(actorOf(req), 'feed.create', req.body.name, req.body);
      void reply.status(201);
      return one(req.body.name);
    },
  );

  app.patch(
    '/feeds/:name',
    { schema: { params: FeedParams, body: FeedUpdate }, onRequest: guard(ctx.auth, 'operator') },
    async (req): Promise<FeedRecord> => {
      await fleet.requireFeed(req.params.name);
      await checkTarget(req.params.name, req.body.promotesTo);
      await fleet.feeds.update(req.params.name, req.body);
      await fleet.record(actorOf(req), 'feed.update', req.params.name, req.body);
      return one(req.params.name);
    },
  );

  app.delete(
    '/feeds/:name',
    { schema: { params: FeedParams }, onRequest: guard(ctx.auth, 'operator') },
    async (req, reply) => {
      const { name } = req.params;
      await fleet.requireFeed(name);
      const hosts = await ctx.hosts.countInFeed(name);
      const keys = (await fleet.registrationKeys.list()).filter((k) => k.feed === name && k.revokedAt === null);
      if (hosts > 0 || keys.length > 0) {
        throw new LivegraftError(
          'FEED_IN_USE',
          `feed ${name} still has ${hosts} host(s) and ${keys.length} registration key(s); move or revoke them first`,
        );
      }
      await fleet.feeds.delete(name);
      await fleet.record(actorOf(req), 'feed.delete', name);
      return reply.status(204).send();
    },
  );

  app.put(
    '/feeds/:name/levels/:kernelId',
    { schema: { params: FeedKernelParams, body: SetLevelRequest }, onRequest: guard(ctx.auth, 'operator') },
    async (req): Promise<FeedRecord> => {
      const { name, kernelId } = req.params;
      await fleet.setFeedLevel(name, kernelId, req.body.level, req.body.allowDowngrade ?? false, actorOf(req));
      return one(name);
    },
  );

  app.post(
    '/feeds/:name/promote',
    { schema: { params: FeedParams, body: PromoteRequest }, onRequest: guard(ctx.auth, 'operator') },
    async (req): Promise<{ promoted: Promotion[] }> => ({
      promoted: await fleet.promote(req.params.name, req.body.to, req.body.kernelId, actorOf(req)),
    }),
  );

  app.post(
    '/rollback',
    { schema: { body: RollbackRequest }, onRequest: guard(ctx.auth, 'operator') },
    async (req): Promise<{ ok: true }> => {
      const { feed, tag, kernelId, level } = req.body;
      if ((feed === undefined) === (tag === undefined)) {
        throw new LivegraftError('VALIDATION_FAILED', 'a rollback names exactly one of "feed" and "tag"', {
          details: { problems: [{ path: '/feed', message: 'give exactly one of feed and tag' }] },
        });
      }
      await fleet.rollback(feed !== undefined ? { feed } : { tag: tag ?? '' }, kernelId, level, actorOf(req));
      return { ok: true };
    },
  );

  app.get('/halts', { onRequest: guard(ctx.auth, 'viewer') }, async (): Promise<HaltRecord[]> => fleet.feeds.halts());

  app.delete(
    '/halts/:kernelId/:level',
    { schema: { params: HaltParams }, onRequest: guard(ctx.auth, 'operator') },
    async (req, reply) => {
      const { kernelId, level } = req.params;
      if (!(await fleet.resume(kernelId, level, actorOf(req)))) {
        throw new LivegraftError('NOT_FOUND', `level ${level} of kernel ${kernelId} is not halted`);
      }
      return reply.status(204).send();
    },
  );
}
