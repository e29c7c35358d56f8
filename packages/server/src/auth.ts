import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { LivegraftError } from '@livegraft/protocol';
import type { HostRepository } from './db/hosts.ts';

/** Longer bearer values are refused before hashing or touching the database. */
const MAX_TOKEN_CHARS = 512;

export type Principal = { kind: 'admin' } | { kind: 'host'; hostId: string };
export type Role = 'admin' | 'host' | 'host-or-admin';

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

export function createAuthenticator(adminToken: string, hosts: HostRepository): Authenticator {
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
    if (sameHash(presented, adminHash)) return { kind: 'admin' };
    const host = await hosts.findByTokenHash(presented);
    if (host !== undefined && sameHash(presented, host.tokenHash)) return { kind: 'host', hostId: host.id };
    throw new LivegraftError('AUTH_INVALID', 'the bearer token is not valid (unknown, revoked or mistyped)');
  }

  return {
    async require(req, role) {
      const who = await identify(req);
      if (role === 'admin' && who.kind !== 'admin') {
        throw new LivegraftError('FORBIDDEN', 'this endpoint needs the admin token; a host token was given');
      }
      if (role === 'host' && who.kind !== 'host') {
        throw new LivegraftError(
          'FORBIDDEN',
          'this endpoint needs a host token (from enrolment); the admin token was given',
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
