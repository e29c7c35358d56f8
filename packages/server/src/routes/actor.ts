import type { FastifyRequest } from 'fastify';
import { LivegraftError } from '@livegraft/protocol';
import type { Actor } from '../fleet/service.ts';

/** The audit identity of the API token behind a request (routes guarded for API tokens only). */
export function actorOf(req: FastifyRequest): Actor {
  const p = req.principal;
  if (p?.kind !== 'admin') throw new LivegraftError('FORBIDDEN', 'this change needs an API token');
  return { id: p.tokenId, name: p.name, role: p.role, ip: req.ip };
}
