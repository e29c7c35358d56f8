import { Type, type Static } from 'typebox';
import { DesiredLevel } from './delivery.ts';
import { BlockingTask, HostTags, KernelEvent, PatchState, PinRecord } from './fleet.ts';
import { KernelId, KernelIdentity } from './kernel.ts';
import { LevelFix } from './level-fixes.ts';
import { ManifestSkippedFix, PatchManifest, Sha256 } from './manifest.ts';
import { UserspaceDesired, UserspaceLibraryStatus } from './userspace.ts';
import { validator } from './validate.ts';

export const API_PREFIX = '/api/v1';

/** Error body of every non-2xx API answer. */
export const ApiError = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Unknown()),
});
export type ApiError = Static<typeof ApiError>;

export const HostState = Type.Union([
  Type.Literal('patched'),
  Type.Literal('unpatched'),
  Type.Literal('error'),
  Type.Literal('unsupported'),
  Type.Literal('needs-attention'),
]);
export type HostState = Static<typeof HostState>;

export const ApplyResult = Type.Object(
  {
    action: Type.Union([Type.Literal('apply'), Type.Literal('rollback'), Type.Literal('unload'), Type.Literal('boot')]),
    fromLevel: Type.Integer({ minimum: 0 }),
    toLevel: Type.Integer({ minimum: 0 }),
    ok: Type.Boolean(),
    code: Type.Optional(Type.String({ maxLength: 64 })),
    message: Type.Optional(Type.String({ maxLength: 4000 })),
    durationMs: Type.Number({ minimum: 0 }),
    at: Type.String({ format: 'date-time' }),
    /** Optional per-phase timings (download, verify, load, transition...). */
    phasesMs: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' }), Type.Number({ minimum: 0 }), {
        maxProperties: 16,
      }),
    ),
  },
  { additionalProperties: false },
);
export type ApplyResult = Static<typeof ApplyResult>;

export const EnrollRequest = Type.Object(
  {
    registrationKey: Type.String({ minLength: 8, maxLength: 256 }),
    // Letters, digits, dot, dash and underscore: it is shown in terminals and pages.
    hostname: Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    kernel: KernelIdentity,
    agentVersion: Type.String({ maxLength: 64 }),
  },
  { additionalProperties: false },
);
export type EnrollRequest = Static<typeof EnrollRequest>;
export const EnrollResponse = Type.Object({
  hostId: Type.String(),
  token: Type.String(),
  /** The server's current TUF root (N.root.json), for the agent to pin on enrolment. */
  root: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type EnrollResponse = Static<typeof EnrollResponse>;

export const CheckinRequest = Type.Object(
  {
    kernel: KernelIdentity,
    appliedLevel: Type.Integer({ minimum: 0 }),
    state: HostState,
    lastError: Type.Optional(Type.String({ maxLength: 4000 })),
    lastApply: Type.Optional(ApplyResult),
    agentVersion: Type.String({ maxLength: 64 }),
    uptimeSec: Type.Number({ minimum: 0 }),
    // Fleet reports; all optional so older agents keep working.
    tags: Type.Optional(HostTags),
    blockingTasks: Type.Optional(Type.Array(BlockingTask, { maxItems: 64 })),
    patchState: Type.Optional(PatchState),
    /** Kernel warnings/oopses seen since the previous check-in; one after an apply halts that level's rollout. */
    kernelEvents: Type.Optional(Type.Array(KernelEvent, { maxItems: 100 })),
    /** User-space libraries with live patches: per build-id, the level applied and the processes. */
    userspace: Type.Optional(Type.Array(UserspaceLibraryStatus, { maxItems: 256 })),
    /**
     * How far this host's clock was from the server's Date header at the previous
     * exchange, in seconds (positive: ahead); 0 within a minute. Bounded to ±100 years.
     */
    clockSkewSec: Type.Optional(Type.Integer({ minimum: -3_155_760_000, maximum: 3_155_760_000 })),
  },
  { additionalProperties: false },
);
export type CheckinRequest = Static<typeof CheckinRequest>;

export const LatestResponse = Type.Object({
  kernelId: KernelId,
  level: Type.Integer({ minimum: 1 }),
  manifest: PatchManifest,
});
export type LatestResponse = Static<typeof LatestResponse>;

export const CheckinResponse = Type.Object({
  kernelSupported: Type.Boolean(),
  /** The manifest of the desired level (null when none, or when the desired level is 0). */
  latest: Type.Union([LatestResponse, Type.Null()]),
  checkinIntervalSec: Type.Integer({ minimum: 1 }),
  desired: Type.Optional(DesiredLevel),
  /** The user-space level wanted per library build-id that has published levels or a pin. */
  userspace: Type.Optional(Type.Array(UserspaceDesired, { maxItems: 256 })),
});
export type CheckinResponse = Static<typeof CheckinResponse>;

export const PublishRequest = Type.Object(
  { manifest: PatchManifest, publish: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export type PublishRequest = Static<typeof PublishRequest>;

export const PatchRecord = Type.Object({
  kernelId: KernelId,
  level: Type.Integer(),
  name: Type.String(),
  release: Type.String(),
  cves: Type.Array(Type.String()),
  fixIds: Type.Array(Type.String()),
  /** The level's fixes: kind (built from upstream patches or hand-written C) and upstream commits. */
  fixes: Type.Array(LevelFix),
  /** Fixes its build was asked for but left out, with the reason (e.g. already fixed in this kernel build). */
  skipped: Type.Array(ManifestSkippedFix),
  moduleSha256: Sha256,
  size: Type.Integer(),
  published: Type.Boolean(),
  createdAt: Type.String(),
  publishedAt: Type.Union([Type.String(), Type.Null()]),
});
export type PatchRecord = Static<typeof PatchRecord>;

/** The level a host runs, as the host detail shows it (null at level 0 or a level the server never stored). */
export const AppliedLevel = Type.Object({
  level: Type.Integer({ minimum: 1 }),
  name: Type.String(),
  published: Type.Boolean(),
  /** The CVEs this level fixes live. */
  cves: Type.Array(Type.String()),
  fixes: Type.Array(LevelFix),
  skipped: Type.Array(ManifestSkippedFix),
});
export type AppliedLevel = Static<typeof AppliedLevel>;

export const HostRecord = Type.Object({
  id: Type.String(),
  hostname: Type.String(),
  kernelId: KernelId,
  release: Type.String(),
  effectiveRelease: Type.String(),
  appliedLevel: Type.Integer(),
  state: HostState,
  lastError: Type.Union([Type.String(), Type.Null()]),
  lastApply: Type.Union([ApplyResult, Type.Null()]),
  agentVersion: Type.String(),
  enrolledAt: Type.String(),
  lastCheckinAt: Type.Union([Type.String(), Type.Null()]),
  // Fleet fields (servers without fleet support leave them out).
  feed: Type.Optional(Type.String()),
  tags: Type.Optional(Type.Array(Type.String())),
  autoUpdate: Type.Optional(Type.Boolean()),
  /** Fix ids this host is never offered (see HostUpdate.ignore). */
  ignore: Type.Optional(Type.Array(Type.String())),
  pins: Type.Optional(Type.Array(PinRecord)),
  desired: Type.Optional(Type.Union([DesiredLevel, Type.Null()])),
  revokedAt: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  uptimeSec: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  /** The host's clock minus the server's at its last report, in seconds; null before its agent reported one. */
  clockSkewSec: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  blockingTasks: Type.Optional(Type.Array(BlockingTask)),
  patchState: Type.Optional(Type.Union([PatchState, Type.Null()])),
  kernelEvents: Type.Optional(Type.Array(KernelEvent)),
  /** GET /hosts/:id only: the fixes of the applied level. */
  applied: Type.Optional(Type.Union([AppliedLevel, Type.Null()])),
});
export type HostRecord = Static<typeof HostRecord>;

export const enrollRequestValidator = validator(EnrollRequest, 'enrol request');
export const checkinRequestValidator = validator(CheckinRequest, 'check-in');
export const latestResponseValidator = validator(LatestResponse, 'latest-patch answer');
export const checkinResponseValidator = validator(CheckinResponse, 'check-in answer');
export const enrollResponseValidator = validator(EnrollResponse, 'enrol answer');
