import { Type } from 'typebox';
import {
  BuildId,
  LivegraftError,
  UserspaceFeedLevel,
  UserspacePromoteRequest,
  UserspacePromotion,
  UserspaceSetLevelRequest,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App } from '../context.ts';
import { actorOf } from '../routes/actor.ts';
import type { UserspaceRouteContext } from './routes.ts';

const FeedName = Type.String({ minLength: 1, maxLength: 64 });
const FeedParams = Type.Object({ feed: FeedName }, { additionalProperties: false });
const FeedBuildParams = Type.Object({ feed: FeedName, buildId: BuildId }, { additionalProperties: false });
const ListQuery = Type.Object(
  { feed: Type.Optional(FeedName), buildId: Type.Optional(BuildId) },
  { additionalProperties: false },
);

/** Feeds' user-space levels: list, set by hand (below the current level: a rollback), promote now. */
export function userspaceFeedRoutes(app: App, ctx: UserspaceRouteContext): void {
  const knownFeed = async (name: string) => {
    if ((await ctx.userspace.feed(name)) === undefined)
      throw new LivegraftError('FEED_NOT_FOUND', `no feed named ${name}`);
  };

  app.get(
    '/userspace/feeds',
    {
      schema: { querystring: ListQuery },
      config: { answer: Type.Array(UserspaceFeedLevel) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req) => ctx.userspace.feedLevels.list(req.query),
  );

  app.put(
    '/userspace/feeds/:feed/levels/:buildId',
    {
      schema: { params: FeedBuildParams, body: UserspaceSetLevelRequest },
      config: { answer: UserspaceFeedLevel },
      onRequest: guard(ctx.auth, 'operator'),
    },
    async (req) => {
      const { feed, buildId } = req.params;
      const { level } = req.body;
      await knownFeed(feed);
      if (level > 0 && (await ctx.userspace.list(buildId)).find((r) => r.level === level && r.published) === undefined)
        throw new LivegraftError('LEVEL_NOT_FOUND', `library build ${buildId} has no published level ${level}`);
      const how = await ctx.userspace.setFeedLevel(feed, buildId, level, ctx.clock());
      await ctx.fleet.record(actorOf(req), `userspace.${how === 'rollback' ? 'rollback' : 'set-level'}`, feed, {
        buildId,
        level,
      });
      const row = (await ctx.userspace.feedLevels.list({ feed, buildId }))[0];
      if (row === undefined) throw new LivegraftError('LEVEL_NOT_FOUND', 'the feed level vanished');
      return row;
    },
  );

  app.post(
    '/userspace/feeds/:feed/promote',
    {
      schema: { params: FeedParams, body: UserspacePromoteRequest },
      config: { answer: Type.Array(UserspacePromotion) },
      onRequest: guard(ctx.auth, 'operator'),
    },
    async (req) => {
      const { feed } = req.params;
      const from = await ctx.userspace.feed(feed);
      if (from === undefined) throw new LivegraftError('FEED_NOT_FOUND', `no feed named ${feed}`);
      const to = req.body.to ?? from.promotesTo ?? undefined;
      if (to === undefined)
        throw new LivegraftError('BAD_REQUEST', `feed ${feed} promotes to no feed; say which with "to"`);
      await knownFeed(to);
      const done = await ctx.userspace.promote(ctx.clock(), {
        from: feed,
        to,
        force: true,
        ...(req.body.buildId === undefined ? {} : { buildId: req.body.buildId }),
      });
      for (const p of done)
        await ctx.fleet.record(actorOf(req), 'userspace.promote', p.to, {
          from: p.from,
          buildId: p.buildId,
          level: p.level,
        });
      return done;
    },
  );
}
