import { Type } from 'typebox';
import { KernelId, LivegraftError, PatchLevel, type HaltRecord } from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { actorOf } from '../routes/actor.ts';

const HaltRequest = Type.Object(
  {
    kernelId: KernelId,
    level: PatchLevel,
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  },
  { additionalProperties: false },
);

/**
 * `POST /halts` (operator): stops a level's rollout by hand, as a failed
 * apply would. Hosts not on the level yet stay on the one before it, and
 * promotion skips it, until `DELETE /halts/:kernelId/:level` resumes it.
 */
export function haltRoute(api: App, ctx: RouteContext): void {
  api.post(
    '/halts',
    { schema: { body: HaltRequest }, onRequest: guard(ctx.auth, 'operator') },
    async (req, reply): Promise<HaltRecord> => {
      const actor = actorOf(req);
      const { kernelId, level } = req.body;
      await ctx.fleet.requirePublished(kernelId, level);
      const halt: HaltRecord = {
        kernelId,
        level,
        reason: req.body.reason ?? `halted by ${actor.name}`,
        hostId: null,
        at: ctx.clock().toISOString(),
      };
      if (!(await ctx.fleet.feeds.halt(halt))) {
        throw new LivegraftError('ALREADY_HALTED', `level ${level} of kernel ${kernelId} is halted already`);
      }
      await ctx.fleet.record(actor, 'rollout.halt', kernelId, halt);
      await ctx.fleet.notify({ kernelIds: [kernelId] });
      void reply.status(201);
      return halt;
    },
  );
}
