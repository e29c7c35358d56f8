import { LivegraftError, type KernelIdentity } from '@livegraft/protocol';
import type { StepHook } from '../kernel/install.ts';
import type { JournalEntry } from '../state/journal.ts';
import { errnoOf, stateIoError } from '../state/state-io.ts';
import type { AgentContext } from './context.ts';

/**
 * Runs a state write that must follow a kernel change. On a full disk the
 * reserve kept for this is freed and the write tried once more; if it still
 * fails, the error says the kernel already changed and carries
 * `kernelChanged`, so the journal is kept for the next run to settle.
 */
export function persist(ctx: AgentContext, what: string, path: string, write: () => void): void {
  // The stores report their own I/O errors; the errno underneath decides, and the message says the kernel changed.
  const raw = (err: unknown): unknown =>
    err instanceof LivegraftError && (err.code === 'DISK_FULL' || err.code === 'STATE_IO_ERROR') && err.cause
      ? err.cause
      : err;
  try {
    write();
    return;
  } catch (err) {
    const errno = errnoOf(raw(err));
    const full = errno === 'ENOSPC' || errno === 'EDQUOT';
    if (!full || !ctx.reserve.release()) throw stateIoError(what, path, raw(err), 'changed');
    ctx.deps.log.log('warn', `the state filesystem is full; freed the space reserve ${ctx.reserve.path}`);
  }
  try {
    write();
  } catch (err) {
    throw stateIoError(what, path, raw(err), 'changed');
  }
}

/** Removes the journal; a failure is logged, never thrown over the outcome being reported. */
export function clearJournal(ctx: AgentContext): void {
  try {
    ctx.journal.clear();
  } catch (err) {
    ctx.deps.log.log('warn', `cannot remove the journal ${ctx.journal.path}: ${(err as Error).message}`);
  }
}

/**
 * A step hook that persists each step (temp + fsync + rename) before the
 * procedure continues. Before "intent" (the kernel untouched) it makes sure
 * the space reserve is on disk, so the later steps always fit.
 */
export function journalHook(ctx: AgentContext, base: Omit<JournalEntry, 'step' | 'updatedAt'>): StepHook {
  return async (step) => {
    const entry = { ...base, step, updatedAt: ctx.nowIso() };
    const what = `write the journal (step "${step}")`;
    if (step === 'intent') {
      ctx.reserve.ensure();
      try {
        ctx.journal.write(entry);
      } catch (err) {
        // No journal, no kernel change: the step cannot be recorded, so the procedure stops here.
        throw stateIoError(what, ctx.journal.path, err, 'untouched');
      }
    } else {
      persist(ctx, what, ctx.journal.path, () => ctx.journal.write(entry));
    }
    await ctx.deps.journalHook?.(step);
  };
}

export function journalBase(
  ctx: AgentContext,
  op: JournalEntry['op'],
  kernel: KernelIdentity,
  module: string,
  level: number,
  fromLevel: number,
): Omit<JournalEntry, 'step' | 'updatedAt'> {
  return {
    schema: 1 as const,
    op,
    kernelId: kernel.id,
    bootId: ctx.bootId(),
    module,
    level,
    fromLevel,
    startedAt: ctx.nowIso(),
  };
}

/**
 * Journal handling around a kernel change. A handled failure (a
 * LivegraftError: the procedure cleaned up) clears the journal, except a
 * reverse that stalled (the kernel is mid-change and a reboot must count
 * against that level) and a state write that failed after the kernel
 * changed (the next run settles it from the journal). Anything else (a
 * crash) leaves it for reconcile. `run` records its own success before it
 * returns, so the journal goes only once the state follows the kernel.
 */
export async function journalled<T>(ctx: AgentContext, run: () => Promise<T>): Promise<T> {
  let out: T;
  try {
    out = await run();
  } catch (err) {
    const keep =
      !(err instanceof LivegraftError) ||
      err.code === 'TRANSITION_REVERSE_STALLED' ||
      err.details?.['kernelChanged'] === true;
    if (!keep) clearJournal(ctx);
    throw err;
  }
  clearJournal(ctx);
  return out;
}
