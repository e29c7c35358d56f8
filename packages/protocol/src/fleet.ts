import { Type, type Static, type TSchema } from 'typebox';
import { DesiredLevel } from './delivery.ts';
import { FixId } from './fix.ts';
import { KernelId } from './kernel.ts';
import { validator } from './validate.ts';

/**
 * Fleet rollout: feeds (channels) holding a patch level per kernel build,
 * promotion rules between feeds, pins, rollbacks, API tokens with roles,
 * the audit log and the push channel.
 */

export const FeedName = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'feed (channel) name' });
export const HostTag = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,63}$' });
export const MAX_TAGS = 32;
export const HostTags = Type.Array(HostTag, { maxItems: MAX_TAGS, uniqueItems: true });

export const Weekday = Type.Union([
  Type.Literal('mon'),
  Type.Literal('tue'),
  Type.Literal('wed'),
  Type.Literal('thu'),
  Type.Literal('fri'),
  Type.Literal('sat'),
  Type.Literal('sun'),
]);
export type Weekday = Static<typeof Weekday>;
const ClockTime = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'HH:MM, UTC' });

/** A weekly window, UTC. `end` before `start` runs past midnight into the next day. */
export const MaintenanceWindow = Type.Object(
  { days: Type.Array(Weekday, { minItems: 1, maxItems: 7, uniqueItems: true }), start: ClockTime, end: ClockTime },
  { additionalProperties: false },
);
export type MaintenanceWindow = Static<typeof MaintenanceWindow>;

/**
 * When a level moves from a feed to the feed it promotes to. Every given
 * condition must hold; a rule with none of them never promotes on its own.
 */
export const PromotionRule = Type.Object(
  {
    afterSec: Type.Optional(Type.Integer({ minimum: 0, maximum: 366 * 86400, description: 'delay in the feed' })),
    minHosts: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'hosts that applied it' })),
    minPercent: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: '% of the feed that applied it' })),
    healthySec: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 366 * 86400, description: 'how long the host condition held, no failure' }),
    ),
  },
  { additionalProperties: false },
);
export type PromotionRule = Static<typeof PromotionRule>;

function Nullable<T extends TSchema>(t: T) {
  return Type.Union([t, Type.Null()]);
}

export const FeedCreate = Type.Object(
  {
    name: FeedName,
    description: Type.Optional(Type.String({ maxLength: 500 })),
    promotesTo: Type.Optional(Nullable(FeedName)),
    autoPublish: Type.Optional(Type.Boolean({ description: 'a newly published level lands here at once' })),
    promotion: Type.Optional(Nullable(PromotionRule)),
    windows: Type.Optional(Type.Array(MaintenanceWindow, { maxItems: 28 })),
    /** Only levels with a passed validation (or an operator's recorded override) enter; default true except for `canary`. */
    requireValidated: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FeedCreate = Static<typeof FeedCreate>;

export const FeedUpdate = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 500 })),
    promotesTo: Type.Optional(Nullable(FeedName)),
    autoPublish: Type.Optional(Type.Boolean()),
    promotion: Type.Optional(Nullable(PromotionRule)),
    windows: Type.Optional(Type.Array(MaintenanceWindow, { maxItems: 28 })),
    requireValidated: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FeedUpdate = Static<typeof FeedUpdate>;

export const LevelSource = Type.Union([
  Type.Literal('publish'),
  Type.Literal('promotion'),
  Type.Literal('rollback'),
  Type.Literal('manual'),
]);
export type LevelSource = Static<typeof LevelSource>;

export const FeedLevel = Type.Object({
  kernelId: KernelId,
  level: Type.Integer({ minimum: 0 }),
  previousLevel: Type.Integer({ minimum: 0 }),
  source: LevelSource,
  allowDowngrade: Type.Boolean(),
  setAt: Type.String(),
  /** Set while the level is halted (a failure was reported); hosts not on it yet stay on previousLevel. */
  haltedAt: Nullable(Type.String()),
  haltReason: Nullable(Type.String()),
  healthySince: Nullable(Type.String()),
});
export type FeedLevel = Static<typeof FeedLevel>;

export const PinScope = Type.Union([Type.Literal('feed'), Type.Literal('host'), Type.Literal('tag')]);
export type PinScope = Static<typeof PinScope>;

/** Either a level (for one kernel build) or a cut-off date ("nothing published after"). */
export const PinRequest = Type.Object(
  {
    kernelId: Type.Optional(KernelId),
    level: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    cutoff: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
export type PinRequest = Static<typeof PinRequest>;

export const PinRecord = Type.Object({
  scope: PinScope,
  subject: Type.String(),
  kernelId: Nullable(KernelId),
  level: Nullable(Type.Integer()),
  cutoff: Nullable(Type.String()),
  allowDowngrade: Type.Boolean(),
  reason: Type.Union([Type.Literal('pin'), Type.Literal('rollback')]),
  createdAt: Type.String(),
  createdBy: Type.String(),
});
export type PinRecord = Static<typeof PinRecord>;

export const FeedRecord = Type.Object({
  name: FeedName,
  description: Type.String(),
  promotesTo: Nullable(FeedName),
  autoPublish: Type.Boolean(),
  promotion: Nullable(PromotionRule),
  windows: Type.Array(MaintenanceWindow),
  /** Levels enter (publish, promotion, set-level) only with a passed validation or a recorded override. */
  requireValidated: Type.Boolean(),
  levels: Type.Array(FeedLevel),
  pins: Type.Array(PinRecord),
  hostCount: Type.Integer(),
  createdAt: Type.String(),
});
export type FeedRecord = Static<typeof FeedRecord>;

export const SetLevelRequest = Type.Object(
  { level: Type.Integer({ minimum: 0, maximum: 1_000_000 }), allowDowngrade: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export type SetLevelRequest = Static<typeof SetLevelRequest>;

export const PromoteRequest = Type.Object(
  { kernelId: Type.Optional(KernelId), to: Type.Optional(FeedName) },
  { additionalProperties: false },
);
export type PromoteRequest = Static<typeof PromoteRequest>;

/** Moves a feed, or every host with a tag, back to a level; agents downgrade live. */
export const RollbackRequest = Type.Object(
  {
    feed: Type.Optional(FeedName),
    tag: Type.Optional(HostTag),
    kernelId: KernelId,
    level: Type.Integer({ minimum: 0, maximum: 1_000_000, description: '0 = unload the patch' }),
  },
  { additionalProperties: false },
);
export type RollbackRequest = Static<typeof RollbackRequest>;

/** Fix ids one host may ignore at most. */
export const MAX_IGNORED_FIXES = 256;
/** A host's ignore-list: it is not offered a level whose manifest holds any of these fixes. */
export const IgnoredFixes = Type.Array(FixId, { maxItems: MAX_IGNORED_FIXES, uniqueItems: true });

export const HostUpdate = Type.Object(
  {
    feed: Type.Optional(FeedName),
    autoUpdate: Type.Optional(Type.Boolean()),
    tags: Type.Optional(HostTags),
    /** Replaces the host's ignore-list. */
    ignore: Type.Optional(IgnoredFixes),
  },
  { additionalProperties: false },
);
export type HostUpdate = Static<typeof HostUpdate>;

export const HaltRecord = Type.Object({
  kernelId: KernelId,
  level: Type.Integer(),
  reason: Type.String(),
  hostId: Nullable(Type.String()),
  at: Type.String(),
});
export type HaltRecord = Static<typeof HaltRecord>;

export const ApiRole = Type.Union([
  Type.Literal('admin'),
  Type.Literal('operator'),
  Type.Literal('viewer'),
  /** Build workers: may only claim jobs, fetch their inputs and send their results. */
  Type.Literal('worker'),
]);
export type ApiRole = Static<typeof ApiRole>;
const TokenName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[\\x20-\\x7e]+$' });

/** `expiresInSec` (optional): the token stops working that long after creation. */
export const TokenCreate = Type.Object(
  {
    name: TokenName,
    role: ApiRole,
    expiresInSec: Type.Optional(Type.Integer({ minimum: 60, maximum: 10 * 366 * 86400 })),
  },
  { additionalProperties: false },
);
export type TokenCreate = Static<typeof TokenCreate>;
export const TokenRecord = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: ApiRole,
  createdAt: Type.String(),
  createdBy: Type.String(),
  revokedAt: Nullable(Type.String()),
  /** When the token stops working; null or absent: never. */
  expiresAt: Type.Optional(Nullable(Type.String())),
});
export type TokenRecord = Static<typeof TokenRecord>;
/** The secret is in this answer only; the server keeps its hash. */
export const TokenCreated = Type.Intersect([TokenRecord, Type.Object({ token: Type.String() })]);
export type TokenCreated = Static<typeof TokenCreated>;

export const RegistrationKeyCreate = Type.Object(
  { name: TokenName, feed: FeedName, tags: Type.Optional(HostTags) },
  { additionalProperties: false },
);
export type RegistrationKeyCreate = Static<typeof RegistrationKeyCreate>;
export const RegistrationKeyRecord = Type.Object({
  id: Type.String(),
  name: Type.String(),
  feed: FeedName,
  tags: Type.Array(Type.String()),
  createdAt: Type.String(),
  revokedAt: Nullable(Type.String()),
});
export type RegistrationKeyRecord = Static<typeof RegistrationKeyRecord>;
export const RegistrationKeyCreated = Type.Intersect([RegistrationKeyRecord, Type.Object({ key: Type.String() })]);
export type RegistrationKeyCreated = Static<typeof RegistrationKeyCreated>;

export const AuditEntry = Type.Object({
  id: Type.String(),
  at: Type.String(),
  actor: Type.Object({ id: Type.String(), name: Type.String(), role: Type.String() }),
  ip: Nullable(Type.String()),
  action: Type.String(),
  target: Type.String(),
  details: Type.Unknown(),
});
export type AuditEntry = Static<typeof AuditEntry>;

export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    action: Type.Optional(Type.String({ maxLength: 64 })),
    since: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

/** A kernel warning, oops or similar the agent saw in the kernel log. */
export const KernelEvent = Type.Object(
  {
    at: Type.String({ format: 'date-time' }),
    kind: Type.Union([
      Type.Literal('warn'),
      Type.Literal('oops'),
      Type.Literal('bug'),
      Type.Literal('panic'),
      Type.Literal('taint'),
      Type.Literal('livepatch'),
    ]),
    message: Type.String({ maxLength: 4000 }),
  },
  { additionalProperties: false },
);
export type KernelEvent = Static<typeof KernelEvent>;

/** A task keeping a livepatch transition from finishing. */
export const BlockingTask = Type.Object(
  {
    pid: Type.Integer({ minimum: 0 }),
    comm: Type.String({ maxLength: 64 }),
    stack: Type.Optional(Type.String({ maxLength: 4000 })),
  },
  { additionalProperties: false },
);
export type BlockingTask = Static<typeof BlockingTask>;

/** What the kernel's livepatch state looked like at check-in. */
export const PatchState = Type.Object(
  {
    module: Type.Optional(Type.String({ maxLength: 64 })),
    enabled: Type.Optional(Type.Boolean()),
    transition: Type.Optional(Type.Boolean()),
    /** Seconds the current transition has been running. */
    transitionSec: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type PatchState = Static<typeof PatchState>;

/** SSE `event: desired` data: the host's wanted level changed; act after spreadMs. */
export const DesiredEvent = Type.Object({
  kernelId: KernelId,
  desired: Type.Union([DesiredLevel, Type.Null()]),
  spreadMs: Type.Integer({ minimum: 0 }),
  at: Type.String(),
});
export type DesiredEvent = Static<typeof DesiredEvent>;
export const EVENTS_STREAM_PATH = '/events/stream';

export const feedCreateValidator = validator(FeedCreate, 'feed');
export const desiredEventValidator = validator(DesiredEvent, 'desired event');
