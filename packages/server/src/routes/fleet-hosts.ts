import { Type } from 'typebox';
import { HostUpdate, LivegraftError, type HostRecord } from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { actorOf } from './actor.ts';

const HostParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });

/** Operator actions on one host: move to a feed, set tags, turn auto-update off/on, revoke its token. */
export function fleetHostRoutes(app: App, ctx: RouteContext): void {
  app.patch(
    '/hosts/:id',
    { schema: { params: HostParams, body: HostUpdate }, onRequest: guard(ctx.auth, 'operator') },
    async (req): Promise<HostRecord> => {
      const { id } = req.params;
      if (req.body.feed !== undefined) await ctx.fleet.requireFeed(req.body.feed);
      if (!(await ctx.hosts.update(id, req.body))) throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${id}`);
      await ctx.fleet.record(actorOf(req), 'host.update', id, req.body);
      await ctx.fleet.notify({ hostIds: [id] });
      const host = await ctx.hosts.get(id);
      if (host === undefined) throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${id}`);
      return host;
    },
  );

  app.post(
    '/hosts/:id/revoke',
    { schema: { params: HostParams }, onRequest: guard(ctx.auth, 'operator') },
    async (req): Promise<{ revoked: true }> => {
      const { id } = req.params;
      if (!(await ctx.hosts.revoke(id, ctx.clock()))) {
        throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${id} whose token is still valid`);
      }
      await ctx.fleet.record(actorOf(req), 'host.revoke', id);
      await ctx.fleet.bus.publish({ kind: 'revoke', at: Date.now(), hostIds: [id] });
      return { revoked: true };
    },
  );
}
