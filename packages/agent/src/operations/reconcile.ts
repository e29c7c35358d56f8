import { LivegraftError, type ApplyResult } from '@livegraft/protocol';
import { DISABLE_TIMEOUT_MS, finishInstall, removeModule, removeRetiredModules } from '../kernel/install.ts';
import { waitFor } from '../lib/clock.ts';
import type { AgentConfig } from '../state/config.ts';
import type { JournalEntry } from '../state/journal.ts';
import { quarantine, setAttention } from './attention.ts';
import { errorText, recordApplied, type AgentContext } from './context.ts';
import { clearJournal, journalHook, persist } from './journalled.ts';

/**
 * A journal left by a change the host went down in. What ran then decides
 * what boot re-applies now, even if state.json was lost meanwhile:
 * - "transitioned" or later: the change had succeeded; it is confirmed;
 * - "intent"/"loaded": the level may be what brought the host down, so it
 *   is quarantined, and the level that ran before it is the one to re-apply;
 * - an unload: the operator's unload stands.
 */
function settleAfterReboot(ctx: AgentContext, entry: JournalEntry): void {
  const log = ctx.deps.log;
  const at = ctx.nowIso();
  const done = entry.step === 'transitioned' || entry.step === 'old-removed';
  if (entry.op === 'unload') {
    ctx.record((s) => {
      s.kernelId = entry.kernelId;
      s.level = 0;
      s.appliedAt = null;
      s.hold = { maxLevel: 0, reason: 'unload', at };
    });
    ctx.markRunning(entry.kernelId, 0);
    log.log('warn', `the host went down during an unload (journal step "${entry.step}"); it stays unloaded`);
    return;
  }
  if (done) {
    const apply: ApplyResult = {
      action: entry.op,
      fromLevel: entry.fromLevel,
      toLevel: entry.level,
      ok: true,
      durationMs: Math.max(0, Date.parse(entry.updatedAt) - Date.parse(entry.startedAt)) || 0,
      at: entry.updatedAt,
    };
    ctx.record((s) => {
      recordApplied(s, entry.kernelId, entry.level, apply, entry.level < entry.fromLevel);
      if (s.lastError?.op === 'apply') s.lastError = null;
    });
    ctx.markRunning(entry.kernelId, entry.level);
    log.log(
      'warn',
      `the ${entry.op} of level ${entry.level} had completed (journal step "${entry.step}") when the host went down; ` +
        'confirmed, it is the level to re-apply',
    );
    return;
  }
  if (entry.level > 0)
    quarantine(ctx, entry.kernelId, entry.level, `the host went down (journal step "${entry.step}")`);
  // What ran before this change is what to re-apply; state.json normally says so already.
  const before = entry.op === 'boot' ? entry.level : entry.fromLevel;
  ctx.record((s) => {
    if (s.kernelId === entry.kernelId) return;
    s.kernelId = entry.kernelId;
    s.level = before;
  });
  if (ctx.cache.running(entry.kernelId) === undefined) ctx.markRunning(entry.kernelId, before);
}

/**
 * Settles a change a killed agent left behind, from the journal and the
 * kernel (the kernel is the truth). Never loads anything.
 */
export async function reconcile(ctx: AgentContext, config: AgentConfig | undefined): Promise<void> {
  const { entry, warning } = ctx.journal.read();
  if (warning !== undefined) ctx.deps.log.log('warn', `journal: ${warning}`);
  if (entry === undefined) return;
  const log = ctx.deps.log;
  if (entry.bootId !== ctx.bootId()) {
    settleAfterReboot(ctx, entry);
    clearJournal(ctx);
    return;
  }
  const k = ctx.kernelOps(config);
  const onStep = journalHook(ctx, { ...entry });
  const record = (ok: boolean, extra: Partial<ApplyResult> = {}): ApplyResult => ({
    action: entry.op,
    fromLevel: entry.fromLevel,
    toLevel: entry.level,
    ok,
    durationMs: Math.max(0, ctx.deps.clock.now() - Date.parse(entry.startedAt)),
    at: ctx.nowIso(),
    ...extra,
  });
  log.log('warn', `resuming an interrupted ${entry.op} of level ${entry.level} (journal step "${entry.step}")`);
  try {
    if (entry.op === 'unload') {
      await removeRetiredModules(k);
      clearJournal(ctx);
      return;
    }
    const name = entry.module;
    if (entry.step === 'intent' || entry.step === 'loaded') {
      const p = ctx.sysfs.readPatch(name);
      if (p?.enabled !== true) {
        // Never loaded, refused, or reversed: take away what is left and report the change as not done.
        if (p !== undefined) await waitFor(k.clock, () => !ctx.sysfs.patchExists(name), DISABLE_TIMEOUT_MS);
        if (ctx.sysfs.moduleLoaded(name)) await removeModule(k, name);
        const apply = record(false, { code: 'INTERRUPTED', message: `the agent stopped before ${name} was enabled` });
        ctx.record((s) => {
          s.lastApply = apply;
        });
        clearJournal(ctx);
        log.log('warn', `the interrupted ${entry.op} of level ${entry.level} did not take effect; nothing to resume`);
        return;
      }
      await finishInstall(k, name, onStep);
    } else if (entry.step === 'transitioned') {
      await removeRetiredModules(k, name);
      await onStep('old-removed');
    }
    const apply = record(true);
    persist(ctx, 'record the applied level in', ctx.store.path, () =>
      ctx.store.update((s) => {
        recordApplied(s, entry.kernelId, entry.level, apply, entry.level < entry.fromLevel);
        s.lastError = null;
      }),
    );
    ctx.markRunning(entry.kernelId, entry.level);
    clearJournal(ctx);
    log.log('info', `finished the interrupted ${entry.op} of level ${entry.level}`);
  } catch (err) {
    const { code, message } = errorText(err);
    const keep =
      code === 'TRANSITION_REVERSE_STALLED' ||
      (err instanceof LivegraftError && err.details?.['kernelChanged'] === true);
    if (err instanceof LivegraftError && code === 'TRANSITION_REVERSE_STALLED') setAttention(ctx, err);
    if (!keep) clearJournal(ctx);
    ctx.record((s) => {
      s.lastApply = record(false, { code: code.slice(0, 64), message });
      s.lastError = { code, message, at: ctx.nowIso(), op: 'apply' };
    });
    log.log('error', `could not finish the interrupted ${entry.op}`, { code, message });
  }
}
