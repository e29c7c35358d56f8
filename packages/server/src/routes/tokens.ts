import { Type } from 'typebox';
import {
  AuditQuery,
  LivegraftError,
  RegistrationKeyCreate,
  TokenCreate,
  type AuditEntry,
  type RegistrationKeyCreated,
  type RegistrationKeyRecord,
  type TokenCreated,
  type TokenRecord,
} from '@livegraft/protocol';
import { noStore } from '../answer-headers.ts';
import { guard, hashToken } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { registerTokenExpiryMetric } from '../token-expiry.ts';
import { actorOf } from './actor.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });

/** API tokens, registration keys (both admin only, secrets shown once) and the audit log. */
export function tokenRoutes(app: App, ctx: RouteContext): void {
  const { fleet } = ctx;
  registerTokenExpiryMetric(ctx.metrics.registry, fleet.tokens, ctx.clock);

  app.post(
    '/tokens',
    { schema: { body: TokenCreate }, onRequest: guard(ctx.auth, 'admin') },
    async (req, reply): Promise<TokenCreated> => {
      const actor = actorOf(req);
      const token = ctx.randomToken();
      const rec: TokenRecord = {
        id: ctx.randomId(),
        name: req.body.name,
        role: req.body.role,
        createdAt: ctx.clock().toISOString(),
        createdBy: actor.name,
        revokedAt: null,
        expiresAt:
          req.body.expiresInSec === undefined
            ? null
            : new Date(ctx.clock().getTime() + req.body.expiresInSec * 1000).toISOString(),
      };
      await fleet.tokens.create({ ...rec, tokenHash: hashToken(token) });
      await fleet.record(actor, 'token.create', rec.id, { name: rec.name, role: rec.role });
      noStore(reply);
      void reply.status(201);
      return { ...rec, token };
    },
  );

  app.get('/tokens', { onRequest: guard(ctx.auth, 'admin') }, async (): Promise<TokenRecord[]> => fleet.tokens.list());

  app.post(
    '/tokens/:id/revoke',
    { schema: { params: IdParams }, onRequest: guard(ctx.auth, 'admin') },
    async (req): Promise<{ revoked: true }> => {
      if (!(await fleet.tokens.revoke(req.params.id, ctx.clock()))) {
        throw new LivegraftError('NOT_FOUND', `no live API token with id ${req.params.id}`);
      }
      await fleet.record(actorOf(req), 'token.revoke', req.params.id);
      return { revoked: true };
    },
  );

  app.post(
    '/registration-keys',
    { schema: { body: RegistrationKeyCreate }, onRequest: guard(ctx.auth, 'admin') },
    async (req, reply): Promise<RegistrationKeyCreated> => {
      await fleet.requireFeed(req.body.feed);
      const key = ctx.randomToken();
      const rec: RegistrationKeyRecord = {
        id: ctx.randomId(),
        name: req.body.name,
        feed: req.body.feed,
        tags: req.body.tags ?? [],
        createdAt: ctx.clock().toISOString(),
        revokedAt: null,
      };
      await fleet.registrationKeys.create({ ...rec, keyHash: hashToken(key) });
      await fleet.record(actorOf(req), 'registration-key.create', rec.id, {
        name: rec.name,
        feed: rec.feed,
        tags: rec.tags,
      });
      noStore(reply);
      void reply.status(201);
      return { ...rec, key };
    },
  );

  app.get('/registration-keys', { onRequest: guard(ctx.auth, 'admin') }, async (): Promise<RegistrationKeyRecord[]> =>
    fleet.registrationKeys.list(),
  );

  app.post(
    '/registration-keys/:id/revoke',
    { schema: { params: IdParams }, onRequest: guard(ctx.auth, 'admin') },
    async (req): Promise<{ revoked: true }> => {
      if (!(await fleet.registrationKeys.revoke(req.params.id, ctx.clock()))) {
        throw new LivegraftError('NOT_FOUND', `no live registration key with id ${req.params.id}`);
      }
      await fleet.record(actorOf(req), 'registration-key.revoke', req.params.id);
      return { revoked: true };
    },
  );

  app.get(
    '/audit',
    { schema: { querystring: AuditQuery }, onRequest: guard(ctx.auth, 'viewer') },
    async (req): Promise<AuditEntry[]> => fleet.audit.list(req.query),
  );
}
