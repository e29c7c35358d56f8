import { LivegraftError, type ApplyResult, type KernelIdentity } from '@livegraft/protocol';
import { TRANSITION_TIMEOUT_MS, type KernelOps } from '../kernel/install.ts';
import { ModuleCache } from '../state/cache.ts';
import { ServerClient, type FetchFn } from '../delivery/client.ts';
import type { Clock } from '../lib/clock.ts';
import { disableFilePath, type AgentConfig } from '../state/config.ts';
import { readBootId, readKillSwitch, type KillSwitch } from '../kernel/guards.ts';
import { bootKernelIdentity } from '../kernel/identity.ts';
import { JournalStore, type JournalStep } from '../state/journal.ts';
import type { KernelEventQueue } from '../kernel/kmsg-watch.ts';
import { readApplied, type AppliedPatch } from '../kernel/applied.ts';
import type { ModuleLoader } from '../kernel/loader.ts';
import type { Logger } from '../lib/log.ts';
import { SpaceReserve } from '../state/reserve.ts';
import { StateStore, type AgentState } from '../state/state.ts';
import { LivepatchSysfs } from '../kernel/sysfs.ts';
import { TufClient } from '../delivery/tuf-client.ts';
import { DEFAULT_DELIVERY_LIMITS, type DeliveryLimits, type WriteChunk } from '../delivery/tuf-fetcher.ts';

export const MAX_ERROR_TEXT = 4000;

export interface AgentDeps {
  configPath: string;
  stateDir: string;
  sysRoot: string;
  procRoot: string;
  loader: ModuleLoader;
  clock: Clock;
  log: Logger;
  fetch?: FetchFn;
  /** Overrides the delivery bounds (tests use short ones); the config's come next, then the defaults. */
  deliveryLimits?: Partial<DeliveryLimits>;
  /** Writes staged download bytes (tests inject a full disk). */
  writeChunk?: WriteChunk;
  /** Runs after each journal step is on disk (tests stop the agent there). */
  journalHook?: (step: JournalStep) => void | Promise<void>;
  /** Kernel warnings/oopses the daemon's kernel log follower collected; sent with each check-in. */
  kernelEvents?: KernelEventQueue;
}

/** What a kernel operation did, for humans and for --json. */
export interface OpOutcome {
  summary: string;
  apply?: ApplyResult;
  removed?: string[];
  warnings?: string[];
  disabled?: KillSwitch;
}

export const errorText = (err: unknown): { code: string; message: string } =>
  err instanceof LivegraftError
    ? { code: err.code, message: err.message.slice(0, MAX_ERROR_TEXT) }
    : { code: 'INTERNAL', message: String((err as Error)?.message ?? err).slice(0, MAX_ERROR_TEXT) };

/** The release counter only goes up, except when an operator authorised a downgrade. */
export function raiseHighest(s: AgentState, kernelId: string, level: number): void {
  s.highestLevel = { ...s.highestLevel, [kernelId]: Math.max(s.highestLevel?.[kernelId] ?? 0, level) };
}

/**
 * What state.json records once the kernel runs `level`: the level, when, and
 * how; `resetCounter` (an authorised downgrade) sets the release counter to
 * it, anything else only raises it.
 */
export function recordApplied(
  s: AgentState,
  kernelId: string,
  level: number,
  apply: ApplyResult,
  resetCounter: boolean,
): void {
  s.kernelId = kernelId;
  s.level = level;
  s.appliedAt = apply.at;
  s.lastApply = apply;
  if (resetCounter) s.highestLevel = { ...s.highestLevel, [kernelId]: level };
  else raiseHighest(s, kernelId, level);
}

/**
 * What every operation works with: the injected dependencies and the kernel,
 * delivery and state parts built from them, plus the small reads and
 * best-effort writes the operations share. Holds no operation itself.
 */
export class AgentContext {
  readonly deps: AgentDeps;
  readonly sysfs: LivepatchSysfs;
  readonly cache: ModuleCache;
  readonly store: StateStore;
  readonly journal: JournalStore;
  readonly reserve: SpaceReserve;
  #identity: KernelIdentity | undefined;

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.sysfs = new LivepatchSysfs(deps.sysRoot);
    this.cache = new ModuleCache(deps.stateDir);
    this.store = new StateStore(deps.stateDir);
    this.journal = new JournalStore(deps.stateDir);
    this.reserve = new SpaceReserve(deps.stateDir);
  }

  /** The running kernel, as read once per boot: a live patch cannot change it (see bootKernelIdentity). */
  identity(): KernelIdentity {
    this.#identity ??= bootKernelIdentity(
      { sysRoot: this.deps.sysRoot, procRoot: this.deps.procRoot },
      this.deps.stateDir,
      this.bootId(),
      (m) => this.deps.log.log('warn', m),
    );
    return this.#identity;
  }

  bootId(): string {
    return readBootId(this.deps.procRoot);
  }

  applied(kernel: KernelIdentity): AppliedPatch {
    return readApplied(this.sysfs, kernel);
  }

  killSwitch(config: AgentConfig | undefined): KillSwitch | undefined {
    return readKillSwitch(this.deps.procRoot, disableFilePath(this.deps.configPath, config));
  }

  readState(): AgentState {
    const { state, warning } = this.store.read();
    if (warning !== undefined) this.deps.log.log('warn', warning);
    return state;
  }

  nowIso(): string {
    return new Date(this.deps.clock.now()).toISOString();
  }

  /**
   * State writes on failure paths are best effort: a full disk must not hide
   * the failure being reported behind an ENOSPC from the state file.
   */
  record(fn: (s: AgentState) => void): void {
    try {
      this.store.update(fn);
    } catch (err) {
      this.deps.log.log('warn', `cannot record state in ${this.store.path}: ${(err as Error).message}`);
    }
  }

  recordError(err: unknown, op: 'check' | 'apply' = 'check'): void {
    const { code, message } = errorText(err);
    this.record((s) => {
      s.lastError = { code, message, at: this.nowIso(), op };
    });
  }

  /** Records that the kernel runs `level` for this build, beside the cache (best effort: state.json has it too). */
  markRunning(kernelId: string, level: number): void {
    try {
      this.cache.recordRunning(kernelId, level, this.nowIso());
    } catch (err) {
      this.deps.log.log('warn', `cannot record the running level in ${this.cache.root}: ${(err as Error).message}`);
    }
  }

  kernelOps(config: AgentConfig | undefined): KernelOps {
    return {
      sysfs: this.sysfs,
      loader: this.deps.loader,
      clock: this.deps.clock,
      procRoot: this.deps.procRoot,
      log: this.deps.log,
      transitionTimeoutMs:
        config?.transitionTimeoutSec === undefined ? TRANSITION_TIMEOUT_MS : config.transitionTimeoutSec * 1000,
    };
  }

  #limits(config: AgentConfig | undefined): DeliveryLimits {
    const d = config?.delivery;
    const sec = (v: number | undefined): number | undefined => (v === undefined ? undefined : v * 1000);
    return {
      requestTimeoutMs:
        this.deps.deliveryLimits?.requestTimeoutMs ??
        sec(d?.requestTimeoutSec) ??
        DEFAULT_DELIVERY_LIMITS.requestTimeoutMs,
      totalTimeoutMs:
        this.deps.deliveryLimits?.totalTimeoutMs ?? sec(d?.totalTimeoutSec) ?? DEFAULT_DELIVERY_LIMITS.totalTimeoutMs,
      stallTimeoutMs:
        this.deps.deliveryLimits?.stallTimeoutMs ?? sec(d?.stallTimeoutSec) ?? DEFAULT_DELIVERY_LIMITS.stallTimeoutMs,
      minBytesPerSec:
        this.deps.deliveryLimits?.minBytesPerSec ?? d?.minBytesPerSec ?? DEFAULT_DELIVERY_LIMITS.minBytesPerSec,
    };
  }

  tuf(config: AgentConfig | undefined, baseUrl: string): TufClient {
    return new TufClient({
      stateDir: this.deps.stateDir,
      baseUrl,
      limits: this.#limits(config),
      log: this.deps.log,
      fetch: this.deps.fetch,
      writeChunk: this.deps.writeChunk,
    });
  }

  /** TUF from where the config says: the mirror, else the server. */
  deliveryTuf(config: AgentConfig): TufClient {
    return this.tuf(config, config.mirror ?? config.server);
  }

  client(config: AgentConfig): ServerClient {
    return new ServerClient({ server: config.server, token: config.token, fetch: this.deps.fetch });
  }
}
