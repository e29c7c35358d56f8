import { guard } from '../auth.ts';
import type { ComplianceService } from '../compliance/service.ts';
import type { VexDocument } from '../compliance/vex.ts';
import type { App, RouteContext } from '../context.ts';
import { HostParams } from './exposure.ts';
import { userspaceVexStatements } from '../userspace/vex.ts';

/** OpenVEX documents: what live patches fixed in the running kernels, and what is still open. */
export function vexRoutes(app: App, ctx: RouteContext, compliance: ComplianceService): void {
  // User-space statements join the kernel's before the document is stamped, so they count in its version.
  const userspace = ctx.userspace;
  const extra =
    userspace === undefined
      ? undefined
      : (hosts: readonly { id: string; hostname: string }[]) => userspaceVexStatements(userspace, hosts);
  app.get(
    '/hosts/:id/vex',
    { schema: { params: HostParams }, onRequest: guard(ctx.auth, 'viewer') },
    async (req, reply): Promise<VexDocument> => {
      void reply.type('application/json');
      return compliance.vex(req.params.id, extra);
    },
  );

  app.get('/vex', { onRequest: guard(ctx.auth, 'viewer') }, async (): Promise<VexDocument> =>
    compliance.vex(undefined, extra),
  );
}
