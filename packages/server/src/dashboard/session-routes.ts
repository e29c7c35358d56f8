import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { LivegraftError, type ApiRole } from '@livegraft/protocol';
import type { SessionProbe } from '@livegraft/protocol/dashboard';
import { guard, hashToken, type CookieSessions, type Principal } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { RateLimiter } from '../rate-limit.ts';
import { readCookie, sessionCookie } from './cookies.ts';
import { csrfTokenFor, SESSION_COOKIE, SESSION_TTL_MS, type SessionStore } from './sessions.ts';

/** Sign-in attempts per client IP: a token is 256 random bits, this only keeps the log and database quiet. */
const SIGNIN_BURST = 10;
const SIGNIN_PER_MINUTE = 20;
/** Answers of the authenticator that mean "not signed in" (no credential, an unknown or expired one, a host token). */
const SIGNED_OUT = new Set(['AUTH_REQUIRED', 'AUTH_INVALID', 'FORBIDDEN']);

const SignInBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 512, description: 'an API token (admin, operator or viewer)' }) },
  { additionalProperties: false },
);

/** What GET/POST /session answer: who is signed in, and what the dashboard needs to act for them. */
export interface SessionInfo {
  role: ApiRole;
  name: string;
  tokenId: string;
  /** Send it as x-csrf-token with every change made through the cookie; absent for bearer clients. */
  csrfToken?: string;
  expiresAt?: string;
  /** Hosts that missed two check-ins count as stale. */
  checkinIntervalSec: number;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The authenticator's view of the session store: the cookie's session and whether the CSRF header matches. */
export function cookieSessions(store: SessionStore): CookieSessions {
  return {
    async lookup(req) {
      const id = readCookie(req.headers.cookie, cookieName(req));
      if (id === undefined) return undefined;
      const session = await store.find(id);
      if (session === undefined) return undefined;
      const header = req.headers['x-csrf-token'];
      return { tokenHash: session.tokenHash, csrfOk: typeof header === 'string' && sameText(header, csrfTokenFor(id)) };
    },
  };
}

/** The scheme the client used: with --trust-proxy, what the proxy says it terminated. */
function isTls(req: FastifyRequest): boolean {
  return req.protocol === 'https';
}

/** Over HTTPS the session cookie has the __Host- prefix: browsers then insist on Secure, this host only, and Path=/. */
function cookieName(req: FastifyRequest): string {
  return isTls(req) ? `__Host-${SESSION_COOKIE}` : SESSION_COOKIE;
}

/**
 * `POST /session {token}` signs in with an API token and sets the HttpOnly
 * session cookie; `GET /session` says who is signed in (with the CSRF token);
 * `DELETE /session` signs out. Bearer clients never need these.
 */
export function sessionRoutes(api: App, ctx: RouteContext, store: SessionStore): void {
  const limit = new RateLimiter({ burst: SIGNIN_BURST, perMinute: SIGNIN_PER_MINUTE }).hook();

  api.post('/session', { schema: { body: SignInBody }, onRequest: limit }, async (req, reply): Promise<SessionInfo> => {
    const who = await ctx.auth.identifyToken(req.body.token);
    if (who.kind !== 'admin') {
      throw new LivegraftError('FORBIDDEN', 'sign in with an API token (admin, operator or viewer), not a host token');
    }
    const session = await store.create(hashToken(req.body.token));
    await ctx.fleet.record(
      { id: who.tokenId, name: who.name, role: who.role, ip: req.ip },
      'session.create',
      who.tokenId,
      { expiresAt: session.expiresAt },
    );
    void reply.header(
      'set-cookie',
      sessionCookie(cookieName(req), session.id, { maxAgeSec: SESSION_TTL_MS / 1000, secure: isTls(req) }),
    );
    void reply.header('cache-control', 'no-store');
    return {
      role: who.role,
      name: who.name,
      tokenId: who.tokenId,
      csrfToken: csrfTokenFor(session.id),
      expiresAt: session.expiresAt,
      checkinIntervalSec: ctx.config.checkinIntervalSec,
    };
  });

  /** Who the request is signed in as (with the session's CSRF token when it came with the cookie). */
  const current = async (req: FastifyRequest, who: Principal): Promise<SessionInfo> => {
    if (who.kind !== 'admin') throw new LivegraftError('FORBIDDEN', 'sessions are for API tokens');
    const info: SessionInfo = {
      role: who.role,
      name: who.name,
      tokenId: who.tokenId,
      checkinIntervalSec: ctx.config.checkinIntervalSec,
    };
    const id = req.headers.authorization === undefined ? readCookie(req.headers.cookie, cookieName(req)) : undefined;
    const session = id === undefined ? undefined : await store.find(id);
    if (id === undefined || session === undefined) return info;
    return { ...info, csrfToken: csrfTokenFor(id), expiresAt: session.expiresAt };
  };

  api.get('/session', { onRequest: guard(ctx.auth, 'viewer') }, async (req, reply): Promise<SessionInfo> => {
    const who = req.principal;
    if (who === null) throw new LivegraftError('FORBIDDEN', 'sessions are for API tokens');
    void reply.header('cache-control', 'no-store');
    return current(req, who);
  });

  // The dashboard asks this at every page load: a browser that is not signed in gets
  // { session: null }, not a 401 that every browser console would show as an error.
  api.get('/dashboard/session', async (req, reply): Promise<SessionProbe> => {
    void reply.header('cache-control', 'no-store');
    let who: Principal;
    try {
      who = await ctx.auth.require(req, 'viewer');
    } catch (err) {
      if (err instanceof LivegraftError && SIGNED_OUT.has(err.code)) return { session: null };
      throw err;
    }
    return { session: await current(req, who) };
  });

  api.delete('/session', async (req, reply) => {
    const id = readCookie(req.headers.cookie, cookieName(req));
    if (id !== undefined && (await store.find(id)) !== undefined) {
      const header = req.headers['x-csrf-token'];
      if (typeof header !== 'string' || !sameText(header, csrfTokenFor(id))) {
        throw new LivegraftError('CSRF_INVALID', 'signing out needs the x-csrf-token header of the session');
      }
      await store.delete(id);
    }
    void reply.header('set-cookie', sessionCookie(cookieName(req), '', { maxAgeSec: 0, secure: isTls(req) }));
    return reply.status(204).send();
  });
}
