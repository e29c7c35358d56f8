import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { LivegraftError, type ApiRole } from '@livegraft/protocol';
import type { HostRepository } from './db/hosts.ts';
import type { ApiTokenRepository } from './db/tokens.ts';

/** Longer bearer values are refused before hashing or touching the database. */
const MAX_TOKEN_CHARS = 512;
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

const RANK: Record<ApiRole, number> = { viewer: 1, operator: 2, admin: 3 };

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
  /** Resolves the request's bearer token to a principal allowed for the role, or throws. */
  require(req: FastifyRequest, role: Role): Promise<Principal>;
}

export function createAuthenticator(
  adminToken: string,
  hosts: HostRepository,
  tokens: ApiTokenRepository,
): Authenticator {
  const adminHash = hashToken(adminToken);

  async function identify(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined || header === '') {
      throw new LivegraftError('AUTH_REQUIRED', 'this endpoint needs an "Authorization: Bearer <token>" header');
    }
    const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header);
    const token = match?.[1];
    if (token === undefined || token.length > MAX_TOKEN_CHARS) {
      throw new LivegraftError('AUTH_INVALID', 'the Authorization header must be "Bearer <token>"');
    }
    const presented = hashToken(token);
    if (sameHash(presented, adminHash)) {
      return { kind: 'admin', role: 'admin', tokenId: BOOTSTRAP_TOKEN_ID, name: 'bootstrap admin' };
    }
    const host = await hosts.findByTokenHash(presented);
    if (host !== undefined && sameHash(presented, host.tokenHash)) return { kind: 'host', hostId: host.id };
    const api = await tokens.findLiveByHash(presented);
    if (api !== undefined && sameHash(presented, api.tokenHash)) {
      return { kind: 'admin', role: api.role, tokenId: api.id, name: api.name };
    }
    throw new LivegraftError('AUTH_INVALID', 'the bearer token is not valid (unknown, revoked or mistyped)');
  }

  return {
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
      if (RANK[who.role] < RANK[needed]) {
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

/** An onRequest hook: runs before the body is read, so anonymous uploads are refused unread. */
export function guard(auth: Authenticator, role: Role): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    req.principal = await auth.require(req, role);
  };
}
