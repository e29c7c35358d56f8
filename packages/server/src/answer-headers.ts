import type { FastifyInstance, FastifyReply } from 'fastify';

/** Every answer is what its Content-Type says; browsers must not guess otherwise. */
export function installAnswerHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_req, reply, payload) => {
    if (!reply.hasHeader('x-content-type-options')) void reply.header('x-content-type-options', 'nosniff');
    return payload;
  });
}

/** For answers that carry a secret (a new token, a session's CSRF token): no cache may keep them. */
export function noStore(reply: FastifyReply): void {
  void reply.header('cache-control', 'no-store');
  void reply.header('pragma', 'no-cache');
}
