import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { moduleNameFor } from '@livegraft/protocol';
import { loadConfigIfPresent } from '../state/config.ts';
import { applySigned, downgradeRefused } from './apply-level.ts';
import { assertNoAttention } from './attention.ts';
import type { AgentContext } from './context.ts';
import type { OperationRunner } from './runner.ts';
import type { UpdateOutcome } from './update.ts';

/** Levels of this kernel in a list of target paths `<kernelId>/<level>/<name>.ko`. */
function levelsInTargets(paths: string[], kernelId: string): number[] {
  const out: number[] = [];
  for (const p of paths) {
    const m = /^([0-9a-f]{64})\/([1-9][0-9]{0,6})\/([a-z0-9_]+)\.ko$/.exec(p);
    if (m === null || m[1] !== kernelId) continue;
    const level = Number(m[2]);
    if (m[3] === moduleNameFor(kernelId, level)) out.push(level);
  }
  return out.sort((a, b) => a - b);
}

/**
 * Applies the highest level for this kernel from a bundle directory laid
 * out like the server's TUF repository (tuf/metadata, tuf/targets), for
 * hosts without network. Verified against the pinned root like online.
 */
export function updateFrom(
  ctx: AgentContext,
  runner: OperationRunner,
  dir: string,
  opts: { allowDowngrade?: boolean } = {},
): Promise<UpdateOutcome> {
  const config = loadConfigIfPresent(ctx.deps.configPath);
  const base = pathToFileURL(resolve(dir)).href;
  return runner.mutating(config, async () => {
    const state = ctx.readState();
    const disabled = ctx.killSwitch(config);
    if (disabled !== undefined) {
      return { exit: 0, summary: `livegraft is disabled (${disabled.detail}); not applying anything`, disabled };
    }
    assertNoAttention(state);
    const kernel = ctx.identity();
    const applied = ctx.applied(kernel).level;
    const highest = Math.max(state.highestLevel?.[kernel.id] ?? 0, applied);
    const session = await ctx.tuf(config, base).open();
    try {
      const quarantined = state.quarantined?.[kernel.id] ?? [];
      const levels = levelsInTargets(session.listTargets(`${kernel.id}/`), kernel.id);
      const level = levels.filter((l) => !quarantined.includes(l)).at(-1);
      if (level === undefined) {
        return {
          exit: 0,
          summary:
            levels.length === 0
              ? `${dir} has no signed patches for this kernel`
              : `every level in ${dir} for this kernel is quarantined (${levels.join(', ')})`,
        };
      }
      if (level === applied) return { exit: 0, summary: `up to date at level ${applied}` };
      const downgrade = level < applied || level < highest;
      if (downgrade && opts.allowDowngrade !== true) throw downgradeRefused(level, applied, highest, dir);
      const op = await applySigned(
        ctx,
        downgrade ? 'rollback' : 'apply',
        config,
        kernel,
        level,
        () => Promise.resolve(session),
        downgrade,
      );
      return { exit: 0, ...op };
    } finally {
      session.close();
    }
  });
}
