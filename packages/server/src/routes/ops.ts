import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import type { OpenApiCollector } from '../openapi.ts';

/** `/metrics` (Prometheus text; a viewer token) and `/openapi.json` (public: it holds no data). */
export function opsRoutes(app: App, ctx: RouteContext, openapi: OpenApiCollector, version: string): void {
  app.get('/metrics', { onRequest: guard(ctx.auth, 'viewer') }, async (_req, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text);
  });
  app.get('/openapi.json', async () => openapi.document({ title: 'Livegraft patch server', version }));
}
