import { LivegraftError, type KernelIdentity, type PatchManifest } from '@livegraft/protocol';
import { waitFor, type Clock } from '../lib/clock.ts';
import type { ModuleLoader } from './loader.ts';
import type { Logger } from '../lib/log.ts';
import { MODULE_PREFIX, type LivepatchSysfs } from './sysfs.ts';
import { collectStalledTasks, formatStalledTasks } from './tasks.ts';
import { verifyModuleFile } from './verify.ts';

/** insmod returns after klp_enable_patch(), so the directory is normally there at once. */
export const PATCH_DIR_APPEAR_TIMEOUT_MS = 10_000;
/**
 * Spans five of the kernel's 15 s fake-signal rounds (kpatch waits 15 s,
 * signals, then 60 s more) before we give up and reverse.
 */
export const TRANSITION_TIMEOUT_MS = 75_000;
/** For a reverse or an unpatch transition to finish and the sysfs dir to vanish. */
export const DISABLE_TIMEOUT_MS = 60_000;
/** For a retired module's last reference to drop before rmmod. */
export const REFCNT_ZERO_TIMEOUT_MS = 10_000;
/** EBUSY while another transition runs is the one transient load error (kpatch retries it too). */
export const LOAD_BUSY_ATTEMPTS = 5;
export const LOAD_BUSY_RETRY_MS = 2_000;

export interface KernelOps {
  sysfs: LivepatchSysfs;
  loader: ModuleLoader;
  clock: Clock;
  procRoot: string;
  log: Logger;
  transitionTimeoutMs: number;
}

/**
 * The steps of one kernel change, in order: intent (about to insmod) ->
 * loaded (insmod returned) -> transitioned (every task switched) ->
 * old-removed (replaced modules rmmod'ed).
 */
export type InstallStep = 'intent' | 'loaded' | 'transitioned' | 'old-removed';

/** Called when a step is reached; the caller persists it (the journal) before the procedure moves on. */
export type StepHook = (step: InstallStep) => void | Promise<void>;

export interface InstallOutcome {
  /** True when the kernel already had this exact patch enabled. */
  alreadyApplied: boolean;
  /** Retired modules removed after the atomic replace. */
  removed: string[];
  warnings: string[];
}

function runningTransitions(sysfs: LivepatchSysfs): string[] {
  return sysfs
    .listPatches()
    .filter((p) => p.transition)
    .map((p) => p.name);
}

/** Waits for the module's refcnt to reach 0, then rmmods it. */
export async function removeModule(k: KernelOps, name: string): Promise<void> {
  if (!k.sysfs.moduleLoaded(name)) return;
  const free = await waitFor(k.clock, () => (k.sysfs.refcnt(name) ?? 0) === 0, REFCNT_ZERO_TIMEOUT_MS);
  if (!free) {
    throw new LivegraftError(
      'MODULE_IN_USE',
      `${name} still has refcnt ${k.sysfs.refcnt(name)} after ${REFCNT_ZERO_TIMEOUT_MS} ms; not removing it`,
    );
  }
  await k.loader.unload(name);
  k.log.log('info', 'module removed', { module: name });
}

/** rmmod every livegraft module the kernel no longer uses, except `keep`. Failures become warnings. */
export async function removeRetiredModules(
  k: KernelOps,
  keep?: string,
): Promise<{ removed: string[]; warnings: string[] }> {
  const removed: string[] = [];
  const warnings: string[] = [];
  for (const name of k.sysfs.retiredModules()) {
    if (name === keep) continue;
    try {
      await removeModule(k, name);
      removed.push(name);
    } catch (err) {
      warnings.push(`could not remove retired module ${name}: ${(err as Error).message}`);
    }
  }
  return { removed, warnings };
}

async function loadWithBusyRetry(k: KernelOps, modulePath: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await k.loader.load(modulePath);
      return;
    } catch (err) {
      // Only EBUSY while some transition runs is transient; EBUSY without one is an ftrace/kprobe conflict.
      const transient =
        err instanceof LivegraftError &&
        err.code === 'KERNEL_LOAD_EBUSY' &&
        runningTransitions(k.sysfs).length > 0 &&
        attempt < LOAD_BUSY_ATTEMPTS;
      if (!transient) throw err;
      k.log.log('warn', 'load refused while a transition runs; retrying', { attempt });
      await k.clock.sleep(LOAD_BUSY_RETRY_MS);
    }
  }
}

/**
 * Reverses a stalled transition and removes the module, so the host is back
 * where it was. Never writes `force`: forcing can leave tasks running old code
 * and makes the module unremovable until reboot.
 */
async function reverseStalled(k: KernelOps, name: string): Promise<never> {
  const tasks = collectStalledTasks(k.procRoot);
  k.log.log('warn', 'transition stalled; reversing', { module: name, tasks: tasks.map((t) => t.pid) });
  k.sysfs.writeEnabled(name, false);
  const gone = await waitFor(k.clock, () => !k.sysfs.patchExists(name), DISABLE_TIMEOUT_MS);
  if (!gone) {
    throw new LivegraftError(
      'TRANSITION_REVERSE_STALLED',
      `${name}: the transition did not finish within ${k.transitionTimeoutMs} ms and reversing it did not finish ` +
        `within ${DISABLE_TIMEOUT_MS} ms either. Left as is; plan a reboot. Blocking tasks:\n${formatStalledTasks(tasks)}`,
      { details: { tasks } },
    );
  }
  let removal = '';
  try {
    await removeModule(k, name);
  } catch (err) {
    removal = ` (module not removed: ${(err as Error).message})`;
  }
  throw new LivegraftError(
    'TRANSITION_STALLED',
    `${name}: the patch transition did not finish within ${k.transitionTimeoutMs} ms; it was reversed and the ` +
      `module removed${removal}. The previous state is back. Tasks that had not switched:\n${formatStalledTasks(tasks)}`,
    { details: { tasks } },
  );
}

/**
 * Applies one verified cumulative module. On success this patch is the only
 * enabled livegraft patch; on failure the kernel is as it was before.
 */
export async function installPatch(
  k: KernelOps,
  manifest: PatchManifest,
  modulePath: string,
  kernel: KernelIdentity,
  onStep: StepHook = () => undefined,
): Promise<InstallOutcome> {
  // (1) Nothing reaches the kernel unverified, even from our own cache.
  verifyModuleFile(manifest, modulePath, kernel);
  if (!k.sysfs.supported()) {
    throw new LivegraftError(
      'LIVEPATCH_UNSUPPORTED',
      `${k.sysfs.livepatchDir} does not exist: this kernel lacks CONFIG_LIVEPATCH`,
    );
  }
  const name = manifest.name;
  const current = k.sysfs.readPatch(name);
  if (current?.enabled === true && !current.transition) {
    const { removed, warnings } = await removeRetiredModules(k, name);
    return { alreadyApplied: true, removed, warnings };
  }
  if (current?.enabled !== true) {
    if (current !== undefined) {
      // Our name, disabled (being unpatched or just finished): let its dir vanish, then it is a stale module.
      const gone = await waitFor(k.clock, () => !k.sysfs.patchExists(name), DISABLE_TIMEOUT_MS);
      if (!gone) {
        throw new LivegraftError(
          'TRANSITION_IN_PROGRESS',
          `${name} is disabled but its sysfs dir did not go away within ${DISABLE_TIMEOUT_MS} ms`,
        );
      }
    }
    // Only one transition may run at a time; let a running one finish first.
    const busy = await waitFor(k.clock, () => runningTransitions(k.sysfs).length === 0, k.transitionTimeoutMs);
    if (!busy) {
      throw new LivegraftError(
        'TRANSITION_IN_PROGRESS',
        `another livepatch transition (${runningTransitions(k.sysfs).join(', ')}) did not finish within ${k.transitionTimeoutMs} ms`,
      );
    }
    // (2) A module of this name loaded without an enabled patch is a leftover (replaced or disabled).
    if (k.sysfs.moduleLoaded(name)) {
      k.log.log('info', 'removing stale module before load', { module: name });
      await removeModule(k, name);
    }
    // (3) The intent is on disk before the kernel is touched.
    await onStep('intent');
    await loadWithBusyRetry(k, modulePath);
    k.log.log('info', 'module loaded', { module: name });
    await onStep('loaded');
    // (4)
    const appeared = await waitFor(k.clock, () => k.sysfs.patchExists(name), PATCH_DIR_APPEAR_TIMEOUT_MS);
    if (!appeared) {
      await removeModule(k, name).catch(() => undefined);
      throw new LivegraftError(
        'PATCH_NOT_REGISTERED',
        `${name} loaded but ${k.sysfs.patchDir(name)} did not appear within ${PATCH_DIR_APPEAR_TIMEOUT_MS} ms`,
      );
    }
  } else {
    // Enabled and in transition: our own patching left running by an interrupted agent; resume waiting.
    k.log.log('info', 'resuming wait for a running transition', { module: name });
  }
  return finishInstall(k, name, onStep);
}

/**
 * The second half of an install, from a loaded module on: wait for the
 * transition (reversing it if it stalls), then rmmod the replaced modules.
 * Also what a restarted agent runs to finish an install it was killed in.
 */
export async function finishInstall(k: KernelOps, name: string, onStep: StepHook): Promise<InstallOutcome> {
  const settled = await waitFor(k.clock, () => k.sysfs.readPatch(name)?.transition === false, k.transitionTimeoutMs);
  if (!settled) await reverseStalled(k, name);
  // (5)
  const after = k.sysfs.readPatch(name);
  if (after?.enabled !== true) {
    await removeModule(k, name).catch(() => undefined);
    throw new LivegraftError('PATCH_NOT_ENABLED', `${name} finished its transition but enabled is not 1`);
  }
  await onStep('transitioned');
  // (6) Atomic replace disabled the previous patches; their modules stay loaded until rmmod.
  const { removed, warnings } = await removeRetiredModules(k, name);
  await onStep('old-removed');
  return { alreadyApplied: false, removed, warnings };
}

/** Disables every livegraft patch, one transition at a time, then removes their modules. */
export async function uninstallAll(k: KernelOps): Promise<{ disabled: string[]; removed: string[] }> {
  const disabled: string[] = [];
  const ours = (): string[] => k.sysfs.listPatchNames().filter((n) => n.startsWith(MODULE_PREFIX));
  for (const name of ours()) {
    const p = k.sysfs.readPatch(name);
    if (p === undefined) continue;
    if (p.transition) {
      const done = await waitFor(k.clock, () => k.sysfs.readPatch(name)?.transition !== true, k.transitionTimeoutMs);
      if (!done) {
        throw new LivegraftError(
          'TRANSITION_IN_PROGRESS',
          `${name} is still in transition after ${k.transitionTimeoutMs} ms`,
        );
      }
    }
    if (k.sysfs.readPatch(name)?.enabled === true) {
      k.sysfs.writeEnabled(name, false);
      disabled.push(name);
    }
    const gone = await waitFor(k.clock, () => !k.sysfs.patchExists(name), DISABLE_TIMEOUT_MS);
    if (!gone) {
      throw new LivegraftError(
        'UNLOAD_STALLED',
        `${name}: the unpatch transition did not finish within ${DISABLE_TIMEOUT_MS} ms. Tasks that had not switched:\n` +
          formatStalledTasks(collectStalledTasks(k.procRoot, 0)),
      );
    }
  }
  const removed: string[] = [];
  for (const name of k.sysfs.listModules()) {
    await removeModule(k, name);
    removed.push(name);
  }
  return { disabled, removed };
}
