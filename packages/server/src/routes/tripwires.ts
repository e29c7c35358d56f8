import { Type } from 'typebox';
import {
  CveId,
  LivegraftError,
  TripwireReport,
  type TripwireRecord,
  type TripwireReportResponse,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { ComplianceService } from '../compliance/service.ts';
import { MAX_TRIPWIRE_LIST } from '../compliance/tripwires.ts';
import type { App, RouteContext } from '../context.ts';
import { HostParams } from './exposure.ts';

const ListQuery = Type.Object(
  {
    host: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    cve: Type.Optional(CveId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TRIPWIRE_LIST })),
  },
  { additionalProperties: false },
);

/** Known-exploit detection: agents report LG_TRIPWIRE hits; admins list them. */
export function tripwireRoutes(app: App, ctx: RouteContext, compliance: ComplianceService): void {
  app.post(
    '/hosts/tripwire',
    { schema: { body: TripwireReport }, onRequest: guard(ctx.auth, 'host') },
    async (req): Promise<TripwireReportResponse> => {
      const who = req.principal;
      if (who?.kind !== 'host') throw new LivegraftError('FORBIDDEN', 'tripwire reports need a host token');
      const fresh = await compliance.recordTripwires(who.hostId, req.body.events);
      return { accepted: fresh.length };
    },
  );

  app.get(
    '/tripwires',
    { schema: { querystring: ListQuery }, onRequest: guard(ctx.auth, 'admin') },
    async (req): Promise<TripwireRecord[]> =>
      compliance.listTripwires({ hostId: req.query.host, cve: req.query.cve, limit: req.query.limit }),
  );

  app.get(
    '/hosts/:id/tripwires',
    {
      schema: { params: HostParams, querystring: Type.Omit(ListQuery, ['host']) },
      onRequest: guard(ctx.auth, 'admin'),
    },
    async (req): Promise<TripwireRecord[]> =>
      compliance.listTripwires({ hostId: req.params.id, cve: req.query.cve, limit: req.query.limit }),
  );
}
