import { Type } from 'typebox';
import {
  CheckinRequest,
  EnrollRequest,
  LivegraftError,
  type CheckinResponse,
  type EnrollResponse,
  type HostRecord,
} from '@livegraft/protocol';
import { guard, hashToken, sameHash } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';

const HostParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });

export function hostRoutes(app: App, ctx: RouteContext): void {
  app.post('/hosts/enroll', { schema: { body: EnrollRequest } }, async (req, reply): Promise<EnrollResponse> => {
    const { registrationKey, hostname, kernel, agentVersion } = req.body;
    if (!sameHash(hashToken(registrationKey), ctx.registrationKeyHash)) {
      throw new LivegraftError(
        'REGISTRATION_KEY_INVALID',
        'the registration key is wrong; see <data-dir>/registration-key on the server',
      );
    }
    const hostId = ctx.randomId();
    const token = ctx.randomToken();
    await ctx.hosts.enroll({ id: hostId, hostname, tokenHash: hashToken(token), kernel, agentVersion }, ctx.clock());
    req.log.info({ hostId, hostname, kernelId: kernel.id }, 'host enrolled');
    void reply.status(201);
    return { hostId, token, root: await ctx.tuf.rootJson() };
  });

  app.post(
    '/hosts/checkin',
    { schema: { body: CheckinRequest }, onRequest: guard(ctx.auth, 'host') },
    async (req): Promise<CheckinResponse> => {
      const who = req.principal;
      if (who?.kind !== 'host') throw new LivegraftError('FORBIDDEN', 'check-in needs a host token');
      const report = req.body;
      await ctx.hosts.checkin(who.hostId, report, ctx.clock());
      const latest = (await ctx.patches.latestPublished(report.kernel.id)) ?? null;
      return { kernelSupported: latest !== null, latest, checkinIntervalSec: ctx.config.checkinIntervalSec };
    },
  );

  app.get('/hosts', { onRequest: guard(ctx.auth, 'admin') }, async (): Promise<HostRecord[]> => ctx.hosts.list());

  app.get(
    '/hosts/:id',
    { schema: { params: HostParams }, onRequest: guard(ctx.auth, 'admin') },
    async (req): Promise<HostRecord> => {
      const host = await ctx.hosts.get(req.params.id);
      if (host === undefined) throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${req.params.id}`);
      return host;
    },
  );
}
