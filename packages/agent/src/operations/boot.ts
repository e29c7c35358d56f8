import { LivegraftError, type KernelIdentity } from '@livegraft/protocol';
import { disableFilePath, loadConfigIfPresent, type AgentConfig } from '../state/config.ts';
import type { AgentState } from '../state/state.ts';
import { verifyModuleFile } from '../kernel/verify.ts';
import { applyLevel } from './apply-level.ts';
import { assertNoAttention, kernelRefusal } from './attention.ts';
import type { AgentContext, OpOutcome } from './context.ts';
import type { OperationRunner } from './runner.ts';

/**
 * Boot needs no config to re-apply from the cache: an unreadable or invalid
 * one is a warning, and the default kill-switch file still counts.
 */
function bootConfig(ctx: AgentContext): AgentConfig | undefined {
  try {
    return loadConfigIfPresent(ctx.deps.configPath);
  } catch (err) {
    ctx.deps.log.log(
      'warn',
      `${(err as Error).message}; re-applying from the local cache without it ` +
        `(kill-switch file: ${disableFilePath(ctx.deps.configPath, undefined)})`,
      { code: err instanceof LivegraftError ? err.code : 'CONFIG_UNREADABLE' },
    );
    return undefined;
  }
}

/**
 * The level boot should put back, and where that comes from: state.json;
 * if it has nothing for this kernel (lost, corrupt or reset), the running
 * level recorded beside the cache; else the highest cached level whose
 * module still verifies and is not quarantined.
 */
function bootLevel(
  ctx: AgentContext,
  state: AgentState,
  kernel: KernelIdentity,
): { level: number; source: string } | undefined {
  if (state.kernelId === kernel.id) return { level: state.level, source: 'state' };
  const running = ctx.cache.running(kernel.id);
  if (running !== undefined) return { level: running, source: `the running level recorded in ${ctx.cache.root}` };
  const quarantined = state.quarantined?.[kernel.id] ?? [];
  for (const level of ctx.cache.levels(kernel.id).reverse()) {
    if (quarantined.includes(level)) continue;
    const c = ctx.cache.get(kernel.id, level);
    if (c === undefined) continue;
    try {
      verifyModuleFile(c.manifest, c.modulePath, kernel);
      return { level, source: `the highest verified level in ${ctx.cache.root}` };
    } catch (err) {
      ctx.deps.log.log('warn', `cached level ${level} does not verify: ${(err as Error).message}`);
    }
  }
  return undefined;
}

/** Re-applies the recorded level from the local cache, offline. For a boot-time unit. */
export function boot(ctx: AgentContext, runner: OperationRunner): Promise<OpOutcome> {
  const config = bootConfig(ctx);
  return runner.mutating(config, async () => {
    const kernel = ctx.identity();
    const state = ctx.readState();
    const disabled = ctx.killSwitch(config);
    if (disabled !== undefined) {
      return { summary: `livegraft is disabled (${disabled.detail}); not re-applying anything`, disabled };
    }
    assertNoAttention(state);
    const recorded = bootLevel(ctx, state, kernel);
    if (recorded === undefined || recorded.level === 0) {
      return { summary: 'nothing recorded to re-apply for this kernel' };
    }
    const level = recorded.level;
    if (recorded.source !== 'state') {
      ctx.deps.log.log(
        'warn',
        `state.json has no level for this kernel; re-applying level ${level} from ${recorded.source}`,
      );
    }
    const applied = ctx.applied(kernel).level;
    if (applied === level) return { summary: `level ${applied} is already applied` };
    if (applied > 0) return { summary: `kernel already runs level ${applied}; leaving it (recorded: ${level})` };
    if ((state.quarantined?.[kernel.id] ?? []).includes(level)) {
      const summary = `level ${level} is quarantined; not re-applying it ("livegraft-agent unquarantine ${level}" allows it again)`;
      ctx.deps.log.log('error', summary, { code: 'LEVEL_QUARANTINED' });
      return { summary };
    }
    const refusal = kernelRefusal(ctx, state);
    if (refusal !== undefined) {
      ctx.deps.log.log('error', refusal, { code: state.kernelRefusal?.code });
      return { summary: refusal };
    }
    const cached = ctx.cache.get(kernel.id, level);
    const target = { level, sha256: cached?.manifest.module.sha256 ?? '' };
    return applyLevel(ctx, 'boot', config, kernel, target, () => {
      if (cached === undefined) {
        return Promise.reject(
          new LivegraftError('CACHE_MISSING', `level ${level} for this kernel is not in ${ctx.cache.root}`),
        );
      }
      return Promise.resolve(cached);
    });
  });
}
