import type { FastifyError, FastifyInstance } from 'fastify';
import { isLivegraftError, type ApiError } from '@livegraft/protocol';

/** HTTP status of every error code the API answers with; unknown codes are 500. */
export const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  MODULE_HASH_MISMATCH: 400,
  MODULE_MALFORMED: 400,
  MODULE_NOT_LIVEPATCH: 400,
  MODULE_SIZE_MISMATCH: 400,
  MANIFEST_MISMATCH: 400,
  AUTH_REQUIRED: 401,
  AUTH_INVALID: 401,
  FORBIDDEN: 403,
  CSRF_INVALID: 403,
  REGISTRATION_KEY_INVALID: 403,
  NOT_FOUND: 404,
  KERNEL_UNSUPPORTED: 404,
  LEVEL_NOT_FOUND: 404,
  MODULE_NOT_FOUND: 404,
  HOST_NOT_FOUND: 404,
  MODULE_NOT_UPLOADED: 409,
  LEVEL_EXISTS: 409,
  ALREADY_HALTED: 409,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  FEED_NOT_FOUND: 404,
  FEED_EXISTS: 409,
  FEED_IN_USE: 409,
  DOWNGRADE_REFUSED: 409,
  RATE_LIMITED: 429,
  STREAM_LIMIT: 429,
  // The build pipeline (issue 11).
  FIX_INVALID: 400,
  PATCH_INVALID: 400,
  FIX_NO_CVE: 400,
  FIX_DUPLICATE: 400,
  FIX_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  LEASE_LOST: 409,
  NOT_VALIDATED: 409,
};

// Fastify's own request errors, renamed to our stable codes.
const FASTIFY_CODES: Readonly<Record<string, string>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'VALIDATION_FAILED',
  FST_ERR_CTP_INVALID_JSON_BODY: 'VALIDATION_FAILED',
};

function toApiError(err: unknown): { status: number; body: ApiError } {
  if (isLivegraftError(err)) {
    return { status: STATUS_OF_CODE[err.code] ?? 500, body: err.toJSON() };
  }
  const fe = err as Partial<FastifyError>;
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = FASTIFY_CODES[fe.code ?? ''] ?? (status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST');
    return { status, body: { code, message: fe.message ?? 'bad request' } };
  }
  return { status: 500, body: { code: 'INTERNAL', message: 'internal server error (see the server log)' } };
}

/** Refusals a defender traces brute force and probing by: who asked, for what, and why (never the secret). */
const AUTH_FAILURES = new Set([
  'AUTH_REQUIRED',
  'AUTH_INVALID',
  'FORBIDDEN',
  'CSRF_INVALID',
  'REGISTRATION_KEY_INVALID',
]);

/** The one place errors become HTTP answers: `{code, message, details?}` with a fitting status. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toApiError(err);
    if (status >= 500) req.log.error({ err }, 'request failed');
    else if (AUTH_FAILURES.has(body.code)) {
      // The query is dropped: nothing secret belongs there, but a client could still put one there.
      const url = req.url.split('?')[0] ?? '';
      const fields = { code: body.code, status, client: req.ip, method: req.method, url };
      // A missing token is what a browser's first visit sends; a wrong one is what a brute force sends.
      if (body.code === 'AUTH_REQUIRED') req.log.info(fields, 'authentication required');
      else req.log.warn(fields, 'authentication failed');
    } else req.log.info({ code: body.code, status }, body.message);
    if (status === 401) void reply.header('www-authenticate', 'Bearer');
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const body: ApiError = { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` };
    return reply.status(404).send(body);
  });
}
