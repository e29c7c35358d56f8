import { LivegraftError } from '@livegraft/protocol';
import { loadConfigIfPresent } from '../state/config.ts';
import { applyLevel } from './apply-level.ts';
import { assertEnabled, assertNoAttention } from './attention.ts';
import type { AgentContext, OpOutcome } from './context.ts';
import type { OperationRunner } from './runner.ts';

/** Goes back to a cached level (`to`, else the highest cached one below the applied level) and holds there. */
export function rollback(ctx: AgentContext, runner: OperationRunner, to?: number): Promise<OpOutcome> {
  const config = loadConfigIfPresent(ctx.deps.configPath);
  return runner.mutating(config, async () => {
    assertEnabled(ctx, config);
    assertNoAttention(ctx.readState());
    const kernel = ctx.identity();
    const applied = ctx.applied(kernel).level;
    const levels = ctx.cache.levels(kernel.id);
    const target = to ?? levels.filter((l) => l < applied).at(-1);
    if (target === undefined || !levels.includes(target)) {
      throw new LivegraftError(
        'ROLLBACK_TARGET_MISSING',
        to === undefined
          ? `no cached level below the applied level ${applied} (cached: ${levels.join(', ') || 'none'})`
          : `level ${to} is not in the local cache for this kernel (cached: ${levels.join(', ') || 'none'})`,
      );
    }
    if (target === applied) return { summary: `level ${target} is already applied` };
    const cached = ctx.cache.get(kernel.id, target);
    if (cached === undefined)
      throw new LivegraftError('ROLLBACK_TARGET_MISSING', `level ${target} vanished from the cache`);
    const op = await applyLevel(
      ctx,
      'rollback',
      config,
      kernel,
      { level: target, sha256: cached.manifest.module.sha256, downgrade: target < applied },
      () => Promise.resolve(cached),
    );
    ctx.store.update((s) => {
      s.hold = { maxLevel: target, reason: 'rollback', at: ctx.nowIso() };
    });
    return op;
  });
}
