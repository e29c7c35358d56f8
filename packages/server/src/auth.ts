import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { LivegraftError, type ApiRole } from '@livegraft/protocol';
import type { HostRepository } from './db/hosts.ts';
import type { ApiTokenRepository } from './db/tokens.ts';
import { BoundedMap } from './bounded-map.ts';
import { isExpired } from './token-expiry.ts';

/** Longer bearer values are refused before hashing or touching the database. */
const MAX_TOKEN_CHARS = 512;
/**
 * How long a host token's lookup is reused. Revocation through the API
 * (any node's, by the fleet bus) forgets it at once; the age limit bounds a
 * revocation made straight in the database. The check-in and push routes
 * re-read the host row anyway, so a stale entry never serves a revoked host there.
 */
export const HOST_TOKEN_CACHE_MS = 30_000;
/** Host token lookups kept; past this the oldest are dropped. */
export const HOST_TOKEN_CACHE_MAX = 200_000;
/** The admin-token file's principal: always an admin, never revocable through the API. */
export const BOOTSTRAP_TOKEN_ID = 'bootstrap';

/**
 * `admin` is an API (admin-side) token of any role: admin, operator (rollouts)
 * or viewer (read-only). `host` is an enrolled host's token.
 */
export type Principal =
  { kind: 'admin'; role: ApiRole; tokenId: string; name: string } | { kind: 'host'; hostId: string };

/**
 * What a route needs: an API token of at least that role, a host token, or
 * either. `host-or-admin` is the older name of `host-or-viewer`.
 */
export type Role = ApiRole | 'host' | 'host-or-viewer' | 'host-or-admin';

// A worker token ranks below viewer: it passes no role guard, only the job routes' own check.
const RANK: Record<ApiRole, number> = { worker: 0, viewer: 1, operator: 2, admin: 3 };

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Equal-length hex digests compared without leaking where they differ. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface Authenticator {
  /** Resolves the request's bearer token (or dashboard session) to a principal allowed for the role, or throws. */
  require(req: FastifyRequest, role: Role): Promise<Principal>;
  /** The principal of a token given in a body (dashboard sign-in), or throws AUTH_INVALID. */
  identifyToken(token: string): Promise<Principal>;
  /** Drops cached lookups of these hosts' tokens (they were revoked). */
  forgetHosts(hostIds: readonly string[]): void;
}

/** Host token hash -> host id, for HOST_TOKEN_CACHE_MS, in insertion (= age) order. */
class HostTokenCache {
  readonly #now: () => number;
  readonly #byHash = new BoundedMap<string, { hostId: string; at: number }>(HOST_TOKEN_CACHE_MAX);

  constructor(now: () => number) {
    this.#now = now;
  }

  get(hash: string): string | undefined {
    const e = this.#byHash.get(hash);
    if (e === undefined) return undefined;
    if (this.#now() - e.at < HOST_TOKEN_CACHE_MS) return e.hostId;
    this.#byHash.delete(hash);
    return undefined;
  }

  set(hash: string, hostId: string): void {
    this.#byHash.set(hash, { hostId, at: this.#now() });
  }

  forget(hostIds: readonly string[]): void {
    const gone = new Set(hostIds);
    for (const [hash, e] of this.#byHash) if (gone.has(e.hostId)) this.#byHash.delete(hash);
  }
}

/** The dashboard's cookie sessions, as the authenticator sees them. */
export interface CookieSessions {
  /** The session behind the request's cookie: the API token hash it signed in with, and whether the CSRF header matches. */
  lookup(req: FastifyRequest): Promise<{ tokenHash: string; csrfOk: boolean } | undefined>;
}

/** Methods a cross-site page could make a browser send are exactly the others; these change nothing. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function createAuthenticator(
  adminToken: string,
  hosts: HostRepository,
  tokens: ApiTokenRepository,
  sessions?: CookieSessions,
  now: () => number = Date.now,
): Authenticator {
  const adminHash = hashToken(adminToken);
  const hostCache = new HostTokenCache(now);

  async function byHash(presented: string): Promise<Principal | undefined> {
    if (sameHash(presented, adminHash)) {
      return { kind: 'admin', role: 'admin', tokenId: BOOTSTRAP_TOKEN_ID, name: 'bootstrap admin' };
    }
    // Only ever filled from a constant-time match below, keyed by the full digest.
    const cached = hostCache.get(presented);
    if (cached !== undefined) return { kind: 'host', hostId: cached };
    const host = await hosts.findByTokenHash(presented);
    if (host !== undefined && sameHash(presented, host.tokenHash)) {
      hostCache.set(presented, host.id);
      return { kind: 'host', hostId: host.id };
    }
    const api = await tokens.findLiveByHash(presented);
    if (api !== undefined && sameHash(presented, api.tokenHash)) {
      if (isExpired(api.expiresAt, new Date(now()))) {
        throw new LivegraftError(
          'AUTH_INVALID',
          `API token "${api.name}" expired at ${api.expiresAt}; create a new one`,
        );
      }
      return { kind: 'admin', role: api.role, tokenId: api.id, name: api.name };
    }
    return undefined;
  }

  async function byToken(token: string): Promise<Principal> {
    if (token.length > MAX_TOKEN_CHARS) throw new LivegraftError('AUTH_INVALID', 'the token is too long to be one');
    const who = await byHash(hashToken(token));
    if (who === undefined) {
      throw new LivegraftError('AUTH_INVALID', 'the bearer token is not valid (unknown, revoked or mistyped)');
    }
    return who;
  }

  async function bySession(req: FastifyRequest): Promise<Principal | undefined> {
    const session = await sessions?.lookup(req);
    if (session === undefined) return undefined;
    if (!SAFE_METHODS.has(req.method) && !session.csrfOk) {
      throw new LivegraftError(
        'CSRF_INVALID',
        'a change made with the session cookie needs the x-csrf-token header (its value comes with GET /api/v1/session)',
      );
    }
    const who = await byHash(session.tokenHash);
    // Sign-in takes API tokens only; a revoked token ends its sessions here.
    if (who?.kind !== 'admin') {
      throw new LivegraftError('AUTH_INVALID', 'the token this session signed in with was revoked; sign in again');
    }
    return who;
  }

  async function identify(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined || header === '') {
      const who = await bySession(req);
      if (who !== undefined) return who;
      throw new LivegraftError('AUTH_REQUIRED', 'this endpoint needs an "Authorization: Bearer <token>" header');
    }
    const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header);
    const token = match?.[1];
    if (token === undefined || token.length > MAX_TOKEN_CHARS) {
      throw new LivegraftError('AUTH_INVALID', 'the Authorization header must be "Bearer <token>"');
    }
    return byToken(token);
  }

  return {
    identifyToken: byToken,
    forgetHosts: (ids) => hostCache.forget(ids),
    async require(req, role) {
      const who = await identify(req);
      if (role === 'host') {
        if (who.kind !== 'host') {
          throw new LivegraftError(
            'FORBIDDEN',
            'this endpoint needs a host token (from enrolment); an API token was given',
          );
        }
        return who;
      }
      if (who.kind === 'host') {
        if (role === 'host-or-viewer' || role === 'host-or-admin') return who;
        throw new LivegraftError(
          'FORBIDDEN',
          `this endpoint needs an API token with the ${role} role; a host token was given`,
        );
      }
      const needed: ApiRole = role === 'host-or-viewer' || role === 'host-or-admin' ? 'viewer' : role;
      // Workers hold a role of their own: only routes that ask for exactly it let them in, and they reach nothing else.
      if ((needed === 'worker') !== (who.role === 'worker') || RANK[who.role] < RANK[needed]) {
        throw new LivegraftError(
          'FORBIDDEN',
          `this endpoint needs the ${needed} role; token "${who.name}" has the ${who.role} role`,
        );
      }
      return who;
    },
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the route's auth hook; null on routes without one. */
    principal: Principal | null;
  }
}

/** The role each guard hook checks: the OpenAPI document states a route's security from it. */
const GUARD_ROLES = new WeakMap<object, Role>();

/** The role a route's onRequest hook (or one of its hooks) checks; undefined when no guard authenticates it. */
export function guardRoleOf(onRequest: unknown): Role | undefined {
  const hooks: unknown[] = Array.isArray(onRequest) ? onRequest : [onRequest];
  for (const h of hooks) {
    const role = typeof h === 'function' ? GUARD_ROLES.get(h) : undefined;
    if (role !== undefined) return role;
  }
  return undefined;
}

/** An onRequest hook: runs before the body is read, so anonymous uploads are refused unread. */
export function guard(auth: Authenticator, role: Role): (req: FastifyRequest) => Promise<void> {
  const hook = async (req: FastifyRequest): Promise<void> => {
    req.principal = await auth.require(req, role);
  };
  GUARD_ROLES.set(hook, role);
  return hook;
}
