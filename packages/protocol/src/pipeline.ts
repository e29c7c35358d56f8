import { Type, type Static, type TSchema } from 'typebox';
import { CveId, FixId, FixSpec, KernelVersion } from './fix.ts';
import { KernelId } from './kernel.ts';
import { PatchLevel, PatchManifest, Sha256 } from './manifest.ts';
import { validator } from './validate.ts';

/**
 * The build pipeline: a fix is submitted once, planned per kernel build the
 * fleet runs, built and validated by workers (one job per fix and kernel
 * build), and released as the next cumulative level of that build.
 */

function Nullable<T extends TSchema>(t: T) {
  return Type.Union([t, Type.Null()]);
}

/** Bounds of a submitted fix directory. */
export const MAX_FIX_FILES = 64;
export const MAX_FIX_FILE_BYTES = 1024 * 1024;
export const MAX_FIX_BYTES = 4 * 1024 * 1024;
/** Bounds of what a worker sends back with a job's result. */
export const MAX_BUILD_LOG_BYTES = 1024 * 1024;
export const MAX_CONSOLE_LOG_BYTES = 512 * 1024;
export const MAX_TRIGGER_OUTPUT_BYTES = 16 * 1024;

/** A file of a fix directory other than fix.json: a patch, a C source, a header or a trigger. */
export const FixFileName = Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$' });
export const FixFile = Type.Object(
  {
    name: FixFileName,
    /** The file's bytes, base64. */
    content: Type.String({ maxLength: Math.ceil(MAX_FIX_FILE_BYTES / 3) * 4 }),
  },
  { additionalProperties: false },
);
export type FixFile = Static<typeof FixFile>;

/** A fix directory as it travels: fix.json parsed, every other file beside it. */
export const FixBundle = Type.Object(
  {
    spec: FixSpec,
    files: Type.Array(FixFile, { maxItems: MAX_FIX_FILES }),
  },
  { additionalProperties: false },
);
export type FixBundle = Static<typeof FixBundle>;
export const fixBundleValidator = validator(FixBundle, 'fix bundle');

/**
 * Where one submitted fix stands on one kernel build.
 * - `to-build`: a job is queued or running;
 * - `already-fixed`: the build carries the fix (`version`, or found in its source);
 * - `not-affected`: the code is not built in this kernel's config;
 * - `not-live-patchable`: the builder refused it (`reason`);
 * - `failed`: the build failed (`reason`, the builder's error) after its retries;
 * - `validation-failed`: built, but the VM validation failed; the level is halted;
 * - `released`: built, validated and published as `level`;
 * - `superseded`: never built because the kernel build left the fleet.
 */
export const PlanState = Type.Union([
  Type.Literal('to-build'),
  Type.Literal('already-fixed'),
  Type.Literal('not-affected'),
  Type.Literal('not-live-patchable'),
  Type.Literal('failed'),
  Type.Literal('validation-failed'),
  Type.Literal('released'),
  Type.Literal('superseded'),
]);
export type PlanState = Static<typeof PlanState>;

/** Where a job is: waiting, held by a worker (building, then validating), or finished. */
export const JobState = Type.Union([
  Type.Literal('queued'),
  Type.Literal('building'),
  Type.Literal('validating'),
  Type.Literal('done'),
]);
export type JobState = Static<typeof JobState>;

/** A kernel build the fleet runs, with how many hosts run it. */
export const FleetKernel = Type.Object({
  kernelId: KernelId,
  /** `uname -r`, e.g. 6.1.0-50-amd64. */
  release: Type.String(),
  /** The upstream version the build is based on (6.1.176), when /proc/version names it. */
  upstreamVersion: Nullable(Type.String()),
  /** The distribution package version (6.1.176-1), when /proc/version names it. */
  packageVersion: Nullable(Type.String()),
  hosts: Type.Integer({ minimum: 0 }),
  /** Highest level recorded for this build (0: none). */
  latestLevel: Type.Integer({ minimum: 0 }),
});
export type FleetKernel = Static<typeof FleetKernel>;

export const PlanEntry = Type.Object({
  kernelId: KernelId,
  release: Type.String(),
  state: PlanState,
  /** already-fixed: the version that carries the fix. */
  version: Nullable(Type.String()),
  /** not-affected, not-live-patchable, failed, validation-failed: why, in words. */
  reason: Nullable(Type.String()),
  /** The job for this build, when one was planned. */
  jobId: Nullable(Type.String()),
  jobState: Nullable(JobState),
  /** released or validation-failed: the level built for this build. */
  level: Nullable(Type.Integer({ minimum: 1 })),
  updatedAt: Type.String(),
});
export type PlanEntry = Static<typeof PlanEntry>;

export const FixRecord = Type.Object({
  id: FixId,
  title: Type.String(),
  cves: Type.Array(CveId),
  /** Upstream commit ids and subjects, as fix.json or the patch headers give them. */
  commits: Type.Array(Type.Object({ id: Nullable(Type.String()), subject: Type.String() })),
  /** sha256 of the canonical bundle: two submissions with the same bytes are the same fix. */
  sha256: Sha256,
  submittedAt: Type.String(),
  submittedBy: Type.String(),
  plan: Type.Array(PlanEntry),
});
export type FixRecord = Static<typeof FixRecord>;

export const FixSubmitRequest = Type.Object({ fix: FixBundle }, { additionalProperties: false });
export type FixSubmitRequest = Static<typeof FixSubmitRequest>;

/** A worker asks for work; `workerId` names it in the job history (hostname:pid or as configured). */
export const JobClaimRequest = Type.Object(
  { workerId: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$' }) },
  { additionalProperties: false },
);
export type JobClaimRequest = Static<typeof JobClaimRequest>;

/** A fix of the level a job builds; fetched from GET /jobs/:id/fixes/:fixId while the lease is held. */
export const JobFix = Type.Object({ id: FixId, sha256: Sha256 });
export type JobFix = Static<typeof JobFix>;

/**
 * A claimed job: build `level` of one kernel build from `fixes` (the previous
 * level's fixes, in order, then the new one), validate it in a VM of that
 * exact kernel, and send the result before `leaseExpiresAt` (heartbeats
 * extend it). `previous` is the level it replaces (absent: none yet); its
 * manifest and module come from GET /jobs/:id/previous/{manifest,module}.
 */
export const JobClaim = Type.Object({
  jobId: Type.String(),
  leaseId: Type.String(),
  leaseExpiresAt: Type.String(),
  attempt: Type.Integer({ minimum: 1 }),
  kernel: Type.Object({
    kernelId: KernelId,
    release: Type.String(),
    /** The host-reported /proc/version, which the built module must target. */
    procVersion: Type.String(),
    packageVersion: Nullable(Type.String()),
  }),
  level: PatchLevel,
  fixes: Type.Array(JobFix, { minItems: 1, maxItems: 500 }),
  /** The fix this job adds (the last of `fixes`). */
  newFix: FixId,
  previous: Nullable(Type.Object({ level: PatchLevel, moduleSha256: Sha256 })),
});
export type JobClaim = Static<typeof JobClaim>;

export const JobPhase = Type.Union([Type.Literal('build'), Type.Literal('validate')]);
export type JobPhase = Static<typeof JobPhase>;

export const JobHeartbeat = Type.Object(
  {
    leaseId: Type.String({ maxLength: 128 }),
    phase: JobPhase,
    message: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export type JobHeartbeat = Static<typeof JobHeartbeat>;
export const JobLease = Type.Object({ leaseExpiresAt: Type.String() });
export type JobLease = Static<typeof JobLease>;

/** What a trigger printed, before and after the level was applied. */
export const TriggerVerdict = Type.Union([Type.Literal('VULNERABLE'), Type.Literal('FIXED'), Type.Literal('ERROR')]);
export type TriggerVerdict = Static<typeof TriggerVerdict>;

export const TriggerRun = Type.Object({
  fixId: FixId,
  before: TriggerVerdict,
  after: TriggerVerdict,
  /** After rolling back to the previous level: the flaw shows again. */
  afterRollback: Type.Optional(TriggerVerdict),
  output: Type.String({ maxLength: MAX_TRIGGER_OUTPUT_BYTES }),
});
export type TriggerRun = Static<typeof TriggerRun>;

/**
 * The proof that a level works on its exact kernel build: booted in a VM,
 * applied with the real agent while a workload ran, triggers before and
 * after, the kernel log checked, rolled back and applied again.
 */
export const ValidationRecord = Type.Object(
  {
    result: Type.Union([Type.Literal('passed'), Type.Literal('failed')]),
    /** failed: the first reason, in words (also in `problems`). */
    reason: Nullable(Type.String({ maxLength: 2000 })),
    problems: Type.Array(Type.String({ maxLength: 2000 }), { maxItems: 100 }),
    kernelRelease: Type.String({ maxLength: 128 }),
    /** uname -v of the guest, proving which build ran. */
    kernelVersion: Type.String({ maxLength: 256 }),
    level: PatchLevel,
    previousLevel: Type.Integer({ minimum: 0 }),
    startedAt: Type.String(),
    timings: Type.Object(
      {
        bootMs: Type.Number({ minimum: 0 }),
        applyMs: Type.Number({ minimum: 0 }),
        rollbackMs: Type.Number({ minimum: 0 }),
        reapplyMs: Type.Number({ minimum: 0 }),
        totalMs: Type.Number({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    triggers: Type.Array(TriggerRun, { maxItems: 500 }),
    workload: Type.Object(
      { operations: Type.Integer({ minimum: 0 }), failed: Type.Integer({ minimum: 0 }) },
      { additionalProperties: false },
    ),
    /** Kernel log lines that fail a validation: WARNING, BUG, Oops, lockdep, RCU stalls. */
    kernelLog: Type.Array(Type.String({ maxLength: 1000 }), { maxItems: 200 }),
    agentVersion: Type.String({ maxLength: 64 }),
  },
  { additionalProperties: false },
);
export type ValidationRecord = Static<typeof ValidationRecord>;

/** The validation summary signed into a target's TUF custom metadata. */
export const ValidationSummary = Type.Object({
  result: Type.Union([Type.Literal('passed'), Type.Literal('failed')]),
  at: Type.String(),
  worker: Type.String(),
  kernelRelease: Type.String(),
  kernelVersion: Type.String(),
  triggers: Type.Array(Type.Object({ fixId: FixId, before: TriggerVerdict, after: TriggerVerdict })),
  workloadFailed: Type.Integer({ minimum: 0 }),
});
export type ValidationSummary = Static<typeof ValidationSummary>;

/**
 * A job's outcome, sent once by the worker holding its lease.
 * - `built`: the module (base64), its manifest, and the validation record;
 *   the server releases the level if validation passed, halts it if not;
 * - `already-fixed` / `not-affected` / `not-live-patchable`: nothing built, `reason` says why;
 * - `failed`: the build failed; `reason` is the builder's error (code: message).
 */
export const JobResult = Type.Object(
  {
    leaseId: Type.String({ maxLength: 128 }),
    outcome: Type.Union([
      Type.Literal('built'),
      Type.Literal('already-fixed'),
      Type.Literal('not-affected'),
      Type.Literal('not-live-patchable'),
      Type.Literal('failed'),
    ]),
    reason: Type.Optional(Type.String({ maxLength: 4000 })),
    /** already-fixed: the version that carries the fix, when known. */
    version: Type.Optional(KernelVersion),
    manifest: Type.Optional(PatchManifest),
    /** The module's bytes, base64. */
    module: Type.Optional(Type.String({ maxLength: Math.ceil((64 * 1024 * 1024) / 3) * 4 })),
    validation: Type.Optional(ValidationRecord),
    buildLog: Type.String({ maxLength: MAX_BUILD_LOG_BYTES }),
    /** The guest's serial console during validation. */
    consoleLog: Type.Optional(Type.String({ maxLength: MAX_CONSOLE_LOG_BYTES })),
    timings: Type.Object(
      { buildMs: Type.Number({ minimum: 0 }), validateMs: Type.Number({ minimum: 0 }) },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type JobResult = Static<typeof JobResult>;

/** A job as operators see it (GET /jobs, GET /jobs/:id). */
export const JobRecord = Type.Object({
  id: Type.String(),
  fixId: FixId,
  kernelId: KernelId,
  release: Type.String(),
  state: JobState,
  outcome: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  level: Nullable(Type.Integer({ minimum: 1 })),
  attempts: Type.Integer({ minimum: 0 }),
  worker: Nullable(Type.String()),
  phase: Nullable(JobPhase),
  createdAt: Type.String(),
  startedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
  timings: Nullable(Type.Object({ buildMs: Type.Number(), validateMs: Type.Number() })),
  validation: Nullable(ValidationRecord),
});
export type JobRecord = Static<typeof JobRecord>;

/** One CVE on one kernel build of the fleet. */
export const CoverageState = Type.Union([
  Type.Literal('not-affected'),
  Type.Literal('fixed-in-build'),
  Type.Literal('queued'),
  Type.Literal('built'),
  Type.Literal('validated'),
  Type.Literal('released'),
  Type.Literal('applied'),
  Type.Literal('not-live-patchable'),
  Type.Literal('failed'),
  Type.Literal('no-fix'),
]);
export type CoverageState = Static<typeof CoverageState>;

export const CoverageCell = Type.Object({
  kernelId: KernelId,
  state: CoverageState,
  /** fixed-in-build: the version; released/applied: the level. */
  version: Nullable(Type.String()),
  level: Nullable(Type.Integer({ minimum: 1 })),
  /** applied: hosts on a level carrying the fix, of the hosts running this build. */
  hostsApplied: Type.Integer({ minimum: 0 }),
  hosts: Type.Integer({ minimum: 0 }),
  reason: Nullable(Type.String()),
  fixId: Nullable(FixId),
});
export type CoverageCell = Static<typeof CoverageCell>;

export const CoverageRow = Type.Object({
  cve: CveId,
  severity: Nullable(Type.String()),
  cvss: Nullable(Type.Number()),
  cells: Type.Array(CoverageCell),
});
export type CoverageRow = Static<typeof CoverageRow>;

/** For each CVE that affects a kernel build in the fleet: its state on each build. */
export const CoverageReport = Type.Object({
  generatedAt: Type.String(),
  kernels: Type.Array(FleetKernel),
  rows: Type.Array(CoverageRow),
});
export type CoverageReport = Static<typeof CoverageReport>;
