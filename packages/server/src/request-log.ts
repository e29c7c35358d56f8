import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * Every host checks in every interval, so per-request lines go to `debug`;
 * failures are logged by the error handler at info (4xx) or error (5xx).
 */
export class RequestLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (!error && reply.log.level !== 'debug' && reply.log.level !== 'trace') return;
    const fields = { method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else reply.log.debug(fields, 'request completed');
  }
}
