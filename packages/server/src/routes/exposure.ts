import { Type } from 'typebox';
import { CveId, type CveHosts, type FleetExposure, type HostExposure } from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { ComplianceService } from '../compliance/service.ts';
import type { App, RouteContext } from '../context.ts';

export const HostParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
export const ScopeQuery = Type.Object(
  {
    feed: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);

/** Effective exposure: the CVEs affecting each host's running kernel minus those its live patch fixes. */
export function exposureRoutes(app: App, ctx: RouteContext, compliance: ComplianceService): void {
  app.get(
    '/hosts/:id/exposure',
    { schema: { params: HostParams }, onRequest: guard(ctx.auth, 'viewer') },
    async (req): Promise<HostExposure> => compliance.hostExposure(req.params.id),
  );

  app.get(
    '/exposure',
    { schema: { querystring: ScopeQuery }, onRequest: guard(ctx.auth, 'viewer') },
    async (req): Promise<FleetExposure> => compliance.fleetExposure(req.query),
  );

  app.get(
    '/cves/:id',
    {
      schema: { params: Type.Object({ id: CveId }, { additionalProperties: false }) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req): Promise<CveHosts> => compliance.cve(req.params.id),
  );
}
