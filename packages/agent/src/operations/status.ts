import { effectiveRelease, humanDuration, levelFixesOf, liveFixedCves, skewWarning } from '@livegraft/protocol';
import type { ApplyResult, LevelFix, PatchManifest, SkippedFix } from '@livegraft/protocol';
import { loadConfigIfPresent } from '../state/config.ts';
import type { KillSwitch } from '../kernel/guards.ts';
import type { AgentState } from '../state/state.ts';
import { TufClient } from '../delivery/tuf-client.ts';
import { DEFAULT_CHECKIN_INTERVAL_SEC, statusExitFor } from './check.ts';
import type { AgentContext } from './context.ts';

/** A last check this far in the future is a clock set back, not rounding. */
const CLOCK_BACK_TOLERANCE_SEC = 60;

/** What the kernel runs now and what the agent last heard; offline, read-only, no lock. */
export function status(ctx: AgentContext): StatusReport {
  const config = (() => {
    try {
      return loadConfigIfPresent(ctx.deps.configPath);
    } catch (err) {
      ctx.deps.log.log('warn', (err as Error).message);
      return undefined;
    }
  })();
  const kernel = ctx.identity();
  const applied = ctx.applied(kernel);
  const { state, warning } = ctx.store.read();
  const { entry: journal, warning: journalWarning } = ctx.journal.read();
  const cachedLevels = ctx.cache.levels(kernel.id);
  const manifest = applied.level > 0 ? ctx.cache.get(kernel.id, applied.level)?.manifest : undefined;
  const lastCheck = state.lastCheck?.kernelId === kernel.id ? state.lastCheck : null;
  const now = ctx.deps.clock.now();
  const rawAgeSec =
    state.lastCheckAt && lastCheck ? Math.round((now - Date.parse(state.lastCheckAt)) / 1000) : Number.NaN;
  // A last check "in the future" means the clock was set back: no age can be given, and it is stale.
  const clockWentBack = rawAgeSec < -CLOCK_BACK_TOLERANCE_SEC;
  const lastCheckAgeSec = Number.isFinite(rawAgeSec) && !clockWentBack ? Math.max(0, rawAgeSec) : null;
  const interval = config?.checkinIntervalSec ?? lastCheck?.checkinIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC;
  const clockWarnings = [
    clockWentBack
      ? `the last check (${state.lastCheckAt}) is ${humanDuration(-rawAgeSec)} in the future: the clock went back; check the clock`
      : undefined,
    skewWarning(state.clockSkew?.sec),
  ].filter((w) => w !== undefined);
  const recorded =
    state.kernelId === kernel.id && state.level !== applied.level && !applied.inTransition
      ? `state.json records level ${state.level}, the kernel runs level ${applied.level} (sysfs is what counts)`
      : undefined;
  const disabled = ctx.killSwitch(config);
  return {
    exit: lastCheck
      ? statusExitFor(lastCheck.kernelSupported, lastCheck.latestLevel, applied.level)
      : statusExitFor(true, 0, applied.level),
    kernel: { release: kernel.release, id: kernel.id, buildId: kernel.buildId ?? null, machine: kernel.machine },
    effectiveRelease: effectiveRelease(kernel.release, applied.level),
    appliedLevel: applied.level,
    patchName: applied.name ?? null,
    inTransition: applied.inTransition,
    patches: applied.patches,
    retiredModules: applied.retired,
    ...statusFixes(manifest),
    cachedLevels,
    latestLevel: lastCheck?.latestLevel ?? null,
    kernelSupported: lastCheck?.kernelSupported ?? null,
    lastCheckAt: lastCheck ? (state.lastCheckAt ?? null) : null,
    lastCheckAgeSec,
    checkStale: lastCheckAgeSec === null || lastCheckAgeSec > 2 * interval,
    clockSkewSec: state.clockSkew?.sec ?? null,
    clockWarning: clockWarnings.join('; ') || null,
    lastError: state.lastError ?? null,
    lastApply: state.lastApply ?? null,
    hold: state.hold ?? null,
    server: config?.server ?? null,
    mirror: config?.mirror ?? null,
    hostId: config?.hostId ?? null,
    trustedRootVersion: TufClient.trustedRootVersion(ctx.deps.stateDir) ?? null,
    highestLevel: Math.max(state.highestLevel?.[kernel.id] ?? 0, applied.level),
    quarantined: state.quarantined?.[kernel.id] ?? [],
    attention: state.attention ?? null,
    credentialRevoked: state.revoked ?? null,
    blockingTasks: state.blockingTasks ?? [],
    disabled: disabled ?? null,
    journal: journal ? { op: journal.op, level: journal.level, step: journal.step, at: journal.updatedAt } : null,
    stateWarning: [warning, journalWarning, recorded].filter((w) => w !== undefined).join('; ') || null,
  };
}

/** The applied level's fixes (kind, upstream commits), what its build left out, and the CVEs it fixes live. */
function statusFixes(m: PatchManifest | undefined): Pick<StatusReport, 'fixes' | 'skipped' | 'cves'> {
  if (m === undefined) return { fixes: [], skipped: [], cves: [] };
  const { fixes, skipped } = levelFixesOf(m);
  return {
    fixes: fixes.map((f) => ({ id: f.id, title: f.title, cves: f.cves, kind: f.kind, commits: f.commits })),
    skipped,
    cves: liveFixedCves(m),
  };
}

export interface StatusReport {
  exit: number;
  kernel: { release: string; id: string; buildId: string | null; machine: string };
  effectiveRelease: string;
  appliedLevel: number;
  patchName: string | null;
  inTransition: boolean;
  patches: { name: string; enabled: boolean; transition: boolean }[];
  retiredModules: string[];
  fixes: Pick<LevelFix, 'id' | 'title' | 'cves' | 'kind' | 'commits'>[];
  /** Fixes the applied level's build was asked for but left out, with the reason. */
  skipped: SkippedFix[];
  /** The CVEs the applied level fixes live. */
  cves: string[];
  cachedLevels: number[];
  latestLevel: number | null;
  kernelSupported: boolean | null;
  lastCheckAt: string | null;
  lastCheckAgeSec: number | null;
  checkStale: boolean;
  /** This host's clock minus the server's at the last check-in (null: not known). */
  clockSkewSec: number | null;
  /** The clock differs from the server's, or went back: "check the clock". */
  clockWarning: string | null;
  lastError: { code: string; message: string; at: string } | null;
  lastApply: ApplyResult | null;
  hold: AgentState['hold'] | null;
  server: string | null;
  mirror: string | null;
  hostId: string | null;
  /** Version of the pinned TUF root; null = none usable (updates fail closed). */
  trustedRootVersion: number | null;
  /** The release counter for this kernel build. */
  highestLevel: number;
  quarantined: number[];
  attention: { code: string; message: string; at: string } | null;
  /** The server refused this host's token (push or check-in); re-enrol. */
  credentialRevoked: { at: string; message: string } | null;
  /** Tasks that kept the last transition from finishing. */
  blockingTasks: { pid: number; comm: string }[];
  disabled: KillSwitch | null;
  /** An interrupted change not yet reconciled. */
  journal: { op: string; level: number; step: string; at: string } | null;
  stateWarning: string | null;
}
