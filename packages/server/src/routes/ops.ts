import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';

/** `/metrics` (Prometheus text; a viewer token) and `/openapi.json` (public: it holds no data). */
export function opsRoutes(app: App, ctx: RouteContext): void {
  app.get('/metrics', { onRequest: guard(ctx.auth, 'viewer') }, async (_req, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text);
  });
  // Built from the routes on the first call (openapi/document.ts), then kept.
  app.get('/openapi.json', async () => app.swagger());
}
