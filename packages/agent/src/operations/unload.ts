import { LivegraftError, type ApplyResult, type KernelIdentity } from '@livegraft/protocol';
import { uninstallAll } from '../kernel/install.ts';
import { loadConfigIfPresent, type AgentConfig } from '../state/config.ts';
import { setAttention } from './attention.ts';
import { errorText, type AgentContext, type OpOutcome } from './context.ts';
import { journalBase, journalHook, journalled, persist } from './journalled.ts';
import type { OperationRunner } from './runner.ts';

/** Disables and removes every livegraft patch, journalled; runs inside the runner (update uses it for level 0). */
export async function unloadNow(
  ctx: AgentContext,
  config: AgentConfig | undefined,
  kernel: KernelIdentity,
): Promise<OpOutcome> {
  const fromLevel = ctx.applied(kernel).level;
  const started = ctx.deps.clock.now();
  const mk = (ok: boolean, extra: Partial<ApplyResult> = {}): ApplyResult => ({
    action: 'unload',
    fromLevel,
    toLevel: 0,
    ok,
    durationMs: Math.max(0, ctx.deps.clock.now() - started),
    at: ctx.nowIso(),
    ...extra,
  });
  try {
    const onStep = journalHook(ctx, journalBase(ctx, 'unload', kernel, '', 0, fromLevel));
    const apply = mk(true);
    const { disabled, removed } = await journalled(ctx, async () => {
      await onStep('intent');
      const out = await uninstallAll(ctx.kernelOps(config));
      Object.assign(apply, mk(true));
      persist(ctx, 'record the unload in', ctx.store.path, () =>
        ctx.store.update((s) => {
          s.kernelId = kernel.id;
          s.level = 0;
          s.appliedAt = null;
          s.lastApply = apply;
          s.lastError = null;
          s.hold = { maxLevel: 0, reason: 'unload', at: apply.at };
        }),
      );
      ctx.markRunning(kernel.id, 0);
      return out;
    });
    const summary =
      disabled.length + removed.length === 0
        ? 'no livegraft patches were loaded'
        : `disabled ${disabled.join(', ') || 'nothing'}; removed ${removed.join(', ') || 'nothing'}`;
    return { summary, apply, removed };
  } catch (err) {
    const { code, message } = errorText(err);
    const apply = mk(false, { code: code.slice(0, 64), message });
    if (err instanceof LivegraftError && code === 'UNLOAD_STALLED') setAttention(ctx, err);
    ctx.record((s) => {
      s.lastApply = apply;
      s.lastError = { code, message, at: apply.at, op: 'apply' };
    });
    throw err;
  }
}

/** Unloading is the safe direction: allowed even when disabled or needing attention. */
export function unload(ctx: AgentContext, runner: OperationRunner): Promise<OpOutcome> {
  const config = loadConfigIfPresent(ctx.deps.configPath);
  return runner.mutating(config, () => unloadNow(ctx, config, ctx.identity()));
}
