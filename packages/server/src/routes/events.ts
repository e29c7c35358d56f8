import { EVENTS_STREAM_PATH, LivegraftError } from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { StreamQuota } from '../stream-quota.ts';

/** An agent needs one stream; a second covers a reconnect that overlaps the old one's end. Per server node. */
export const MAX_PUSH_STREAMS_PER_HOST = 2;

/**
 * `GET /events/stream` (host token): a Server-Sent Events stream. The first
 * event is the host's current desired level; later ones come when it changes
 * (publish, promotion, rollback, pin, halt), each with a random `spreadMs`
 * the agent waits before downloading. Comment heartbeats keep it open.
 */
export function eventRoutes(app: App, ctx: RouteContext): void {
  const perHost = new StreamQuota(MAX_PUSH_STREAMS_PER_HOST, 'event streams');
  app.get(EVENTS_STREAM_PATH, { onRequest: guard(ctx.auth, 'host') }, async (req, reply) => {
    const who = req.principal;
    if (who?.kind !== 'host') throw new LivegraftError('FORBIDDEN', 'the event stream needs a host token');
    const host = await ctx.hosts.fleetHost(who.hostId);
    if (host === undefined) throw new LivegraftError('AUTH_INVALID', 'the host token was revoked');
    const desired = (await ctx.fleet.desiredFor([host])).get(host.id) ?? null;
    perHost.acquire(host.id, `host ${host.id}`, reply.raw);
    reply.hijack();
    ctx.push.open(reply.raw, host, desired);
  });
}
