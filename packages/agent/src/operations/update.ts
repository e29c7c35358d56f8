import { StatusExit, type ApplyResult, type DesiredEvent, type UserspaceDesired } from '@livegraft/protocol';
import { loadConfig, type AgentConfig } from '../state/config.ts';
import type { KillSwitch } from '../kernel/guards.ts';
import { helperPath } from '../userspace/native.ts';
import { syncUserspace } from '../userspace/sync.ts';
import { applySigned, downgradeRefused } from './apply-level.ts';
import { assertNoAttention, kernelRefusal } from './attention.ts';
import { checkIn, pushedCheck, report, type CheckOutcome } from './check.ts';
import type { AgentContext } from './context.ts';
import type { OperationRunner } from './runner.ts';
import { unloadNow } from './unload.ts';

export interface UpdateOutcome {
  exit: number;
  /** What happened, for humans. */
  summary: string;
  check?: CheckOutcome;
  apply?: ApplyResult;
  removed?: string[];
  warnings?: string[];
  disabled?: KillSwitch;
}

/**
 * Brings the user-space libraries to the levels of the server's last
 * answer (fetched through TUF like kernel levels), then reports the result
 * in a check-in. Never throws: a failure is logged and the next check-in
 * or re-scan tries again. Honours the kill switch.
 */
async function updateUserspace(
  ctx: AgentContext,
  config: AgentConfig,
  desired: UserspaceDesired[] | undefined,
): Promise<void> {
  if (desired === undefined || desired.length === 0 || ctx.killSwitch(config) !== undefined) return;
  try {
    const tuf = ctx.deliveryTuf(config);
    const res = await syncUserspace(desired, {
      stateDir: ctx.deps.stateDir,
      helper: helperPath(),
      openSession: () => tuf.open(),
      log: (level, msg) => ctx.deps.log.log(level, msg),
    });
    if (res.changed.length > 0) await report(ctx, config);
  } catch (err) {
    ctx.deps.log.log('warn', `user-space levels not applied: ${(err as Error).message}`);
  }
}

/**
 * check, then fetch through TUF and apply the level the server wants
 * (its `desired`, else its latest). Never goes down unless the server's
 * desired level says an operator authorised it. `manual` (the CLI) clears
 * a hold and retries a blocked module; the daemon respects both.
 */
export async function update(
  ctx: AgentContext,
  runner: OperationRunner,
  opts: { manual: boolean; pushed?: DesiredEvent },
): Promise<UpdateOutcome> {
  const config = loadConfig(ctx.deps.configPath);
  let userspace: UserspaceDesired[] | undefined;
  const reported = async (p: Promise<UserspaceDesired[] | undefined>) => {
    userspace = (await p) ?? userspace;
  };
  try {
    return await updateKernel(ctx, runner, config, opts, (c) => (userspace = c.userspace), reported);
  } finally {
    // User-space levels follow the kernel's whatever became of it (unsupported kernel, refused downgrade, ...).
    await updateUserspace(ctx, config, userspace);
  }
}

function updateKernel(
  ctx: AgentContext,
  runner: OperationRunner,
  config: AgentConfig,
  opts: { manual: boolean; pushed?: DesiredEvent },
  checked: (check: CheckOutcome) => void,
  reported: (answer: Promise<UserspaceDesired[] | undefined>) => Promise<void>,
): Promise<UpdateOutcome> {
  return runner.mutating(config, async () => {
    const check = (opts.manual ? undefined : pushedCheck(ctx, opts.pushed)) ?? (await checkIn(ctx, config));
    checked(check);
    let state = ctx.readState();
    if (opts.manual && (state.hold || state.blocked || state.kernelRefusal)) {
      state = ctx.store.update((s) => {
        s.hold = null;
        s.blocked = null;
        s.kernelRefusal = null;
      });
    }
    if (!check.kernelSupported) {
      return {
        exit: StatusExit.KERNEL_UNSUPPORTED,
        summary: `kernel ${check.kernel.release} is not supported by the server`,
        check,
      };
    }
    const disabled = ctx.killSwitch(config);
    if (disabled !== undefined) {
      return {
        exit: 0,
        summary: `livegraft is disabled (${disabled.detail}); not applying anything`,
        check,
        disabled,
      };
    }
    assertNoAttention(state);
    const kernel = check.kernel;
    const applied = check.appliedLevel;
    const desired = check.desired;
    const level = desired?.level ?? check.latestLevel;
    const allowDowngrade = desired?.allowDowngrade === true;
    const highest = Math.max(state.highestLevel?.[kernel.id] ?? 0, applied);
    if (desired === undefined && check.latest === undefined) {
      const summary = applied === 0 ? 'no patches available for this kernel' : `up to date at level ${applied}`;
      return { exit: 0, summary, check };
    }
    if (level === applied) return { exit: 0, summary: `up to date at level ${applied}`, check };
    const downgrade = level < applied || level < highest;
    if (downgrade && !allowDowngrade) {
      const err = downgradeRefused(level, applied, highest, 'the server');
      ctx.recordError(err);
      throw err;
    }
    if (level === 0) {
      const op = await unloadNow(ctx, config, kernel);
      await reported(report(ctx, config));
      return { exit: 0, ...op, check };
    }
    if (!downgrade && !opts.manual && state.hold && level > state.hold.maxLevel) {
      const summary = `level ${level} available but held at ${state.hold.maxLevel} since ${state.hold.reason} (${state.hold.at}); run "livegraft-agent update" to resume`;
      return { exit: 0, summary, check };
    }
    if ((state.quarantined?.[kernel.id] ?? []).includes(level)) {
      const summary = `level ${level} is quarantined (it was being applied when the host went down); not applying it. "livegraft-agent unquarantine ${level}" allows it again`;
      ctx.deps.log.log('error', summary, { code: 'LEVEL_QUARANTINED' });
      return { exit: StatusExit.ERROR, summary, check };
    }
    const refusal = kernelRefusal(ctx, state);
    if (!opts.manual && refusal !== undefined) return { exit: StatusExit.ERROR, summary: refusal, check };
    const blocked = state.blocked;
    if (
      !opts.manual &&
      blocked?.level === level &&
      (check.latest === undefined || check.latest.level !== level || check.latest.module.sha256 === blocked.sha256)
    ) {
      const summary = `level ${level} failed before with ${blocked.code}; not retrying automatically (run "livegraft-agent update")`;
      return { exit: StatusExit.ERROR, summary, check };
    }
    const action = downgrade ? 'rollback' : 'apply';
    const tuf = ctx.deliveryTuf(config);
    try {
      const op = await applySigned(ctx, action, config, kernel, level, () => tuf.open(), downgrade);
      return { exit: 0, ...op, check };
    } finally {
      // Tell the server the outcome now rather than at the next interval.
      await reported(report(ctx, config));
    }
  });
}
