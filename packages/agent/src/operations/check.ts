import {
  DesiredLevel,
  LivegraftError,
  StatusExit,
  clockSkewSec,
  skewWarning,
  validator,
  type CheckinRequest,
  type CheckinResponse,
  type DesiredEvent,
  type HostState,
  type KernelIdentity,
  type PatchManifest,
  type PatchState as WirePatchState,
  type UserspaceDesired,
} from '@livegraft/protocol';
import { loadConfig, type AgentConfig } from '../state/config.ts';
import { readUptimeSec, type AppliedPatch } from '../kernel/applied.ts';
import type { AgentState } from '../state/state.ts';
import { userspaceCheckinReport } from '../userspace/cli.ts';
import { AGENT_VERSION } from '../lib/version.ts';
import { MAX_ERROR_TEXT, raiseHighest, type AgentContext } from './context.ts';
import type { OperationRunner } from './runner.ts';

// The check-in: what this host reports (it is the heartbeat too) and what it learns from the answer.

/** Used until the server has told us its interval. */
export const DEFAULT_CHECKIN_INTERVAL_SEC = 3600;
const desiredValidator = validator(DesiredLevel, 'desired level in the check-in answer');

export interface CheckOutcome {
  exit: number;
  kernel: KernelIdentity;
  appliedLevel: number;
  kernelSupported: boolean;
  latestLevel: number;
  latest: PatchManifest | undefined;
  /** What the server wants this host to run, when it says so. */
  desired: DesiredLevel | undefined;
  checkinIntervalSec: number;
  /** The user-space level the server wants per library build-id (a check-in's answer; not a pushed event's). */
  userspace?: UserspaceDesired[];
}

/** kcarectl --status semantics, shared by check (online) and status (offline). */
export function statusExitFor(kernelSupported: boolean, latestLevel: number, appliedLevel: number): number {
  if (!kernelSupported) return StatusExit.KERNEL_UNSUPPORTED;
  if (latestLevel > appliedLevel) return StatusExit.UPDATE_AVAILABLE;
  if (appliedLevel === 0) return StatusExit.NO_PATCH_APPLIED;
  return StatusExit.UP_TO_DATE;
}

/** The server answered 401 to a host token: it was revoked (or the host deleted). */
export function isRevocation(err: unknown): err is LivegraftError {
  return err instanceof LivegraftError && err.details?.['status'] === 401;
}

/** The server refused our token (push stream or check-in): remembered until a check-in succeeds again. */
export function recordRevoked(ctx: AgentContext, message: string): void {
  ctx.record((s) => {
    s.revoked = { at: ctx.nowIso(), message: message.slice(0, MAX_ERROR_TEXT) };
  });
}

function hostState(state: AgentState, applied: AppliedPatch, kernel: KernelIdentity): HostState {
  if (applied.inTransition || applied.retired.length > 0) return 'needs-attention';
  if (state.attention) return 'needs-attention';
  if ((state.quarantined?.[kernel.id] ?? []).length > 0) return 'needs-attention';
  if (state.lastError?.code === 'TRANSITION_REVERSE_STALLED') return 'needs-attention';
  if (state.lastError) return 'error';
  if (state.lastCheck?.kernelId === kernel.id && !state.lastCheck.kernelSupported) return 'unsupported';
  return applied.level > 0 ? 'patched' : 'unpatched';
}

/** What the kernel's livepatch state looks like for the check-in (the server halts on long transitions). */
function patchState(ctx: AgentContext, applied: AppliedPatch): WirePatchState | undefined {
  const ours = applied.patches.filter((p) => p.name.startsWith('livegraft_'));
  const moving = ours.find((p) => p.transition);
  const p = moving ?? ours.find((x) => x.name === applied.name);
  if (p === undefined) return undefined;
  const out: WirePatchState = { module: p.name.slice(0, 64), enabled: p.enabled, transition: p.transition };
  if (p.transition) {
    const { entry } = ctx.journal.read();
    const since = entry?.module === p.name ? Date.parse(entry.startedAt) : NaN;
    if (Number.isFinite(since)) out.transitionSec = Math.max(0, (ctx.deps.clock.now() - since) / 1000);
  }
  return out;
}

function checkinRequest(
  ctx: AgentContext,
  config: AgentConfig | undefined,
  kernel: KernelIdentity,
  applied: AppliedPatch,
  state: AgentState,
): CheckinRequest {
  const req: CheckinRequest = {
    kernel,
    appliedLevel: applied.level,
    state: hostState(state, applied, kernel),
    agentVersion: AGENT_VERSION,
    uptimeSec: readUptimeSec(ctx.deps.procRoot),
  };
  if (config?.tags !== undefined) req.tags = config.tags;
  const wirePatchState = patchState(ctx, applied);
  if (wirePatchState !== undefined) req.patchState = wirePatchState;
  if (state.blockingTasks && state.blockingTasks.length > 0) req.blockingTasks = state.blockingTasks;
  const events = ctx.deps.kernelEvents?.pending() ?? [];
  if (events.length > 0) req.kernelEvents = events;
  const quarantined = state.quarantined?.[kernel.id] ?? [];
  if (state.lastError) req.lastError = `${state.lastError.code}: ${state.lastError.message}`.slice(0, MAX_ERROR_TEXT);
  else if (quarantined.length > 0) {
    req.lastError = `LEVEL_QUARANTINED: level(s) ${quarantined.join(', ')} were being applied when the host went down`;
  }
  if (state.lastApply) req.lastApply = state.lastApply;
  if (state.clockSkew) req.clockSkewSec = state.clockSkew.sec;
  const userspace = userspaceCheckinReport(ctx.deps.stateDir, (m) => ctx.deps.log.log('warn', m));
  if (userspace.length > 0) req.userspace = userspace;
  return req;
}

/** Compares this host's clock with the server's Date header; warns past the threshold. Returns the skew. */
function noteClockSkew(ctx: AgentContext, dateHeader: string | undefined): number | undefined {
  const skew = clockSkewSec(ctx.deps.clock.now(), dateHeader);
  const warning = skewWarning(skew);
  if (warning !== undefined) ctx.deps.log.log('warn', warning, { code: 'CLOCK_SKEW', skewSec: skew });
  return skew;
}

/** The check-in: reports our state (it is the heartbeat too) and learns what is available. Runs inside the runner. */
export async function checkIn(ctx: AgentContext, config: AgentConfig): Promise<CheckOutcome> {
  const kernel = ctx.identity();
  const applied = ctx.applied(kernel);
  const state = ctx.readState();
  const req = checkinRequest(ctx, config, kernel, applied, state);
  let res: CheckinResponse;
  const client = ctx.client(config);
  try {
    res = await client.checkin(req);
  } catch (err) {
    noteClockSkew(ctx, client.lastServerDate);
    if (!(err instanceof LivegraftError && err.code === 'KERNEL_UNSUPPORTED')) {
      ctx.recordError(err);
      if (isRevocation(err)) recordRevoked(ctx, `check-in refused (HTTP 401): credential revoked; ${err.message}`);
      throw err;
    }
    res = {
      kernelSupported: false,
      latest: null,
      checkinIntervalSec: state.lastCheck?.checkinIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC,
    };
  }
  let latest = res.latest?.manifest;
  if (res.latest !== null && (res.latest.kernelId !== kernel.id || res.latest.manifest.level !== res.latest.level)) {
    const err = new LivegraftError(
      'SERVER_BAD_ANSWER',
      `server offered level ${res.latest.level} for kernel ${res.latest.kernelId.slice(0, 12)}, ` +
        `this host is ${kernel.id.slice(0, 12)}; ignoring it`,
    );
    ctx.recordError(err);
    throw err;
  }
  const rawDesired = (res as { desired?: unknown }).desired;
  let desired: DesiredLevel | undefined;
  if (rawDesired !== undefined && rawDesired !== null) {
    try {
      desired = desiredValidator.parse(rawDesired);
    } catch (err) {
      const bad = new LivegraftError('SERVER_BAD_ANSWER', (err as Error).message, { cause: err });
      ctx.recordError(bad);
      throw bad;
    }
  }
  const latestLevel = res.kernelSupported && latest !== undefined ? latest.level : 0;
  if (!res.kernelSupported) {
    latest = undefined;
    desired = undefined;
  }
  const skew = noteClockSkew(ctx, client.lastServerDate);
  ctx.record((s) => {
    if (skew !== undefined) s.clockSkew = { sec: skew, at: ctx.nowIso() };
    // What the kernel runs is what boot must put back, even if state.json was reset meanwhile.
    if (applied.level > 0 && !applied.inTransition && (s.kernelId !== kernel.id || s.level !== applied.level)) {
      s.kernelId = kernel.id;
      s.level = applied.level;
    }
    s.lastCheckAt = ctx.nowIso();
    s.lastCheck = {
      kernelId: kernel.id,
      kernelSupported: res.kernelSupported,
      latestLevel,
      checkinIntervalSec: res.checkinIntervalSec,
    };
    raiseHighest(s, kernel.id, applied.level);
    // A successful round trip clears check errors; apply errors stay until the next apply.
    if (s.lastError?.op === 'check') s.lastError = null;
    s.revoked = null;
  });
  if (applied.level > 0 && !applied.inTransition) ctx.markRunning(kernel.id, applied.level);
  if (req.kernelEvents !== undefined) ctx.deps.kernelEvents?.ack(req.kernelEvents);
  return {
    exit: statusExitFor(res.kernelSupported, latestLevel, applied.level),
    kernel,
    appliedLevel: applied.level,
    kernelSupported: res.kernelSupported,
    latestLevel,
    latest,
    desired,
    checkinIntervalSec: res.checkinIntervalSec,
    ...(res.userspace === undefined ? {} : { userspace: res.userspace }),
  };
}

/**
 * What a check-in would have said, from a pushed event, so a push-triggered
 * update goes straight to signed delivery: the event carries the same
 * desired level the check-in answer would (the module and its manifest
 * still come only through TUF), and the check-in after the apply reports
 * the result. Halves the requests a rollout costs the server. Undefined
 * when the event cannot stand in for a check-in (no level, another kernel).
 */
export function pushedCheck(ctx: AgentContext, ev: DesiredEvent | undefined): CheckOutcome | undefined {
  if (ev?.desired === null || ev?.desired === undefined) return undefined;
  const kernel = ctx.identity();
  if (ev.kernelId !== kernel.id) return undefined;
  const appliedLevel = ctx.applied(kernel).level;
  const state = ctx.readState();
  return {
    exit: statusExitFor(true, ev.desired.level, appliedLevel),
    kernel,
    appliedLevel,
    kernelSupported: true,
    latestLevel: ev.desired.level,
    latest: undefined,
    desired: ev.desired,
    checkinIntervalSec: state.lastCheck?.checkinIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC,
  };
}

/**
 * A best-effort check-in that changes no local state; used right after an
 * apply. Returns the user-space part of its answer.
 */
export async function report(ctx: AgentContext, config: AgentConfig): Promise<UserspaceDesired[] | undefined> {
  try {
    const kernel = ctx.identity();
    const applied = ctx.applied(kernel);
    const state = ctx.readState();
    const req = checkinRequest(ctx, config, kernel, applied, state);
    const res = await ctx.client(config).checkin(req);
    if (req.kernelEvents !== undefined) ctx.deps.kernelEvents?.ack(req.kernelEvents);
    return res.userspace;
  } catch (err) {
    ctx.deps.log.log('warn', `could not report the result to the server: ${(err as Error).message}`);
    return undefined;
  }
}

/** `livegraft-agent check`: one check-in, under the host lock. */
export function check(ctx: AgentContext, runner: OperationRunner): Promise<CheckOutcome> {
  const config = loadConfig(ctx.deps.configPath);
  return runner.exclusive(() => checkIn(ctx, config));
}
