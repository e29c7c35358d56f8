import { gzipSync } from 'node:zlib';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';

/** `/metrics` (Prometheus text; a viewer token) and `/openapi.json` (public: it holds no data). */
export function opsRoutes(app: App, ctx: RouteContext): void {
  app.get('/metrics', { onRequest: guard(ctx.auth, 'viewer') }, async (_req, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text);
  });
  // Built from the routes on the first call (openapi/document.ts), then kept as bytes: routes are fixed once ready.
  let openapi: { plain: Buffer; gzip: Buffer } | undefined;
  app.get('/openapi.json', async (req, reply) => {
    if (openapi === undefined) {
      const plain = Buffer.from(JSON.stringify(app.swagger()));
      openapi = { plain, gzip: gzipSync(plain) };
    }
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    void reply.type('application/json; charset=utf-8').header('vary', 'accept-encoding');
    if (gzip) void reply.header('content-encoding', 'gzip');
    return reply.send(gzip ? openapi.gzip : openapi.plain);
  });
}
