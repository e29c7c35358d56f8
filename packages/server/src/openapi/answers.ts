import { Type } from 'typebox';
import { ApiRole, FeedName, KernelId, PatchLevel } from '@livegraft/protocol';

/**
 * Answer schemas of routes whose answer types are plain TypeScript
 * interfaces, written out for the OpenAPI document. Each names the type it
 * describes: a field added there belongs here too.
 */

/** `{ok: true}`: the change was made. */
export const Ok = Type.Object({ ok: Type.Literal(true) });
/** `{revoked: true}` (routes/tokens.ts, routes/fleet-hosts.ts). */
export const Revoked = Type.Object({ revoked: Type.Literal(true) });
/** `{removed: n}`: pins removed (routes/pins.ts). */
export const Removed = Type.Object({ removed: Type.Integer({ minimum: 0 }) });

/** ModuleUploadResponse (routes/modules.ts). */
export const ModuleUpload = Type.Object({
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  size: Type.Integer({ minimum: 0 }),
  created: Type.Boolean({ description: 'false when the module was stored already (uploads are idempotent)' }),
});

/** `{promoted: Promotion[]}` (fleet/promotion.ts). */
export const Promoted = Type.Object({
  promoted: Type.Array(
    Type.Object({
      from: FeedName,
      to: FeedName,
      kernelId: KernelId,
      level: PatchLevel,
      previous: Type.Integer({ minimum: 0, description: 'the level the target feed had before' }),
    }),
  ),
});

/** SessionInfo (dashboard/session-routes.ts). */
export const SessionInfo = Type.Object({
  role: ApiRole,
  name: Type.String(),
  tokenId: Type.String(),
  csrfToken: Type.Optional(
    Type.String({ description: 'send it as x-csrf-token with every change made through the cookie' }),
  ),
  expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  checkinIntervalSec: Type.Integer({ minimum: 1 }),
});

/** VexDocument (compliance/vex.ts): an OpenVEX v0.2.0 document. */
export const VexDocument = Type.Object(
  {
    '@context': Type.Literal('https://openvex.dev/ns/v0.2.0'),
    '@id': Type.String(),
    author: Type.String(),
    role: Type.String(),
    timestamp: Type.String({ format: 'date-time' }),
    last_updated: Type.String({ format: 'date-time' }),
    version: Type.Integer({ minimum: 1 }),
    tooling: Type.String(),
    statements: Type.Array(
      Type.Object({
        vulnerability: Type.Object({ name: Type.String() }),
        products: Type.Array(Type.Object({ '@id': Type.String() }, { additionalProperties: true })),
        status: Type.Union([
          Type.Literal('not_affected'),
          Type.Literal('affected'),
          Type.Literal('fixed'),
          Type.Literal('under_investigation'),
        ]),
        justification: Type.Optional(Type.Literal('vulnerable_code_not_present')),
        impact_statement: Type.Optional(Type.String()),
        status_notes: Type.Optional(Type.String()),
        action_statement: Type.Optional(Type.String()),
      }),
    ),
  },
  { description: 'an OpenVEX document (https://openvex.dev/ns/v0.2.0)' },
);

/** GET /healthz (routes/health.ts). */
export const Health = Type.Object({ ok: Type.Literal(true) });
