import type { FastifyInstance, FastifyReply } from 'fastify';

/** Browsers that once reached the server over HTTPS never try plain HTTP again (half a year). */
const HSTS = 'max-age=15552000; includeSubDomains';

/**
 * Every answer is what its Content-Type says (browsers must not guess
 * otherwise); over HTTPS (direct, or as a trusted proxy says) every answer
 * carries HSTS.
 */
export function installAnswerHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (!reply.hasHeader('x-content-type-options')) void reply.header('x-content-type-options', 'nosniff');
    if (req.protocol === 'https' && !reply.hasHeader('strict-transport-security')) {
      void reply.header('strict-transport-security', HSTS);
    }
    return payload;
  });
}

/** For answers that carry a secret (a new token, a session's CSRF token): no cache may keep them. */
export function noStore(reply: FastifyReply): void {
  void reply.header('cache-control', 'no-store');
  void reply.header('pragma', 'no-cache');
}
