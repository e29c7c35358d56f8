import { guard } from '../auth.ts';
import type { ComplianceService } from '../compliance/service.ts';
import type { VexDocument } from '../compliance/vex.ts';
import type { App, RouteContext } from '../context.ts';
import { HostParams } from './exposure.ts';
import { withUserspaceStatements } from '../userspace/vex.ts';

/** OpenVEX documents: what live patches fixed in the running kernels, and what is still open. */
export function vexRoutes(app: App, ctx: RouteContext, compliance: ComplianceService): void {
  app.get(
    '/hosts/:id/vex',
    { schema: { params: HostParams }, onRequest: guard(ctx.auth, 'viewer') },
    async (req, reply): Promise<VexDocument> => {
      void reply.type('application/json');
      const doc = await compliance.vex(req.params.id);
      const host = await ctx.hosts.get(req.params.id);
      return withUserspaceStatements(doc, ctx.userspace, host === undefined ? [] : [host]);
    },
  );

  app.get('/vex', { onRequest: guard(ctx.auth, 'viewer') }, async (): Promise<VexDocument> =>
    withUserspaceStatements(await compliance.vex(), ctx.userspace, await ctx.hosts.list({})),
  );
}
