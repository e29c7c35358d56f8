import { guard } from '../auth.ts';
import type { ComplianceService } from '../compliance/service.ts';
import type { VexDocument } from '../compliance/vex.ts';
import type { App, RouteContext } from '../context.ts';
import { HostParams } from './exposure.ts';

/** OpenVEX documents: what live patches fixed in the running kernels, and what is still open. */
export function vexRoutes(app: App, ctx: RouteContext, compliance: ComplianceService): void {
  app.get(
    '/hosts/:id/vex',
    { schema: { params: HostParams }, onRequest: guard(ctx.auth, 'admin') },
    async (req, reply): Promise<VexDocument> => {
      void reply.type('application/json');
      return compliance.vex(req.params.id);
    },
  );

  app.get('/vex', { onRequest: guard(ctx.auth, 'admin') }, async (): Promise<VexDocument> => compliance.vex());
}
