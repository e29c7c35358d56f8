import type { FastifyReply } from 'fastify';

/**
 * Browser hardening for dashboard pages and assets only (API answers are
 * JSON for programs and keep their own headers). The CSP allows this origin's
 * scripts, styles and fetches and nothing inline.
 */
export const DASHBOARD_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  'x-permitted-cross-domain-policies': 'none',
};

/** HSTS only means something over TLS; sent there so browsers never fall back to plain HTTP. */
const HSTS = 'max-age=15552000; includeSubDomains';

export function setDashboardHeaders(reply: FastifyReply, tls: boolean): void {
  for (const [k, v] of Object.entries(DASHBOARD_SECURITY_HEADERS)) void reply.header(k, v);
  if (tls) void reply.header('strict-transport-security', HSTS);
}
