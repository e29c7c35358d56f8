import { extname } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { API_PREFIX, LivegraftError } from '@livegraft/protocol';
import type { App } from '../context.ts';
import { setDashboardHeaders } from './headers.ts';
import type { StaticFile, StaticFiles } from './static.ts';

/** Paths that belong to programs, never to the dashboard: unknown ones stay JSON 404s. */
const NOT_DASHBOARD = [`${API_PREFIX}/`, '/tuf/', '/metrics', '/openapi.json', '/healthz'];

export const NOT_BUILT_MESSAGE = 'dashboard not built: run npm run build';

function send(req: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  void reply.header('cache-control', file.cacheControl).header('etag', file.etag).header('vary', 'accept-encoding');
  if (req.headers['if-none-match'] === file.etag) return reply.status(304).send();
  void reply.type(file.contentType);
  if (file.encoding !== undefined) void reply.header('content-encoding', file.encoding);
  return reply.send(file.body);
}

/**
 * The built dashboard on `/`: files by path, index.html for the client's own
 * routes (/hosts/abc...), security headers on all of it. A GET under the API
 * prefix that matched no API route still gets the API's JSON 404.
 */
export function dashboardPages(app: App, files: StaticFiles): void {
  const serve = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const path = req.url.split('?')[0] ?? '/';
    if (NOT_DASHBOARD.some((p) => path === p || path.startsWith(p))) {
      throw new LivegraftError('NOT_FOUND', `no route ${req.method} ${path}`);
    }
    setDashboardHeaders(reply, req.protocol === 'https');
    const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const file = path === '/' ? undefined : await files.get(path, gz);
    if (file !== undefined) return send(req, reply, file);
    // A missing file with an extension is a 404; anything else is a client route.
    if (extname(path) !== '') {
      return reply.status(404).type('text/plain; charset=utf-8').send(`not found: ${path}\n`);
    }
    const index = await files.get('/index.html', gz);
    if (index === undefined) {
      return reply
        .status(503)
        .header('cache-control', 'no-store')
        .type('text/plain; charset=utf-8')
        .send(`${NOT_BUILT_MESSAGE}\n`);
    }
    return send(req, reply, index);
  };
  app.get('/', serve);
  app.get('/*', serve);
}
