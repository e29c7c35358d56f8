import type { ServerOptions } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * How long a client may take to send a request. A check-in is a few hundred
 * bytes, so headers and small bodies get seconds, not minutes; only routes that
 * accept more than a JSON body (module uploads, build results) get the longer,
 * still bounded, upload allowance.
 */
export interface SlowClientLimits {
  /** From connection (or the previous request) to the end of the headers. */
  headersMs: number;
  /** From the end of the headers to the end of a small (JSON) body. */
  bodyMs: number;
  /** The same for routes whose body limit is above the JSON one (uploads). */
  uploadMs: number;
  /** How often Node looks for connections past their header or request deadline. */
  checkIntervalMs: number;
}

export const SLOW_CLIENT_LIMITS: Readonly<SlowClientLimits> = {
  headersMs: 15_000,
  bodyMs: 30_000,
  // 64 MiB at about 110 kB/s; a module upload from a working link takes seconds.
  uploadMs: 10 * 60_000,
  checkIntervalMs: 2_000,
};

/** Fastify/Node server options enforcing the header deadline and the outer bound on any request. */
export function slowClientServerOptions(l: SlowClientLimits): {
  requestTimeout: number;
  http: ServerOptions;
} {
  return {
    requestTimeout: l.headersMs + l.uploadMs,
    http: { headersTimeout: l.headersMs, connectionsCheckingInterval: l.checkIntervalMs },
  };
}

const deadlines = new WeakMap<FastifyRequest, NodeJS.Timeout>();

function hasBody(req: FastifyRequest): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Cuts off a client that sent its headers but dribbles its body: after
 * bodyMs (uploadMs on upload routes) the connection is closed and logged.
 */
export function installBodyDeadline(app: FastifyInstance, l: SlowClientLimits, jsonBodyLimit: number): void {
  const clear = async (req: FastifyRequest): Promise<void> => {
    const timer = deadlines.get(req);
    if (timer === undefined) return;
    // A refused request whose body is still arriving keeps its deadline until the body ends.
    if (!req.raw.complete) {
      req.raw.once('end', () => clearTimeout(timer));
      return;
    }
    clearTimeout(timer);
    deadlines.delete(req);
  };
  app.addHook('onRequest', async (req: FastifyRequest, _reply: FastifyReply) => {
    if (!hasBody(req)) return;
    const upload = (req.routeOptions.bodyLimit ?? jsonBodyLimit) > jsonBodyLimit;
    const ms = upload ? l.uploadMs : l.bodyMs;
    const timer = setTimeout(() => {
      deadlines.delete(req);
      req.log.warn(
        { client: req.ip, method: req.method, url: req.url.split('?')[0] ?? '', ms },
        'request body not received in time; connection closed',
      );
      req.raw.socket.destroy();
    }, ms);
    timer.unref();
    deadlines.set(req, timer);
  });
  // The body has been read (or refused) by then; streams that answer for long never hold a deadline.
  app.addHook('preValidation', clear);
  app.addHook('onResponse', clear);
  app.addHook('onRequestAbort', async (req) => {
    clearTimeout(deadlines.get(req));
    deadlines.delete(req);
  });
}
