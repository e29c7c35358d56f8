import { Type, type TSchema } from 'typebox';
import {
  FeedName,
  HostTag,
  KernelId,
  LivegraftError,
  PinRequest,
  type PinRecord,
  type PinScope,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { actorOf } from './actor.ts';

const UnpinQuery = Type.Object({ kernelId: Type.Optional(KernelId) }, { additionalProperties: false });
const HostId = Type.String({ minLength: 1, maxLength: 64 });

const SUBJECTS: [PinScope, string, TSchema][] = [
  ['feed', '/feeds/:subject/pin', FeedName],
  ['host', '/hosts/:subject/pin', HostId],
  ['tag', '/tags/:subject/pin', HostTag],
];

/** PUT sets a pin (a level for one kernel, or a cut-off date); DELETE removes it (one kernel's, or all). */
export function pinRoutes(app: App, ctx: RouteContext): void {
  const { fleet } = ctx;
  const exists = async (scope: PinScope, subject: string): Promise<void> => {
    if (scope === 'feed') await fleet.requireFeed(subject);
    if (scope === 'host' && (await ctx.hosts.get(subject)) === undefined) {
      throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${subject}`);
    }
  };
  for (const [scope, path, subjectSchema] of SUBJECTS) {
    const params = Type.Object({ subject: subjectSchema }, { additionalProperties: false });
    app.put(
      path,
      { schema: { params, body: PinRequest }, onRequest: guard(ctx.auth, 'operator') },
      async (req): Promise<PinRecord> => {
        const { subject } = req.params as { subject: string };
        await exists(scope, subject);
        return fleet.pin(scope, subject, req.body, actorOf(req));
      },
    );
    app.delete(
      path,
      { schema: { params, querystring: UnpinQuery }, onRequest: guard(ctx.auth, 'operator') },
      async (req): Promise<{ removed: number }> => {
        const { subject } = req.params as { subject: string };
        return { removed: await fleet.unpin(scope, subject, req.query.kernelId, actorOf(req)) };
      },
    );
  }
  app.get('/pins', { onRequest: guard(ctx.auth, 'viewer') }, async (): Promise<PinRecord[]> => fleet.pins.list());
}
