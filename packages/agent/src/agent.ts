import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import os from 'node:os';
import {
  LivegraftError,
  StatusExit,
  effectiveRelease,
  type ApplyResult,
  type CheckinRequest,
  type CheckinResponse,
  type HostState,
  type KernelIdentity,
  type PatchManifest,
  manifestValidator,
  parseJson,
} from '@livegraft/protocol';
import { installPatch, TRANSITION_TIMEOUT_MS, uninstallAll, type KernelOps } from './apply.ts';
import { ModuleCache, type CachedModule } from './cache.ts';
import { ServerClient, isTransient, type FetchFn } from './client.ts';
import type { Clock } from './clock.ts';
import { loadConfig, loadConfigIfPresent, writeConfig, type AgentConfig } from './config.ts';
import { readKernelIdentity } from './identity.ts';
import { readApplied, readUptimeSec, type AppliedPatch } from './kernel-state.ts';
import type { ModuleLoader } from './loader.ts';
import { acquireLock } from './lock.ts';
import type { Logger } from './log.ts';
import { StateStore, type AgentState } from './state.ts';
import { LivepatchSysfs } from './sysfs.ts';
import { verifyModuleFile } from './verify.ts';
import { AGENT_VERSION } from './version.ts';

/** Used until the server has told us its interval. */
export const DEFAULT_CHECKIN_INTERVAL_SEC = 3600;
const MAX_ERROR_TEXT = 4000;
/** Apply failures that may clear up by themselves; any other failure blocks that module for the daemon. */
const RETRY_LATER_CODES: ReadonlySet<string> = new Set(['TRANSITION_IN_PROGRESS', 'BUSY', 'KERNEL_LOAD_TIMEOUT']);

export interface AgentDeps {
  configPath: string;
  stateDir: string;
  sysRoot: string;
  procRoot: string;
  loader: ModuleLoader;
  clock: Clock;
  log: Logger;
  fetch?: FetchFn;
}

export interface CheckOutcome {
  exit: number;
  kernel: KernelIdentity;
  appliedLevel: number;
  kernelSupported: boolean;
  latestLevel: number;
  latest: PatchManifest | undefined;
  checkinIntervalSec: number;
}

export interface UpdateOutcome {
  exit: number;
  /** What happened, for humans. */
  summary: string;
  check: CheckOutcome;
  apply?: ApplyResult;
  removed?: string[];
  warnings?: string[];
}

export interface OpOutcome {
  summary: string;
  apply?: ApplyResult;
  removed?: string[];
  warnings?: string[];
}

/** A manifest lists at most 500 fixes; anything near this size is not one. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

function readManifestFile(path: string): PatchManifest {
  let text: string;
  try {
    if (statSync(path).size > MAX_MANIFEST_BYTES) {
      throw new LivegraftError('MANIFEST_INVALID', `${path} is larger than ${MAX_MANIFEST_BYTES} bytes`);
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof LivegraftError) throw err;
    throw new LivegraftError('MANIFEST_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseJson(manifestValidator, text, `manifest ${path}`);
}

/** kcarectl --status semantics, shared by check (online) and status (offline). */
export function statusExitFor(kernelSupported: boolean, latestLevel: number, appliedLevel: number): number {
  if (!kernelSupported) return StatusExit.KERNEL_UNSUPPORTED;
  if (latestLevel > appliedLevel) return StatusExit.UPDATE_AVAILABLE;
  if (appliedLevel === 0) return StatusExit.NO_PATCH_APPLIED;
  return StatusExit.UP_TO_DATE;
}

const errorText = (err: unknown): { code: string; message: string } =>
  err instanceof LivegraftError
    ? { code: err.code, message: err.message.slice(0, MAX_ERROR_TEXT) }
    : { code: 'INTERNAL', message: String((err as Error)?.message ?? err).slice(0, MAX_ERROR_TEXT) };

/**
 * The agent's operations. Each mutating one takes the host lock, reads the
 * truth from sysfs, acts, and records what happened in state.json.
 */
export class Agent {
  readonly deps: AgentDeps;
  readonly sysfs: LivepatchSysfs;
  readonly cache: ModuleCache;
  readonly store: StateStore;

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.sysfs = new LivepatchSysfs(deps.sysRoot);
    this.cache = new ModuleCache(deps.stateDir);
    this.store = new StateStore(deps.stateDir);
  }

  identity(): KernelIdentity {
    return readKernelIdentity({ sysRoot: this.deps.sysRoot, procRoot: this.deps.procRoot });
  }

  applied(kernel: KernelIdentity): AppliedPatch {
    return readApplied(this.sysfs, kernel);
  }

  #readState(): AgentState {
    const { state, warning } = this.store.read();
    if (warning !== undefined) this.deps.log.log('warn', warning);
    return state;
  }

  #kernelOps(config: AgentConfig | undefined): KernelOps {
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

  async #locked<T>(fn: () => Promise<T>): Promise<T> {
    const release = await acquireLock(join(this.deps.stateDir, 'agent.lock'), this.deps.clock);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #nowIso(): string {
    return new Date(this.deps.clock.now()).toISOString();
  }

  #client(config: AgentConfig): ServerClient {
    return new ServerClient({ server: config.server, token: config.token, fetch: this.deps.fetch });
  }

  async enroll(opts: { server: string; key: string; hostname?: string }): Promise<AgentConfig> {
    const kernel = this.identity();
    const client = new ServerClient({ server: opts.server, fetch: this.deps.fetch });
    const res = await client.enroll({
      registrationKey: opts.key,
      hostname: (opts.hostname ?? os.hostname()).slice(0, 253),
      kernel,
      agentVersion: AGENT_VERSION,
    });
    const config: AgentConfig = { server: opts.server.replace(/\/+$/, ''), hostId: res.hostId, token: res.token };
    writeConfig(this.deps.configPath, config);
    return config;
  }

  #hostState(state: AgentState, applied: AppliedPatch, kernel: KernelIdentity): HostState {
    if (applied.inTransition || applied.retired.length > 0) return 'needs-attention';
    if (state.lastError?.code === 'TRANSITION_REVERSE_STALLED') return 'needs-attention';
    if (state.lastError) return 'error';
    if (state.lastCheck?.kernelId === kernel.id && !state.lastCheck.kernelSupported) return 'unsupported';
    return applied.level > 0 ? 'patched' : 'unpatched';
  }

  #recordError(err: unknown): void {
    const { code, message } = errorText(err);
    this.store.update((s) => {
      s.lastError = { code, message, at: this.#nowIso(), op: 'check' };
    });
  }

  #checkinRequest(kernel: KernelIdentity, applied: AppliedPatch, state: AgentState): CheckinRequest {
    const req: CheckinRequest = {
      kernel,
      appliedLevel: applied.level,
      state: this.#hostState(state, applied, kernel),
      agentVersion: AGENT_VERSION,
      uptimeSec: readUptimeSec(this.deps.procRoot),
    };
    if (state.lastError) req.lastError = `${state.lastError.code}: ${state.lastError.message}`.slice(0, MAX_ERROR_TEXT);
    if (state.lastApply) req.lastApply = state.lastApply;
    return req;
  }

  /** The check-in: reports our state (it is the heartbeat too) and learns what is available. */
  async #check(config: AgentConfig): Promise<CheckOutcome> {
    const kernel = this.identity();
    const applied = this.applied(kernel);
    const state = this.#readState();
    const req = this.#checkinRequest(kernel, applied, state);
    let res: CheckinResponse;
    try {
      res = await this.#client(config).checkin(req);
    } catch (err) {
      if (!(err instanceof LivegraftError && err.code === 'KERNEL_UNSUPPORTED')) {
        this.#recordError(err);
        throw err;
      }
      res = {
        kernelSupported: false,
        latest: null,
        checkinIntervalSec: state.lastCheck?.checkinIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC,
      };
    }
    let latest = res.latest?.manifest;
    if (res.latest !== null && (res.latest.kernelId !== kernel.id || res.latest.manifest.level !== res.latest.level)) {
      const err = new LivegraftError(
        'SERVER_BAD_ANSWER',
        `server offered level ${res.latest.level} for kernel ${res.latest.kernelId.slice(0, 12)}, ` +
          `this host is ${kernel.id.slice(0, 12)}; ignoring it`,
      );
      this.#recordError(err);
      throw err;
    }
    const latestLevel = res.kernelSupported && latest !== undefined ? latest.level : 0;
    if (!res.kernelSupported) latest = undefined;
    this.store.update((s) => {
      s.lastCheckAt = this.#nowIso();
      s.lastCheck = {
        kernelId: kernel.id,
        kernelSupported: res.kernelSupported,
        latestLevel,
        checkinIntervalSec: res.checkinIntervalSec,
      };
      // A successful round trip clears check errors; apply errors stay until the next apply.
      if (s.lastError?.op === 'check') s.lastError = null;
    });
    return {
      exit: statusExitFor(res.kernelSupported, latestLevel, applied.level),
      kernel,
      appliedLevel: applied.level,
      kernelSupported: res.kernelSupported,
      latestLevel,
      latest,
      checkinIntervalSec: res.checkinIntervalSec,
    };
  }

  /** A best-effort check-in that changes no local state; used right after an apply. */
  async #report(config: AgentConfig): Promise<void> {
    try {
      const kernel = this.identity();
      const applied = this.applied(kernel);
      const state = this.#readState();
      await this.#client(config).checkin(this.#checkinRequest(kernel, applied, state));
    } catch (err) {
      this.deps.log.log('warn', `could not report the result to the server: ${(err as Error).message}`);
    }
  }

  async check(): Promise<CheckOutcome> {
    const config = loadConfig(this.deps.configPath);
    return this.#locked(() => this.#check(config));
  }

  /**
   * Puts one cached-or-fetched module in place and records the ApplyResult.
   * `obtain` runs inside the timing so download and verification failures are reported as the apply's result.
   */
  async #apply(
    action: ApplyResult['action'],
    config: AgentConfig | undefined,
    kernel: KernelIdentity,
    target: { level: number; sha256: string },
    obtain: () => Promise<CachedModule>,
  ): Promise<OpOutcome> {
    const toLevel = target.level;
    const sha256 = target.sha256;
    const started = this.deps.clock.now();
    const fromLevel = this.applied(kernel).level;
    const result = (ok: boolean, extra: Partial<ApplyResult> = {}): ApplyResult => ({
      action,
      fromLevel,
      toLevel,
      ok,
      durationMs: Math.max(0, this.deps.clock.now() - started),
      at: this.#nowIso(),
      ...extra,
    });
    try {
      const cached = await obtain();
      const outcome = await installPatch(this.#kernelOps(config), cached.manifest, cached.modulePath, kernel);
      const warnings = outcome.warnings;
      const apply = result(true, warnings.length > 0 ? { message: warnings.join('\n').slice(0, 4000) } : {});
      this.store.update((s) => {
        s.kernelId = kernel.id;
        s.level = toLevel;
        s.appliedAt = apply.at;
        s.lastApply = apply;
        s.lastError = null;
        if (s.blocked?.level === toLevel) s.blocked = null;
      });
      for (const w of warnings) this.deps.log.log('warn', w);
      const summary = outcome.alreadyApplied
        ? `level ${toLevel} was already applied`
        : `${action === 'rollback' ? 'rolled back' : 'applied'} level ${toLevel} (was ${fromLevel}) in ${apply.durationMs} ms`;
      this.deps.log.log('info', summary, { action, fromLevel, toLevel, removed: outcome.removed });
      return { summary, apply, removed: outcome.removed, warnings };
    } catch (err) {
      const { code, message } = errorText(err);
      const apply = result(false, { code: code.slice(0, 64), message });
      this.store.update((s) => {
        s.lastApply = apply;
        s.lastError = { code, message, at: apply.at, op: 'apply' };
        if (!isTransient(err) && !RETRY_LATER_CODES.has(code)) {
          s.blocked = { level: toLevel, sha256, code, at: apply.at };
        }
      });
      this.deps.log.log('error', `${action} to level ${toLevel} failed`, { code, message });
      throw err;
    }
  }

  /**
   * check, then fetch and apply the newest level if it is above the applied one.
   * Never goes down on its own. `manual` (the CLI) clears a hold and retries a
   * blocked module; the daemon respects both.
   */
  async update(opts: { manual: boolean }): Promise<UpdateOutcome> {
    const config = loadConfig(this.deps.configPath);
    return this.#locked(async () => {
      const check = await this.#check(config);
      const state = this.#readState();
      if (opts.manual && (state.hold || state.blocked)) {
        this.store.update((s) => {
          s.hold = null;
          s.blocked = null;
        });
      }
      const latest = check.latest;
      if (!check.kernelSupported) {
        return {
          exit: StatusExit.KERNEL_UNSUPPORTED,
          summary: `kernel ${check.kernel.release} is not supported by the server`,
          check,
        };
      }
      if (latest === undefined || latest.level <= check.appliedLevel) {
        const summary =
          latest === undefined
            ? check.appliedLevel === 0
              ? 'no patches available for this kernel'
              : `up to date at level ${check.appliedLevel}`
            : latest.level === check.appliedLevel
              ? `up to date at level ${check.appliedLevel}`
              : `server offers level ${latest.level}, below the applied ${check.appliedLevel}; not downgrading`;
        return { exit: 0, summary, check };
      }
      if (!opts.manual && state.hold && latest.level > state.hold.maxLevel) {
        const summary = `level ${latest.level} available but held at ${state.hold.maxLevel} since ${state.hold.reason} (${state.hold.at}); run "livegraft-agent update" to resume`;
        return { exit: 0, summary, check };
      }
      if (!opts.manual && state.blocked?.level === latest.level && state.blocked.sha256 === latest.module.sha256) {
        const summary = `level ${latest.level} failed before with ${state.blocked.code}; not retrying automatically (run "livegraft-agent update")`;
        return { exit: StatusExit.ERROR, summary, check };
      }
      const kernel = check.kernel;
      const client = this.#client(config);
      try {
        const op = await this.#apply(
          'apply',
          config,
          kernel,
          { level: latest.level, sha256: latest.module.sha256 },
          () => this.cache.ensure(latest, kernel, (tmp, max) => client.downloadModule(latest.module.sha256, tmp, max)),
        );
        return { exit: 0, ...op, check };
      } finally {
        // Tell the server the outcome now rather than at the next interval.
        await this.#report(config);
      }
    });
  }

  /**
   * Applies a module from a local manifest (air-gapped hosts, or a module
   * fetched by other means). The module file named in the manifest must sit
   * beside it. The given file itself is verified first, then cached, then
   * applied; going below the applied level needs `allowDowngrade`.
   */
  async applyLocal(manifestPath: string, opts: { allowDowngrade?: boolean } = {}): Promise<OpOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    const manifest = readManifestFile(manifestPath);
    const modulePath = join(dirname(manifestPath), manifest.module.file);
    return this.#locked(async () => {
      const kernel = this.identity();
      const applied = this.applied(kernel).level;
      const target = { level: manifest.level, sha256: manifest.module.sha256 };
      return this.#apply('apply', config, kernel, target, async () => {
        verifyModuleFile(manifest, modulePath, kernel);
        const cached = await this.cache.ensure(manifest, kernel, (tmp) => {
          copyFileSync(modulePath, tmp);
          return Promise.resolve();
        });
        if (manifest.level < applied && opts.allowDowngrade !== true) {
          throw new LivegraftError(
            'DOWNGRADE_REFUSED',
            `${manifestPath} is level ${manifest.level}, below the applied level ${applied}; ` +
              'use rollback, or pass --allow-downgrade',
          );
        }
        return cached;
      });
    });
  }

  async rollback(to?: number): Promise<OpOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    return this.#locked(async () => {
      const kernel = this.identity();
      const applied = this.applied(kernel).level;
      const levels = this.cache.levels(kernel.id);
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
      const cached = this.cache.get(kernel.id, target);
      if (cached === undefined)
        throw new LivegraftError('ROLLBACK_TARGET_MISSING', `level ${target} vanished from the cache`);
      const op = await this.#apply(
        'rollback',
        config,
        kernel,
        { level: target, sha256: cached.manifest.module.sha256 },
        () => Promise.resolve(cached),
      );
      this.store.update((s) => {
        s.hold = { maxLevel: target, reason: 'rollback', at: this.#nowIso() };
      });
      return op;
    });
  }

  async unload(): Promise<OpOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    return this.#locked(async () => {
      const kernel = this.identity();
      const fromLevel = this.applied(kernel).level;
      const started = this.deps.clock.now();
      const mk = (ok: boolean, extra: Partial<ApplyResult> = {}): ApplyResult => ({
        action: 'unload',
        fromLevel,
        toLevel: 0,
        ok,
        durationMs: Math.max(0, this.deps.clock.now() - started),
        at: this.#nowIso(),
        ...extra,
      });
      try {
        const { disabled, removed } = await uninstallAll(this.#kernelOps(config));
        const apply = mk(true);
        this.store.update((s) => {
          s.kernelId = kernel.id;
          s.level = 0;
          s.appliedAt = null;
          s.lastApply = apply;
          s.lastError = null;
          s.hold = { maxLevel: 0, reason: 'unload', at: apply.at };
        });
        const summary =
          disabled.length + removed.length === 0
            ? 'no livegraft patches were loaded'
            : `disabled ${disabled.join(', ') || 'nothing'}; removed ${removed.join(', ') || 'nothing'}`;
        return { summary, apply, removed };
      } catch (err) {
        const { code, message } = errorText(err);
        const apply = mk(false, { code: code.slice(0, 64), message });
        this.store.update((s) => {
          s.lastApply = apply;
          s.lastError = { code, message, at: apply.at, op: 'apply' };
        });
        throw err;
      }
    });
  }

  /** Re-applies the recorded level from the local cache, offline. For a boot-time unit. */
  async boot(): Promise<OpOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    return this.#locked(async () => {
      const kernel = this.identity();
      const state = this.#readState();
      if (state.kernelId !== kernel.id || state.level === 0) {
        return { summary: 'nothing recorded to re-apply for this kernel' };
      }
      const applied = this.applied(kernel).level;
      if (applied === state.level) return { summary: `level ${applied} is already applied` };
      if (applied > 0)
        return { summary: `kernel already runs level ${applied}; leaving it (state says ${state.level})` };
      const cached = this.cache.get(kernel.id, state.level);
      const target = { level: state.level, sha256: cached?.manifest.module.sha256 ?? '' };
      return this.#apply('boot', config, kernel, target, () => {
        if (cached === undefined) {
          return Promise.reject(
            new LivegraftError('CACHE_MISSING', `level ${state.level} for this kernel is not in ${this.cache.root}`),
          );
        }
        return Promise.resolve(cached);
      });
    });
  }

  status(): StatusReport {
    const config = (() => {
      try {
        return loadConfigIfPresent(this.deps.configPath);
      } catch (err) {
        this.deps.log.log('warn', (err as Error).message);
        return undefined;
      }
    })();
    const kernel = this.identity();
    const applied = this.applied(kernel);
    const { state, warning } = this.store.read();
    const cachedLevels = this.cache.levels(kernel.id);
    const manifest = applied.level > 0 ? this.cache.get(kernel.id, applied.level)?.manifest : undefined;
    const lastCheck = state.lastCheck?.kernelId === kernel.id ? state.lastCheck : null;
    const now = this.deps.clock.now();
    const lastCheckAgeSec =
      state.lastCheckAt && lastCheck ? Math.max(0, Math.round((now - Date.parse(state.lastCheckAt)) / 1000)) : null;
    const interval = config?.checkinIntervalSec ?? lastCheck?.checkinIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC;
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
      fixes: manifest?.fixes.map((f) => ({ id: f.id, title: f.title, cves: f.cves })) ?? [],
      cves: manifest?.cves ?? [],
      cachedLevels,
      latestLevel: lastCheck?.latestLevel ?? null,
      kernelSupported: lastCheck?.kernelSupported ?? null,
      lastCheckAt: lastCheck ? (state.lastCheckAt ?? null) : null,
      lastCheckAgeSec,
      checkStale: lastCheckAgeSec === null || lastCheckAgeSec > 2 * interval,
      lastError: state.lastError ?? null,
      lastApply: state.lastApply ?? null,
      hold: state.hold ?? null,
      server: config?.server ?? null,
      hostId: config?.hostId ?? null,
      stateWarning: warning ?? null,
    };
  }
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
  fixes: { id: string; title: string; cves: string[] }[];
  cves: string[];
  cachedLevels: number[];
  latestLevel: number | null;
  kernelSupported: boolean | null;
  lastCheckAt: string | null;
  lastCheckAgeSec: number | null;
  checkStale: boolean;
  lastError: { code: string; message: string; at: string } | null;
  lastApply: ApplyResult | null;
  hold: AgentState['hold'] | null;
  server: string | null;
  hostId: string | null;
  stateWarning: string | null;
}
