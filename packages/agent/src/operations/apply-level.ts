import {
  LivegraftError,
  moduleNameFor,
  tufTargetPath,
  type ApplyResult,
  type KernelIdentity,
  type PatchManifest,
} from '@livegraft/protocol';
import { installPatch, type StepHook } from '../kernel/install.ts';
import type { CachedModule } from '../state/cache.ts';
import { isTransient } from '../delivery/client.ts';
import type { AgentConfig } from '../state/config.ts';
import type { JournalStep } from '../state/journal.ts';
import type { AgentState } from '../state/state.ts';
import type { TufSession } from '../delivery/tuf-client.ts';
import { verifyManifestTarget } from '../kernel/verify.ts';
import { assertNotQuarantined, setAttention } from './attention.ts';
import { errorText, recordApplied, type AgentContext, type OpOutcome } from './context.ts';
import { journalBase, journalHook, journalled, persist } from './journalled.ts';

// Putting one level in place, the step every kernel-changing operation but unload ends in.

/** Load failures that are about the kernel's module policy, not the module: no load is retried this boot. */
const KERNEL_POLICY_CODES: ReadonlySet<string> = new Set(['KERNEL_REJECTED_SIGNATURE']);
/** Apply failures that may clear up by themselves. */
const RETRY_LATER_CODES: ReadonlySet<string> = new Set(['TRANSITION_IN_PROGRESS', 'BUSY', 'KERNEL_LOAD_TIMEOUT']);
/**
 * Failures that say nothing about the module itself (delivery trouble, local
 * policy), so they never mark it as blocked.
 */
const NOT_THE_MODULE_CODES: ReadonlySet<string> = new Set([
  'DOWNLOAD_TIMEOUT',
  'DOWNLOAD_STALLED',
  'DISK_FULL',
  'STATE_IO_ERROR',
  'STAGING_WRITE_FAILED',
  'DOWNGRADE_REFUSED',
  'LEVEL_QUARANTINED',
  'NEEDS_ATTENTION',
  'AGENT_DISABLED',
  'CACHE_MISSING',
]);

/** Tasks a stall error carries, in the check-in's shape. */
function blockingTasksOf(err: unknown): AgentState['blockingTasks'] {
  const tasks = err instanceof LivegraftError ? err.details?.['tasks'] : undefined;
  if (!Array.isArray(tasks)) return undefined;
  return (tasks as { pid: number; comm: string; stack?: string }[]).slice(0, 64).map((t) => ({
    pid: Math.max(0, Math.trunc(t.pid)),
    comm: String(t.comm).slice(0, 64),
    ...(t.stack === undefined ? {} : { stack: String(t.stack).slice(0, 4000) }),
  }));
}

/** Checks the signed target agrees with the manifest it carries and with what we asked for. */
function checkSignedTarget(
  info: { length: number; hashes: Record<string, string>; path: string },
  manifest: PatchManifest,
  kernel: KernelIdentity,
  level: number,
): void {
  verifyManifestTarget(manifest, kernel);
  if (manifest.level !== level) {
    throw new LivegraftError(
      'MANIFEST_MISMATCH',
      `signed target ${info.path} carries a manifest for level ${manifest.level}, not ${level}`,
    );
  }
  if (info.length !== manifest.module.size || info.hashes['sha256'] !== manifest.module.sha256) {
    throw new LivegraftError(
      'MODULE_HASH_MISMATCH',
      `signed target ${info.path} is ${info.length} bytes with sha256 ${info.hashes['sha256'] ?? '(none)'}, ` +
        `its manifest says ${manifest.module.size} bytes with sha256 ${manifest.module.sha256}`,
    );
  }
}

/**
 * Per-phase durations of one apply, from the marks it reached. A failed
 * apply (`failedAt`) also gets the phase it failed in, up to the failure.
 */
function applyPhases(
  started: number,
  m: { obtained?: number } & Partial<Record<JournalStep, number>>,
  failedAt?: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  const bounds: [string, number | undefined][] = [
    ['fetch', m.obtained],
    ['verify', m.intent],
    ['load', m.loaded],
    ['transition', m.transitioned],
    ['cleanup', m['old-removed']],
  ];
  let from: number | undefined = started;
  for (const [name, to] of bounds) {
    if (from === undefined) break;
    const end = to ?? failedAt;
    if (end === undefined) break;
    out[name] = Math.max(0, Math.round(end - from));
    if (to === undefined) break;
    from = to;
  }
  return out;
}

/** Downgrade policy shared by update, update --from and apply. */
export function downgradeRefused(level: number, applied: number, highest: number, source: string): LivegraftError {
  return new LivegraftError(
    'DOWNGRADE_REFUSED',
    `${source} offers level ${level}, below ${applied > 0 ? `the applied level ${applied}` : ''}` +
      `${applied > 0 && highest > applied ? ' and ' : ''}${highest > applied ? `the highest level this host ran (${highest})` : ''}; ` +
      'refusing to go down without an operator asking for it (rollback, apply --allow-downgrade, or a fleet rollback)',
    { details: { offered: level, applied, highest } },
  );
}

/**
 * Puts one cached-or-fetched module in place and records the ApplyResult.
 * `obtain` runs inside the timing so download and verification failures
 * are reported as the apply's result; it may fill in target.sha256.
 */
export async function applyLevel(
  ctx: AgentContext,
  action: ApplyResult['action'],
  config: AgentConfig | undefined,
  kernel: KernelIdentity,
  target: { level: number; sha256: string; downgrade?: boolean },
  obtain: () => Promise<CachedModule>,
): Promise<OpOutcome> {
  const toLevel = target.level;
  const clock = ctx.deps.clock;
  const started = clock.now();
  const fromLevel = ctx.applied(kernel).level;
  // Phase boundaries: obtained (fetched and verified into the cache), then each journal step.
  const marks: { obtained?: number } & Partial<Record<JournalStep, number>> = {};
  const result = (ok: boolean, extra: Partial<ApplyResult> = {}): ApplyResult => {
    const phasesMs = applyPhases(started, marks, ok ? undefined : clock.now());
    return {
      action,
      fromLevel,
      toLevel,
      ok,
      durationMs: Math.max(0, clock.now() - started),
      at: ctx.nowIso(),
      ...(Object.keys(phasesMs).length > 0 ? { phasesMs } : {}),
      ...extra,
    };
  };
  try {
    assertNotQuarantined(ctx.readState(), kernel.id, toLevel);
    const cached = await obtain();
    marks.obtained = clock.now();
    target.sha256 = cached.manifest.module.sha256;
    const journalStep = journalHook(ctx, journalBase(ctx, action, kernel, cached.manifest.name, toLevel, fromLevel));
    const onStep: StepHook = async (step) => {
      await journalStep(step);
      marks[step] = clock.now();
    };
    let apply: ApplyResult | undefined;
    const outcome = await journalled(ctx, async () => {
      const o = await installPatch(ctx.kernelOps(config), cached.manifest, cached.modulePath, kernel, onStep);
      const done = result(true, o.warnings.length > 0 ? { message: o.warnings.join('\n').slice(0, 4000) } : {});
      apply = done;
      // Recorded before the journal goes: if this fails, the journal still says what the kernel runs.
      persist(ctx, 'record the applied level in', ctx.store.path, () =>
        ctx.store.update((s) => {
          recordApplied(s, kernel.id, toLevel, done, target.downgrade === true);
          s.lastError = null;
          s.blockingTasks = null;
          if (s.blocked?.level === toLevel) s.blocked = null;
        }),
      );
      ctx.markRunning(kernel.id, toLevel);
      return o;
    });
    if (apply === undefined) throw new LivegraftError('INTERNAL', 'apply finished without a result');
    const warnings = outcome.warnings;
    for (const w of warnings) ctx.deps.log.log('warn', w);
    const summary = outcome.alreadyApplied
      ? `level ${toLevel} was already applied`
      : `${action === 'rollback' ? 'rolled back' : 'applied'} level ${toLevel} (was ${fromLevel}) in ${apply.durationMs} ms`;
    ctx.deps.log.log('info', summary, { action, fromLevel, toLevel, removed: outcome.removed });
    return { summary, apply, removed: outcome.removed, warnings };
  } catch (err) {
    const { code, message } = errorText(err);
    const apply = result(false, { code: code.slice(0, 64), message });
    if (err instanceof LivegraftError && code === 'TRANSITION_REVERSE_STALLED') setAttention(ctx, err);
    const tasks = blockingTasksOf(err);
    ctx.record((s) => {
      s.lastApply = apply;
      s.lastError = { code, message, at: apply.at, op: 'apply' };
      if (tasks !== undefined) s.blockingTasks = tasks;
      const aboutTheModule =
        !isTransient(err) &&
        !RETRY_LATER_CODES.has(code) &&
        !NOT_THE_MODULE_CODES.has(code) &&
        !code.startsWith('TUF_');
      if (aboutTheModule && target.sha256 !== '') {
        s.blocked = { level: toLevel, sha256: target.sha256, code, at: apply.at };
      }
      if (KERNEL_POLICY_CODES.has(code)) {
        s.kernelRefusal = { bootId: ctx.bootId(), code, message, at: apply.at };
      }
    });
    ctx.deps.log.log('error', `${action} to level ${toLevel} failed`, { code, message });
    throw err;
  }
}

/**
 * Fetches level `level` through TUF (the only way a module enters the
 * cache online), checks the signed manifest, and applies it.
 */
export function applySigned(
  ctx: AgentContext,
  action: ApplyResult['action'],
  config: AgentConfig | undefined,
  kernel: KernelIdentity,
  level: number,
  openSession: () => Promise<TufSession>,
  downgrade: boolean,
): Promise<OpOutcome> {
  const target = { level, sha256: '', downgrade };
  return applyLevel(ctx, action, config, kernel, target, async () => {
    const session = await openSession();
    try {
      const path = tufTargetPath(kernel.id, level, moduleNameFor(kernel.id, level));
      const signed = await session.target(path);
      if (signed === undefined) {
        throw new LivegraftError(
          'TUF_TARGET_MISSING',
          `the signed repository has no target ${path}: the server offered a level it has not signed`,
        );
      }
      target.sha256 = signed.manifest.module.sha256;
      checkSignedTarget(signed.info, signed.manifest, kernel, level);
      return await ctx.cache.ensure(signed.manifest, kernel, (tmp) => session.download(signed.info, tmp));
    } finally {
      session.close();
    }
  });
}
