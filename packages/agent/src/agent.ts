import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import {
  DesiredLevel,
  LivegraftError,
  type DesiredEvent,
  StatusExit,
  effectiveRelease,
  levelFixesOf,
  liveFixedCves,
  moduleNameFor,
  tufTargetPath,
  validator,
  type ApplyResult,
  type CheckinRequest,
  type CheckinResponse,
  type HostState,
  type KernelIdentity,
  type LevelFix,
  type PatchManifest,
  type UserspaceDesired,
  type SkippedFix,
  type PatchState as WirePatchState,
  manifestValidator,
  parseJson,
  clockSkewSec,
  humanDuration,
  skewWarning,
} from '@livegraft/protocol';
import {
  finishInstall,
  installPatch,
  removeModule,
  removeRetiredModules,
  TRANSITION_TIMEOUT_MS,
  DISABLE_TIMEOUT_MS,
  uninstallAll,
  type KernelOps,
  type StepHook,
} from './apply.ts';
import { ModuleCache, type CachedModule } from './cache.ts';
import { ServerClient, isTransient, type FetchFn } from './client.ts';
import { waitFor, type Clock } from './clock.ts';
import { disableFilePath, loadConfig, loadConfigIfPresent, writeConfig, type AgentConfig } from './config.ts';
import { checkEnrolTransport, parseRootSha256, registrableHostname, resolvePinnedRoot, type RootPin } from './enrol.ts';
import { readBootId, readKillSwitch, type KillSwitch } from './guards.ts';
import { bootKernelIdentity } from './identity.ts';
import { JournalStore, type JournalEntry, type JournalStep } from './journal.ts';
import type { KernelEventQueue } from './kmsg-watch.ts';
import { readApplied, readUptimeSec, type AppliedPatch } from './kernel-state.ts';
import type { ModuleLoader } from './loader.ts';
import { acquireLock } from './lock.ts';
import type { Logger } from './log.ts';
import { scannerView, writeScannerFiles } from './scanner.ts';
import { SpaceReserve } from './reserve.ts';
import { asStateIoError, errnoOf, stateIoError } from './state-io.ts';
import { StateStore, type AgentState } from './state.ts';
import { LivepatchSysfs } from './sysfs.ts';
import { TufClient, type TufSession } from './tuf-client.ts';
import { DEFAULT_DELIVERY_LIMITS, type DeliveryLimits, type WriteChunk } from './tuf-fetcher.ts';
import { verifyManifestTarget, verifyModuleFile } from './verify.ts';
import { userspaceCheckinReport } from './userspace/cli.ts';
import { helperPath } from './userspace/native.ts';
import { syncUserspace } from './userspace/sync.ts';
import { AGENT_VERSION } from './version.ts';

/** A last check this far in the future is a clock set back, not rounding. */
const CLOCK_BACK_TOLERANCE_SEC = 60;
/** Used until the server has told us its interval. */
export const DEFAULT_CHECKIN_INTERVAL_SEC = 3600;
const MAX_ERROR_TEXT = 4000;
/** A root file given on the command line; real roots are a few KB. */
const MAX_ROOT_FILE_BYTES = 512_000;
/** Apply failures that may clear up by themselves. */
/** Load failures that are about the kernel's module policy, not the module: no load is retried this boot. */
const KERNEL_POLICY_CODES: ReadonlySet<string> = new Set(['KERNEL_REJECTED_SIGNATURE']);
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
const desiredValidator = validator(DesiredLevel, 'desired level in the check-in answer');

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

export interface CheckOutcome {
  exit: number;
  kernel: KernelIdentity;
  appliedLevel: number;
  kernelSupported: boolean;
  latestLevel: number;
  latest: PatchManifest | undefined;
  /** What the server wants this host to run, when it says so. */
  desired: DesiredLevel | undefined;
  checkinIntervalSec: number;
  /** The user-space level the server wants per library build-id (a check-in's answer; not a pushed event's). */
  userspace?: UserspaceDesired[];
}

export interface UpdateOutcome {
  exit: number;
  /** What happened, for humans. */
  summary: string;
  check?: CheckOutcome;
  apply?: ApplyResult;
  removed?: string[];
  warnings?: string[];
  disabled?: KillSwitch;
}

export interface OpOutcome {
  summary: string;
  apply?: ApplyResult;
  removed?: string[];
  warnings?: string[];
  disabled?: KillSwitch;
}

/** A manifest lists at most 500 fixes; anything near this size is not one. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

function readBoundedFile(path: string, max: number, code: string, what: string): Buffer {
  try {
    if (statSync(path).size > max) throw new LivegraftError(code, `${what} ${path} is larger than ${max} bytes`);
    return readFileSync(path);
  } catch (err) {
    if (err instanceof LivegraftError) throw err;
    throw new LivegraftError(code, `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

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

/** The server answered 401 to a host token: it was revoked (or the host deleted). */
export function isRevocation(err: unknown): err is LivegraftError {
  return err instanceof LivegraftError && err.details?.['status'] === 401;
}

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

const errorText = (err: unknown): { code: string; message: string } =>
  err instanceof LivegraftError
    ? { code: err.code, message: err.message.slice(0, MAX_ERROR_TEXT) }
    : { code: 'INTERNAL', message: String((err as Error)?.message ?? err).slice(0, MAX_ERROR_TEXT) };

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
 * The agent's operations. Each mutating one takes the host lock, reconciles
 * an interrupted change with sysfs, reads the truth from sysfs, acts, and
 * records what happened in state.json.
 */
export class Agent {
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
      readBootId(this.deps.procRoot),
      (m) => this.deps.log.log('warn', m),
    );
    return this.#identity;
  }

  applied(kernel: KernelIdentity): AppliedPatch {
    return readApplied(this.sysfs, kernel);
  }

  killSwitch(config: AgentConfig | undefined): KillSwitch | undefined {
    return readKillSwitch(this.deps.procRoot, disableFilePath(this.deps.configPath, config));
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

  #tuf(config: AgentConfig | undefined, baseUrl: string): TufClient {
    return new TufClient({
      stateDir: this.deps.stateDir,
      baseUrl,
      limits: this.#limits(config),
      log: this.deps.log,
      fetch: this.deps.fetch,
      writeChunk: this.deps.writeChunk,
    });
  }

  async #locked<T>(fn: () => Promise<T>): Promise<T> {
    const release = await acquireLock(join(this.deps.stateDir, 'agent.lock'), this.deps.clock, {
      bootId: readBootId(this.deps.procRoot),
      onStale: (m) => this.deps.log.log('warn', m),
    });
    try {
      return await fn();
    } catch (err) {
      // A raw filesystem error (a damaged or full state disk) is reported with its path, errno and a hint.
      throw asStateIoError(err, this.deps.stateDir) ?? err;
    } finally {
      release();
    }
  }

  /** Every command that may change the kernel: lock, then settle whatever a killed agent left behind. */
  async #mutating<T>(config: AgentConfig | undefined, fn: () => Promise<T>): Promise<T> {
    return this.#locked(async () => {
      try {
        await this.#reconcile(config);
        return await fn();
      } finally {
        this.publishScannerFiles();
      }
    });
  }

  /**
   * Rewrites the files scanners read (effective-version, cvelist,
   * scanner.json) from what the kernel runs now. Best effort: a scanner file
   * that cannot be written never fails a kernel operation.
   */
  publishScannerFiles(): string[] {
    try {
      const kernel = this.identity();
      const level = this.applied(kernel).level;
      const manifest = level > 0 ? this.cache.get(kernel.id, level)?.manifest : undefined;
      const { state } = this.store.read();
      const appliedAt = state.kernelId === kernel.id && state.level === level ? (state.appliedAt ?? null) : null;
      return writeScannerFiles(this.deps.stateDir, scannerView(kernel, level, manifest, appliedAt));
    } catch (err) {
      this.deps.log.log('warn', `cannot write the scanner files in ${this.deps.stateDir}: ${(err as Error).message}`);
      return [];
    }
  }

  /** The server refused our token (push stream or check-in): remembered until a check-in succeeds again. */
  recordRevoked(message: string): void {
    this.#record((s) => {
      s.revoked = { at: this.#nowIso(), message: message.slice(0, MAX_ERROR_TEXT) };
    });
  }

  #nowIso(): string {
    return new Date(this.deps.clock.now()).toISOString();
  }

  #client(config: AgentConfig): ServerClient {
    return new ServerClient({ server: config.server, token: config.token, fetch: this.deps.fetch });
  }

  /** Where TUF metadata and targets come from: the mirror, else the server. */
  #deliveryBase(config: AgentConfig): string {
    return config.mirror ?? config.server;
  }

  async enroll(opts: {
    server: string;
    key: string;
    hostname?: string;
    rootFile?: string;
    /** SHA-256 of one of the server's N.root.json files, obtained out of band. */
    rootSha256?: string;
    /** Allows plain HTTP without a pinned root (a lab); a loud warning is returned. */
    insecure?: boolean;
  }): Promise<{
    config: AgentConfig;
    rootVersion: number | undefined;
    rootSource: string | undefined;
    warning: string | undefined;
  }> {
    const kernel = this.identity();
    if (opts.rootFile !== undefined && opts.rootSha256 !== undefined) {
      throw new LivegraftError('CONFIG_INVALID', 'give either --root FILE or --root-sha256 HEX, not both');
    }
    // An out-of-band root is checked before anything is sent or written.
    const pin: RootPin =
      opts.rootFile !== undefined
        ? {
            kind: 'file',
            bytes: readBoundedFile(opts.rootFile, MAX_ROOT_FILE_BYTES, 'TUF_ROOT_INVALID', 'root file'),
            source: opts.rootFile,
          }
        : opts.rootSha256 !== undefined
          ? { kind: 'sha256', sha256: parseRootSha256(opts.rootSha256) }
          : undefined;
    const warning = checkEnrolTransport(opts.server, pin, opts.insecure === true);
    // The server must show the pinned root before it is given the registration key.
    const pinned = pin === undefined ? undefined : await resolvePinnedRoot(this.deps.fetch ?? fetch, opts.server, pin);
    const client = new ServerClient({ server: opts.server, fetch: this.deps.fetch });
    const res = await client.enroll({
      registrationKey: opts.key,
      hostname: opts.hostname ?? registrableHostname(os.hostname()),
      kernel,
      agentVersion: AGENT_VERSION,
    });
    const served = (res as { root?: unknown }).root;
    const rootBytes = pinned?.bytes ?? (served === undefined ? undefined : Buffer.from(JSON.stringify(served)));
    const rootSource = pinned?.source ?? (served !== undefined ? 'the enrol answer' : undefined);
    const config: AgentConfig = { server: opts.server.replace(/\/+$/, ''), hostId: res.hostId, token: res.token };
    return this.#locked(() => {
      let rootVersion: number | undefined;
      if (rootBytes !== undefined) {
        rootVersion = TufClient.pinRoot(this.deps.stateDir, rootBytes, `TUF root from ${rootSource}`).signed.version;
      }
      writeConfig(this.deps.configPath, config);
      return Promise.resolve({ config, rootVersion, rootSource, warning });
    });
  }

  /** Replaces the trust anchor with a root obtained out of band (air-gapped hosts, key recovery). */
  async pinRoot(file: string): Promise<OpOutcome> {
    const bytes = readBoundedFile(file, MAX_ROOT_FILE_BYTES, 'TUF_ROOT_INVALID', 'root file');
    return this.#locked(() => {
      const md = TufClient.pinRoot(this.deps.stateDir, bytes, file);
      return Promise.resolve({ summary: `trusted TUF root is now version ${md.signed.version} from ${file}` });
    });
  }

  #hostState(state: AgentState, applied: AppliedPatch, kernel: KernelIdentity): HostState {
    if (applied.inTransition || applied.retired.length > 0) return 'needs-attention';
    if (state.attention) return 'needs-attention';
    if ((state.quarantined?.[kernel.id] ?? []).length > 0) return 'needs-attention';
    if (state.lastError?.code === 'TRANSITION_REVERSE_STALLED') return 'needs-attention';
    if (state.lastError) return 'error';
    if (state.lastCheck?.kernelId === kernel.id && !state.lastCheck.kernelSupported) return 'unsupported';
    return applied.level > 0 ? 'patched' : 'unpatched';
  }

  /**
   * State writes on failure paths are best effort: a full disk must not hide
   * the failure being reported behind an ENOSPC from the state file.
   */
  #record(fn: (s: AgentState) => void): void {
    try {
      this.store.update(fn);
    } catch (err) {
      this.deps.log.log('warn', `cannot record state in ${this.store.path}: ${(err as Error).message}`);
    }
  }

  #recordError(err: unknown, op: 'check' | 'apply' = 'check'): void {
    const { code, message } = errorText(err);
    this.#record((s) => {
      s.lastError = { code, message, at: this.#nowIso(), op };
    });
  }

  /** What the kernel's livepatch state looks like for the check-in (the server halts on long transitions). */
  #patchState(applied: AppliedPatch): WirePatchState | undefined {
    const ours = applied.patches.filter((p) => p.name.startsWith('livegraft_'));
    const moving = ours.find((p) => p.transition);
    const p = moving ?? ours.find((x) => x.name === applied.name);
    if (p === undefined) return undefined;
    const out: WirePatchState = { module: p.name.slice(0, 64), enabled: p.enabled, transition: p.transition };
    if (p.transition) {
      const { entry } = this.journal.read();
      const since = entry?.module === p.name ? Date.parse(entry.startedAt) : NaN;
      if (Number.isFinite(since)) out.transitionSec = Math.max(0, (this.deps.clock.now() - since) / 1000);
    }
    return out;
  }

  #checkinRequest(
    config: AgentConfig | undefined,
    kernel: KernelIdentity,
    applied: AppliedPatch,
    state: AgentState,
  ): CheckinRequest {
    const req: CheckinRequest = {
      kernel,
      appliedLevel: applied.level,
      state: this.#hostState(state, applied, kernel),
      agentVersion: AGENT_VERSION,
      uptimeSec: readUptimeSec(this.deps.procRoot),
    };
    if (config?.tags !== undefined) req.tags = config.tags;
    const patchState = this.#patchState(applied);
    if (patchState !== undefined) req.patchState = patchState;
    if (state.blockingTasks && state.blockingTasks.length > 0) req.blockingTasks = state.blockingTasks;
    const events = this.deps.kernelEvents?.pending() ?? [];
    if (events.length > 0) req.kernelEvents = events;
    const quarantined = state.quarantined?.[kernel.id] ?? [];
    if (state.lastError) req.lastError = `${state.lastError.code}: ${state.lastError.message}`.slice(0, MAX_ERROR_TEXT);
    else if (quarantined.length > 0) {
      req.lastError = `LEVEL_QUARANTINED: level(s) ${quarantined.join(', ')} were being applied when the host went down`;
    }
    if (state.lastApply) req.lastApply = state.lastApply;
    if (state.clockSkew) req.clockSkewSec = state.clockSkew.sec;
    const userspace = userspaceCheckinReport(this.deps.stateDir, (m) => this.deps.log.log('warn', m));
    if (userspace.length > 0) req.userspace = userspace;
    return req;
  }

  /** Compares this host's clock with the server's Date header; warns past the threshold. Returns the skew. */
  #noteClockSkew(dateHeader: string | undefined): number | undefined {
    const skew = clockSkewSec(this.deps.clock.now(), dateHeader);
    const warning = skewWarning(skew);
    if (warning !== undefined) this.deps.log.log('warn', warning, { code: 'CLOCK_SKEW', skewSec: skew });
    return skew;
  }

  /** The release counter only goes up, except when an operator authorised a downgrade. */
  #raiseHighest(s: AgentState, kernelId: string, level: number): void {
    s.highestLevel = { ...s.highestLevel, [kernelId]: Math.max(s.highestLevel?.[kernelId] ?? 0, level) };
  }

  /** The check-in: reports our state (it is the heartbeat too) and learns what is available. */
  async #check(config: AgentConfig): Promise<CheckOutcome> {
    const kernel = this.identity();
    const applied = this.applied(kernel);
    const state = this.#readState();
    const req = this.#checkinRequest(config, kernel, applied, state);
    let res: CheckinResponse;
    const client = this.#client(config);
    try {
      res = await client.checkin(req);
    } catch (err) {
      this.#noteClockSkew(client.lastServerDate);
      if (!(err instanceof LivegraftError && err.code === 'KERNEL_UNSUPPORTED')) {
        this.#recordError(err);
        if (isRevocation(err)) this.recordRevoked(`check-in refused (HTTP 401): credential revoked; ${err.message}`);
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
    const rawDesired = (res as { desired?: unknown }).desired;
    let desired: DesiredLevel | undefined;
    if (rawDesired !== undefined && rawDesired !== null) {
      try {
        desired = desiredValidator.parse(rawDesired);
      } catch (err) {
        const bad = new LivegraftError('SERVER_BAD_ANSWER', (err as Error).message, { cause: err });
        this.#recordError(bad);
        throw bad;
      }
    }
    const latestLevel = res.kernelSupported && latest !== undefined ? latest.level : 0;
    if (!res.kernelSupported) {
      latest = undefined;
      desired = undefined;
    }
    const skew = this.#noteClockSkew(client.lastServerDate);
    this.#record((s) => {
      if (skew !== undefined) s.clockSkew = { sec: skew, at: this.#nowIso() };
      // What the kernel runs is what boot must put back, even if state.json was reset meanwhile.
      if (applied.level > 0 && !applied.inTransition && (s.kernelId !== kernel.id || s.level !== applied.level)) {
        s.kernelId = kernel.id;
        s.level = applied.level;
      }
      s.lastCheckAt = this.#nowIso();
      s.lastCheck = {
        kernelId: kernel.id,
        kernelSupported: res.kernelSupported,
        latestLevel,
        checkinIntervalSec: res.checkinIntervalSec,
      };
      this.#raiseHighest(s, kernel.id, applied.level);
      // A successful round trip clears check errors; apply errors stay until the next apply.
      if (s.lastError?.op === 'check') s.lastError = null;
      s.revoked = null;
    });
    if (applied.level > 0 && !applied.inTransition) this.#markRunning(kernel.id, applied.level);
    if (req.kernelEvents !== undefined) this.deps.kernelEvents?.ack(req.kernelEvents);
    return {
      exit: statusExitFor(res.kernelSupported, latestLevel, applied.level),
      kernel,
      appliedLevel: applied.level,
      kernelSupported: res.kernelSupported,
      latestLevel,
      latest,
      desired,
      checkinIntervalSec: res.checkinIntervalSec,
      ...(res.userspace === undefined ? {} : { userspace: res.userspace }),
    };
  }

  /**
   * What a check-in would have said, from a pushed event, so a push-triggered
   * update goes straight to signed delivery: the event carries the same
   * desired level the check-in answer would (the module and its manifest
   * still come only through TUF), and the check-in after the apply reports
   * the result. Halves the requests a rollout costs the server. Undefined
   * when the event cannot stand in for a check-in (no level, another kernel).
   */
  #pushedCheck(ev: DesiredEvent | undefined): CheckOutcome | undefined {
    if (ev?.desired === null || ev?.desired === undefined) return undefined;
    const kernel = this.identity();
    if (ev.kernelId !== kernel.id) return undefined;
    const appliedLevel = this.applied(kernel).level;
    const state = this.#readState();
    return {
      exit: statusExitFor(true, ev.desired.level, appliedLevel),
      kernel,
      appliedLevel,
      kernelSupported: true,
      latestLevel: ev.desired.level,
      latest: undefined,
      desired: ev.desired,
      checkinIntervalSec: state.lastCheck?.checkinIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC,
    };
  }

  /**
   * A best-effort check-in that changes no local state; used right after an
   * apply. Returns the user-space part of its answer.
   */
  async #report(config: AgentConfig): Promise<UserspaceDesired[] | undefined> {
    try {
      const kernel = this.identity();
      const applied = this.applied(kernel);
      const state = this.#readState();
      const req = this.#checkinRequest(config, kernel, applied, state);
      const res = await this.#client(config).checkin(req);
      if (req.kernelEvents !== undefined) this.deps.kernelEvents?.ack(req.kernelEvents);
      return res.userspace;
    } catch (err) {
      this.deps.log.log('warn', `could not report the result to the server: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * Brings the user-space libraries to the levels of the server's last
   * answer (fetched through TUF like kernel levels), then reports the result
   * in a check-in. Never throws: a failure is logged and the next check-in
   * or re-scan tries again. Honours the kill switch.
   */
  async #updateUserspace(config: AgentConfig, desired: UserspaceDesired[] | undefined): Promise<void> {
    if (desired === undefined || desired.length === 0 || this.killSwitch(config) !== undefined) return;
    try {
      const tuf = this.#tuf(config, this.#deliveryBase(config));
      const res = await syncUserspace(desired, {
        stateDir: this.deps.stateDir,
        helper: helperPath(),
        openSession: () => tuf.open(),
        log: (level, msg) => this.deps.log.log(level, msg),
      });
      if (res.changed.length > 0) await this.#report(config);
    } catch (err) {
      this.deps.log.log('warn', `user-space levels not applied: ${(err as Error).message}`);
    }
  }

  async check(): Promise<CheckOutcome> {
    const config = loadConfig(this.deps.configPath);
    return this.#locked(() => this.#check(config));
  }

  // ---- journal, reconcile, crash-loop guard -------------------------------------------------------------

  /**
   * Runs a state write that must follow a kernel change. On a full disk the
   * reserve kept for this is freed and the write tried once more; if it still
   * fails, the error says the kernel already changed and carries
   * `kernelChanged`, so the journal is kept for the next run to settle.
   */
  #persist(what: string, path: string, write: () => void): void {
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
      if (!full || !this.reserve.release()) throw stateIoError(what, path, raw(err), 'changed');
      this.deps.log.log('warn', `the state filesystem is full; freed the space reserve ${this.reserve.path}`);
    }
    try {
      write();
    } catch (err) {
      throw stateIoError(what, path, raw(err), 'changed');
    }
  }

  /** Removes the journal; a failure is logged, never thrown over the outcome being reported. */
  #clearJournal(): void {
    try {
      this.journal.clear();
    } catch (err) {
      this.deps.log.log('warn', `cannot remove the journal ${this.journal.path}: ${(err as Error).message}`);
    }
  }

  /**
   * A step hook that persists each step (temp + fsync + rename) before the
   * procedure continues. Before "intent" (the kernel untouched) it makes sure
   * the space reserve is on disk, so the later steps always fit.
   */
  #journalHook(base: Omit<JournalEntry, 'step' | 'updatedAt'>): StepHook {
    return async (step) => {
      const entry = { ...base, step, updatedAt: this.#nowIso() };
      const what = `write the journal (step "${step}")`;
      if (step === 'intent') {
        this.reserve.ensure();
        try {
          this.journal.write(entry);
        } catch (err) {
          // No journal, no kernel change: the step cannot be recorded, so the procedure stops here.
          throw stateIoError(what, this.journal.path, err, 'untouched');
        }
      } else {
        this.#persist(what, this.journal.path, () => this.journal.write(entry));
      }
      await this.deps.journalHook?.(step);
    };
  }

  #journalBase(op: JournalEntry['op'], kernel: KernelIdentity, module: string, level: number, fromLevel: number) {
    return {
      schema: 1 as const,
      op,
      kernelId: kernel.id,
      bootId: readBootId(this.deps.procRoot),
      module,
      level,
      fromLevel,
      startedAt: this.#nowIso(),
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
  async #journalled<T>(run: () => Promise<T>): Promise<T> {
    let out: T;
    try {
      out = await run();
    } catch (err) {
      const keep =
        !(err instanceof LivegraftError) ||
        err.code === 'TRANSITION_REVERSE_STALLED' ||
        err.details?.['kernelChanged'] === true;
      if (!keep) this.#clearJournal();
      throw err;
    }
    this.#clearJournal();
    return out;
  }

  /** Records that the kernel runs `level` for this build, beside the cache (best effort: state.json has it too). */
  #markRunning(kernelId: string, level: number): void {
    try {
      this.cache.recordRunning(kernelId, level, this.#nowIso());
    } catch (err) {
      this.deps.log.log('warn', `cannot record the running level in ${this.cache.root}: ${(err as Error).message}`);
    }
  }

  /** Best effort: a failed state write must not stop a boot from re-applying what ran. */
  #quarantine(kernelId: string, level: number, why: string): void {
    const message =
      `level ${level} for kernel ${kernelId.slice(0, 12)} was being applied when ${why}; it is quarantined and ` +
      `will not be applied again until an operator runs "livegraft-agent unquarantine ${level}"`;
    this.#record((s) => {
      const list = new Set(s.quarantined?.[kernelId] ?? []);
      list.add(level);
      s.quarantined = { ...s.quarantined, [kernelId]: [...list].sort((a, b) => a - b) };
      s.lastError = { code: 'LEVEL_QUARANTINED', message, at: this.#nowIso(), op: 'apply' };
    });
    this.deps.log.log('warn', message, { code: 'LEVEL_QUARANTINED', level });
  }

  #setAttention(err: LivegraftError): void {
    this.#record((s) => {
      s.attention = { code: err.code, message: err.message.slice(0, MAX_ERROR_TEXT), at: this.#nowIso() };
    });
  }

  /**
   * A journal left by a change the host went down in. What ran then decides
   * what boot re-applies now, even if state.json was lost meanwhile:
   * - "transitioned" or later: the change had succeeded; it is confirmed;
   * - "intent"/"loaded": the level may be what brought the host down, so it
   *   is quarantined, and the level that ran before it is the one to re-apply;
   * - an unload: the operator's unload stands.
   */
  #settleAfterReboot(entry: JournalEntry): void {
    const log = this.deps.log;
    const at = this.#nowIso();
    const done = entry.step === 'transitioned' || entry.step === 'old-removed';
    if (entry.op === 'unload') {
      this.#record((s) => {
        s.kernelId = entry.kernelId;
        s.level = 0;
        s.appliedAt = null;
        s.hold = { maxLevel: 0, reason: 'unload', at };
      });
      this.#markRunning(entry.kernelId, 0);
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
      this.#record((s) => {
        s.kernelId = entry.kernelId;
        s.level = entry.level;
        s.appliedAt = entry.updatedAt;
        s.lastApply = apply;
        if (s.lastError?.op === 'apply') s.lastError = null;
        if (entry.level < entry.fromLevel) s.highestLevel = { ...s.highestLevel, [entry.kernelId]: entry.level };
        else this.#raiseHighest(s, entry.kernelId, entry.level);
      });
      this.#markRunning(entry.kernelId, entry.level);
      log.log(
        'warn',
        `the ${entry.op} of level ${entry.level} had completed (journal step "${entry.step}") when the host went down; ` +
          'confirmed, it is the level to re-apply',
      );
      return;
    }
    if (entry.level > 0)
      this.#quarantine(entry.kernelId, entry.level, `the host went down (journal step "${entry.step}")`);
    // What ran before this change is what to re-apply; state.json normally says so already.
    const before = entry.op === 'boot' ? entry.level : entry.fromLevel;
    this.#record((s) => {
      if (s.kernelId === entry.kernelId) return;
      s.kernelId = entry.kernelId;
      s.level = before;
    });
    if (this.cache.running(entry.kernelId) === undefined) this.#markRunning(entry.kernelId, before);
  }

  /**
   * Settles a change a killed agent left behind, from the journal and the
   * kernel (the kernel is the truth). Never loads anything.
   */
  async #reconcile(config: AgentConfig | undefined): Promise<void> {
    const { entry, warning } = this.journal.read();
    if (warning !== undefined) this.deps.log.log('warn', `journal: ${warning}`);
    if (entry === undefined) return;
    const log = this.deps.log;
    if (entry.bootId !== readBootId(this.deps.procRoot)) {
      this.#settleAfterReboot(entry);
      this.#clearJournal();
      return;
    }
    const k = this.#kernelOps(config);
    const onStep = this.#journalHook({ ...entry });
    const record = (ok: boolean, extra: Partial<ApplyResult> = {}): ApplyResult => ({
      action: entry.op,
      fromLevel: entry.fromLevel,
      toLevel: entry.level,
      ok,
      durationMs: Math.max(0, this.deps.clock.now() - Date.parse(entry.startedAt)),
      at: this.#nowIso(),
      ...extra,
    });
    log.log('warn', `resuming an interrupted ${entry.op} of level ${entry.level} (journal step "${entry.step}")`);
    try {
      if (entry.op === 'unload') {
        await removeRetiredModules(k);
        this.#clearJournal();
        return;
      }
      const name = entry.module;
      if (entry.step === 'intent' || entry.step === 'loaded') {
        const p = this.sysfs.readPatch(name);
        if (p?.enabled !== true) {
          // Never loaded, refused, or reversed: take away what is left and report the change as not done.
          if (p !== undefined) await waitFor(k.clock, () => !this.sysfs.patchExists(name), DISABLE_TIMEOUT_MS);
          if (this.sysfs.moduleLoaded(name)) await removeModule(k, name);
          const apply = record(false, { code: 'INTERRUPTED', message: `the agent stopped before ${name} was enabled` });
          this.#record((s) => {
            s.lastApply = apply;
          });
          this.#clearJournal();
          log.log('warn', `the interrupted ${entry.op} of level ${entry.level} did not take effect; nothing to resume`);
          return;
        }
        await finishInstall(k, name, onStep);
      } else if (entry.step === 'transitioned') {
        await removeRetiredModules(k, name);
        await onStep('old-removed');
      }
      const apply = record(true);
      this.#persist('record the applied level in', this.store.path, () =>
        this.store.update((s) => {
          s.kernelId = entry.kernelId;
          s.level = entry.level;
          s.appliedAt = apply.at;
          s.lastApply = apply;
          s.lastError = null;
          if (entry.level < entry.fromLevel) {
            s.highestLevel = { ...s.highestLevel, [entry.kernelId]: entry.level };
          } else {
            this.#raiseHighest(s, entry.kernelId, entry.level);
          }
        }),
      );
      this.#markRunning(entry.kernelId, entry.level);
      this.#clearJournal();
      log.log('info', `finished the interrupted ${entry.op} of level ${entry.level}`);
    } catch (err) {
      const { code, message } = errorText(err);
      const keep =
        code === 'TRANSITION_REVERSE_STALLED' ||
        (err instanceof LivegraftError && err.details?.['kernelChanged'] === true);
      if (err instanceof LivegraftError && code === 'TRANSITION_REVERSE_STALLED') this.#setAttention(err);
      if (!keep) this.#clearJournal();
      this.#record((s) => {
        s.lastApply = record(false, { code: code.slice(0, 64), message });
        s.lastError = { code, message, at: this.#nowIso(), op: 'apply' };
      });
      log.log('error', `could not finish the interrupted ${entry.op}`, { code, message });
    }
  }

  /** Refuses to change the kernel while a human must look at it. */
  #assertNoAttention(state: AgentState): void {
    if (state.attention) {
      throw new LivegraftError(
        'NEEDS_ATTENTION',
        `patching is stopped since ${state.attention.at}: [${state.attention.code}] ` +
          `${state.attention.message.split('\n')[0] ?? ''}. Investigate (a reboot clears a stuck transition), ` +
          'then run "livegraft-agent clear-attention"',
      );
    }
  }

  #assertNotQuarantined(state: AgentState, kernelId: string, level: number): void {
    if ((state.quarantined?.[kernelId] ?? []).includes(level)) {
      throw new LivegraftError(
        'LEVEL_QUARANTINED',
        `level ${level} is quarantined: it was being applied when the host went down. ` +
          `Run "livegraft-agent unquarantine ${level}" to allow it again`,
      );
    }
  }

  #assertEnabled(config: AgentConfig | undefined): void {
    const ks = this.killSwitch(config);
    if (ks !== undefined) {
      throw new LivegraftError('AGENT_DISABLED', `livegraft is disabled (${ks.detail}); not loading anything`);
    }
  }

  // ---- applying -------------------------------------------------------------------------------------------

  /**
   * Puts one cached-or-fetched module in place and records the ApplyResult.
   * `obtain` runs inside the timing so download and verification failures
   * are reported as the apply's result; it may fill in target.sha256.
   */
  async #apply(
    action: ApplyResult['action'],
    config: AgentConfig | undefined,
    kernel: KernelIdentity,
    target: { level: number; sha256: string; downgrade?: boolean },
    obtain: () => Promise<CachedModule>,
  ): Promise<OpOutcome> {
    const toLevel = target.level;
    const clock = this.deps.clock;
    const started = clock.now();
    const fromLevel = this.applied(kernel).level;
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
        at: this.#nowIso(),
        ...(Object.keys(phasesMs).length > 0 ? { phasesMs } : {}),
        ...extra,
      };
    };
    try {
      this.#assertNotQuarantined(this.#readState(), kernel.id, toLevel);
      const cached = await obtain();
      marks.obtained = clock.now();
      target.sha256 = cached.manifest.module.sha256;
      const journalStep = this.#journalHook(
        this.#journalBase(action, kernel, cached.manifest.name, toLevel, fromLevel),
      );
      const onStep: StepHook = async (step) => {
        await journalStep(step);
        marks[step] = clock.now();
      };
      let apply: ApplyResult | undefined;
      const outcome = await this.#journalled(async () => {
        const o = await installPatch(this.#kernelOps(config), cached.manifest, cached.modulePath, kernel, onStep);
        const done = result(true, o.warnings.length > 0 ? { message: o.warnings.join('\n').slice(0, 4000) } : {});
        apply = done;
        // Recorded before the journal goes: if this fails, the journal still says what the kernel runs.
        this.#persist('record the applied level in', this.store.path, () =>
          this.store.update((s) => {
            s.kernelId = kernel.id;
            s.level = toLevel;
            s.appliedAt = done.at;
            s.lastApply = done;
            s.lastError = null;
            s.blockingTasks = null;
            if (s.blocked?.level === toLevel) s.blocked = null;
            // An authorised downgrade resets the counter; anything else only raises it.
            if (target.downgrade === true) s.highestLevel = { ...s.highestLevel, [kernel.id]: toLevel };
            else this.#raiseHighest(s, kernel.id, toLevel);
          }),
        );
        this.#markRunning(kernel.id, toLevel);
        return o;
      });
      if (apply === undefined) throw new LivegraftError('INTERNAL', 'apply finished without a result');
      const warnings = outcome.warnings;
      for (const w of warnings) this.deps.log.log('warn', w);
      const summary = outcome.alreadyApplied
        ? `level ${toLevel} was already applied`
        : `${action === 'rollback' ? 'rolled back' : 'applied'} level ${toLevel} (was ${fromLevel}) in ${apply.durationMs} ms`;
      this.deps.log.log('info', summary, { action, fromLevel, toLevel, removed: outcome.removed });
      return { summary, apply, removed: outcome.removed, warnings };
    } catch (err) {
      const { code, message } = errorText(err);
      const apply = result(false, { code: code.slice(0, 64), message });
      if (err instanceof LivegraftError && code === 'TRANSITION_REVERSE_STALLED') this.#setAttention(err);
      const tasks = blockingTasksOf(err);
      this.#record((s) => {
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
          s.kernelRefusal = { bootId: readBootId(this.deps.procRoot), code, message, at: apply.at };
        }
      });
      this.deps.log.log('error', `${action} to level ${toLevel} failed`, { code, message });
      throw err;
    }
  }

  /**
   * Fetches level `level` through TUF (the only way a module enters the
   * cache online), checks the signed manifest, and applies it.
   */
  async #applySigned(
    action: ApplyResult['action'],
    config: AgentConfig | undefined,
    kernel: KernelIdentity,
    level: number,
    openSession: () => Promise<TufSession>,
    downgrade: boolean,
  ): Promise<OpOutcome> {
    const target = { level, sha256: '', downgrade };
    return this.#apply(action, config, kernel, target, async () => {
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
        return await this.cache.ensure(signed.manifest, kernel, (tmp) => session.download(signed.info, tmp));
      } finally {
        session.close();
      }
    });
  }

  /** Downgrade and unload policy shared by update and update --from. */
  #downgradeRefused(level: number, applied: number, highest: number, source: string): LivegraftError {
    return new LivegraftError(
      'DOWNGRADE_REFUSED',
      `${source} offers level ${level}, below ${applied > 0 ? `the applied level ${applied}` : ''}` +
        `${applied > 0 && highest > applied ? ' and ' : ''}${highest > applied ? `the highest level this host ran (${highest})` : ''}; ` +
        'refusing to go down without an operator asking for it (rollback, apply --allow-downgrade, or a fleet rollback)',
      { details: { offered: level, applied, highest } },
    );
  }

  /**
   * check, then fetch through TUF and apply the level the server wants
   * (its `desired`, else its latest). Never goes down unless the server's
   * desired level says an operator authorised it. `manual` (the CLI) clears
   * a hold and retries a blocked module; the daemon respects both.
   */
  async update(opts: { manual: boolean; pushed?: DesiredEvent }): Promise<UpdateOutcome> {
    const config = loadConfig(this.deps.configPath);
    let userspace: UserspaceDesired[] | undefined;
    const reported = async (p: Promise<UserspaceDesired[] | undefined>) => {
      userspace = (await p) ?? userspace;
    };
    try {
      return await this.#updateKernel(config, opts, (check) => (userspace = check.userspace), reported);
    } finally {
      // User-space levels follow the kernel's whatever became of it (unsupported kernel, refused downgrade, ...).
      await this.#updateUserspace(config, userspace);
    }
  }

  async #updateKernel(
    config: AgentConfig,
    opts: { manual: boolean; pushed?: DesiredEvent },
    checked: (check: CheckOutcome) => void,
    reported: (answer: Promise<UserspaceDesired[] | undefined>) => Promise<void>,
  ): Promise<UpdateOutcome> {
    return this.#mutating(config, async () => {
      const check = (opts.manual ? undefined : this.#pushedCheck(opts.pushed)) ?? (await this.#check(config));
      checked(check);
      let state = this.#readState();
      if (opts.manual && (state.hold || state.blocked || state.kernelRefusal)) {
        state = this.store.update((s) => {
          s.hold = null;
          s.blocked = null;
          s.kernelRefusal = null;
        });
      }
      if (!check.kernelSupported) {
        return {
          exit: StatusExit.KERNEL_UNSUPPORTED,
          summary: `kernel ${check.kernel.release} is not supported by the server`,
          check,
        };
      }
      const disabled = this.killSwitch(config);
      if (disabled !== undefined) {
        return {
          exit: 0,
          summary: `livegraft is disabled (${disabled.detail}); not applying anything`,
          check,
          disabled,
        };
      }
      this.#assertNoAttention(state);
      const kernel = check.kernel;
      const applied = check.appliedLevel;
      const desired = check.desired;
      const level = desired?.level ?? check.latestLevel;
      const allowDowngrade = desired?.allowDowngrade === true;
      const highest = Math.max(state.highestLevel?.[kernel.id] ?? 0, applied);
      if (desired === undefined && check.latest === undefined) {
        const summary = applied === 0 ? 'no patches available for this kernel' : `up to date at level ${applied}`;
        return { exit: 0, summary, check };
      }
      if (level === applied) return { exit: 0, summary: `up to date at level ${applied}`, check };
      const downgrade = level < applied || level < highest;
      if (downgrade && !allowDowngrade) {
        const err = this.#downgradeRefused(level, applied, highest, 'the server');
        this.#recordError(err);
        throw err;
      }
      if (level === 0) {
        const op = await this.#unloadNow(config, kernel);
        await reported(this.#report(config));
        return { exit: 0, ...op, check };
      }
      if (!downgrade && !opts.manual && state.hold && level > state.hold.maxLevel) {
        const summary = `level ${level} available but held at ${state.hold.maxLevel} since ${state.hold.reason} (${state.hold.at}); run "livegraft-agent update" to resume`;
        return { exit: 0, summary, check };
      }
      if ((state.quarantined?.[kernel.id] ?? []).includes(level)) {
        const summary = `level ${level} is quarantined (it was being applied when the host went down); not applying it. "livegraft-agent unquarantine ${level}" allows it again`;
        this.deps.log.log('error', summary, { code: 'LEVEL_QUARANTINED' });
        return { exit: StatusExit.ERROR, summary, check };
      }
      const refusal = this.#kernelRefusal(state);
      if (!opts.manual && refusal !== undefined) return { exit: StatusExit.ERROR, summary: refusal, check };
      const blocked = state.blocked;
      if (
        !opts.manual &&
        blocked?.level === level &&
        (check.latest === undefined || check.latest.level !== level || check.latest.module.sha256 === blocked.sha256)
      ) {
        const summary = `level ${level} failed before with ${blocked.code}; not retrying automatically (run "livegraft-agent update")`;
        return { exit: StatusExit.ERROR, summary, check };
      }
      const action = downgrade ? 'rollback' : 'apply';
      const tuf = this.#tuf(config, this.#deliveryBase(config));
      try {
        const op = await this.#applySigned(action, config, kernel, level, () => tuf.open(), downgrade);
        return { exit: 0, ...op, check };
      } finally {
        // Tell the server the outcome now rather than at the next interval.
        await reported(this.#report(config));
      }
    });
  }

  /**
   * Applies the highest level for this kernel from a bundle directory laid
   * out like the server's TUF repository (tuf/metadata, tuf/targets), for
   * hosts without network. Verified against the pinned root like online.
   */
  async updateFrom(dir: string, opts: { allowDowngrade?: boolean } = {}): Promise<UpdateOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    const base = pathToFileURL(resolve(dir)).href;
    return this.#mutating(config, async () => {
      const state = this.#readState();
      const disabled = this.killSwitch(config);
      if (disabled !== undefined) {
        return { exit: 0, summary: `livegraft is disabled (${disabled.detail}); not applying anything`, disabled };
      }
      this.#assertNoAttention(state);
      const kernel = this.identity();
      const applied = this.applied(kernel).level;
      const highest = Math.max(state.highestLevel?.[kernel.id] ?? 0, applied);
      const session = await this.#tuf(config, base).open();
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
        if (downgrade && opts.allowDowngrade !== true) throw this.#downgradeRefused(level, applied, highest, dir);
        const op = await this.#applySigned(
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

  /**
   * Applies a module from a local manifest (air-gapped hosts, or a module
   * fetched by other means). The module file named in the manifest must sit
   * beside it. The given file itself is verified first, then cached, then
   * applied; going below the applied (or highest) level needs `allowDowngrade`.
   */
  async applyLocal(manifestPath: string, opts: { allowDowngrade?: boolean } = {}): Promise<OpOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    const manifest = readManifestFile(manifestPath);
    const modulePath = join(dirname(manifestPath), manifest.module.file);
    return this.#mutating(config, async () => {
      this.#assertEnabled(config);
      const state = this.#readState();
      this.#assertNoAttention(state);
      const kernel = this.identity();
      const applied = this.applied(kernel).level;
      const highest = Math.max(state.highestLevel?.[kernel.id] ?? 0, applied);
      const downgrade = manifest.level < applied || manifest.level < highest;
      const target = { level: manifest.level, sha256: manifest.module.sha256, downgrade };
      return this.#apply('apply', config, kernel, target, async () => {
        verifyModuleFile(manifest, modulePath, kernel);
        const cached = await this.cache.ensure(manifest, kernel, (tmp) => {
          copyFileSync(modulePath, tmp);
          return Promise.resolve();
        });
        if (downgrade && opts.allowDowngrade !== true) {
          throw new LivegraftError(
            'DOWNGRADE_REFUSED',
            `${manifestPath} is level ${manifest.level}, below the ${manifest.level < applied ? `applied level ${applied}` : `highest level this host ran (${highest})`}; ` +
              'use rollback, or pass --allow-downgrade',
          );
        }
        return cached;
      });
    });
  }

  async rollback(to?: number): Promise<OpOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    return this.#mutating(config, async () => {
      this.#assertEnabled(config);
      this.#assertNoAttention(this.#readState());
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
        { level: target, sha256: cached.manifest.module.sha256, downgrade: target < applied },
        () => Promise.resolve(cached),
      );
      this.store.update((s) => {
        s.hold = { maxLevel: target, reason: 'rollback', at: this.#nowIso() };
      });
      return op;
    });
  }

  async #unloadNow(config: AgentConfig | undefined, kernel: KernelIdentity): Promise<OpOutcome> {
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
      const onStep = this.#journalHook(this.#journalBase('unload', kernel, '', 0, fromLevel));
      const apply = mk(true);
      const { disabled, removed } = await this.#journalled(async () => {
        await onStep('intent');
        const out = await uninstallAll(this.#kernelOps(config));
        Object.assign(apply, mk(true));
        this.#persist('record the unload in', this.store.path, () =>
          this.store.update((s) => {
            s.kernelId = kernel.id;
            s.level = 0;
            s.appliedAt = null;
            s.lastApply = apply;
            s.lastError = null;
            s.hold = { maxLevel: 0, reason: 'unload', at: apply.at };
          }),
        );
        this.#markRunning(kernel.id, 0);
        return out;
      });
      const summary =
        disabled.length + removed.length === 0
          ? 'no livegraft patches were loaded'
          : `disabled ${disabled.join(', ') || 'nothing'}; removed ${removed.join(', ') || 'nothing'}`;
      return { summary, apply, removed };
    } catch (err) {
      const { code, message } = errorText(err);
      const apply = mk(false, { code: code.slice(0, 64), message });
      if (err instanceof LivegraftError && code === 'UNLOAD_STALLED') this.#setAttention(err);
      this.#record((s) => {
        s.lastApply = apply;
        s.lastError = { code, message, at: apply.at, op: 'apply' };
      });
      throw err;
    }
  }

  /** Unloading is the safe direction: allowed even when disabled or needing attention. */
  async unload(): Promise<OpOutcome> {
    const config = loadConfigIfPresent(this.deps.configPath);
    return this.#mutating(config, () => this.#unloadNow(config, this.identity()));
  }

  /**
   * Boot needs no config to re-apply from the cache: an unreadable or invalid
   * one is a warning, and the default kill-switch file still counts.
   */
  #bootConfig(): AgentConfig | undefined {
    try {
      return loadConfigIfPresent(this.deps.configPath);
    } catch (err) {
      this.deps.log.log(
        'warn',
        `${(err as Error).message}; re-applying from the local cache without it ` +
          `(kill-switch file: ${disableFilePath(this.deps.configPath, undefined)})`,
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
  #bootLevel(state: AgentState, kernel: KernelIdentity): { level: number; source: string } | undefined {
    if (state.kernelId === kernel.id) return { level: state.level, source: 'state' };
    const running = this.cache.running(kernel.id);
    if (running !== undefined) return { level: running, source: `the running level recorded in ${this.cache.root}` };
    const quarantined = state.quarantined?.[kernel.id] ?? [];
    for (const level of this.cache.levels(kernel.id).reverse()) {
      if (quarantined.includes(level)) continue;
      const c = this.cache.get(kernel.id, level);
      if (c === undefined) continue;
      try {
        verifyModuleFile(c.manifest, c.modulePath, kernel);
        return { level, source: `the highest verified level in ${this.cache.root}` };
      } catch (err) {
        this.deps.log.log('warn', `cached level ${level} does not verify: ${(err as Error).message}`);
      }
    }
    return undefined;
  }

  /** Re-applies the recorded level from the local cache, offline. For a boot-time unit. */
  async boot(): Promise<OpOutcome> {
    const config = this.#bootConfig();
    return this.#mutating(config, async () => {
      const kernel = this.identity();
      const state = this.#readState();
      const disabled = this.killSwitch(config);
      if (disabled !== undefined) {
        return { summary: `livegraft is disabled (${disabled.detail}); not re-applying anything`, disabled };
      }
      this.#assertNoAttention(state);
      const recorded = this.#bootLevel(state, kernel);
      if (recorded === undefined || recorded.level === 0) {
        return { summary: 'nothing recorded to re-apply for this kernel' };
      }
      const level = recorded.level;
      if (recorded.source !== 'state') {
        this.deps.log.log(
          'warn',
          `state.json has no level for this kernel; re-applying level ${level} from ${recorded.source}`,
        );
      }
      const applied = this.applied(kernel).level;
      if (applied === level) return { summary: `level ${applied} is already applied` };
      if (applied > 0) return { summary: `kernel already runs level ${applied}; leaving it (recorded: ${level})` };
      if ((state.quarantined?.[kernel.id] ?? []).includes(level)) {
        const summary = `level ${level} is quarantined; not re-applying it ("livegraft-agent unquarantine ${level}" allows it again)`;
        this.deps.log.log('error', summary, { code: 'LEVEL_QUARANTINED' });
        return { summary };
      }
      const refusal = this.#kernelRefusal(state);
      if (refusal !== undefined) {
        this.deps.log.log('error', refusal, { code: state.kernelRefusal?.code });
        return { summary: refusal };
      }
      const cached = this.cache.get(kernel.id, level);
      const target = { level, sha256: cached?.manifest.module.sha256 ?? '' };
      return this.#apply('boot', config, kernel, target, () => {
        if (cached === undefined) {
          return Promise.reject(
            new LivegraftError('CACHE_MISSING', `level ${level} for this kernel is not in ${this.cache.root}`),
          );
        }
        return Promise.resolve(cached);
      });
    });
  }

  /** Why no automatic load may be tried in this boot, if the kernel already refused our modules in it. */
  #kernelRefusal(state: AgentState): string | undefined {
    const r = state.kernelRefusal;
    if (!r || r.bootId !== readBootId(this.deps.procRoot)) return undefined;
    return `the running kernel refused an unsigned module at ${r.at} [${r.code}]; not loading anything again until the next boot or a manual "livegraft-agent update"`;
  }

  /** The operator has dealt with a stuck transition: allow patching again. */
  async clearAttention(): Promise<OpOutcome> {
    return this.#locked(() => {
      const before = this.#readState().attention;
      this.store.update((s) => {
        s.attention = null;
        if (s.lastError?.code === before?.code) s.lastError = null;
      });
      return Promise.resolve({
        summary: before ? `cleared [${before.code}] from ${before.at}; patching is allowed again` : 'nothing to clear',
      });
    });
  }

  async unquarantine(level: number): Promise<OpOutcome> {
    return this.#locked(() => {
      const kernel = this.identity();
      const list = this.#readState().quarantined?.[kernel.id] ?? [];
      if (!list.includes(level)) {
        return Promise.resolve({
          summary: `level ${level} is not quarantined for this kernel (quarantined: ${list.join(', ') || 'none'})`,
        });
      }
      this.store.update((s) => {
        s.quarantined = { ...s.quarantined, [kernel.id]: list.filter((l) => l !== level) };
        if (s.lastError?.code === 'LEVEL_QUARANTINED') s.lastError = null;
      });
      return Promise.resolve({ summary: `level ${level} may be applied again` });
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
    const { entry: journal, warning: journalWarning } = this.journal.read();
    const cachedLevels = this.cache.levels(kernel.id);
    const manifest = applied.level > 0 ? this.cache.get(kernel.id, applied.level)?.manifest : undefined;
    const lastCheck = state.lastCheck?.kernelId === kernel.id ? state.lastCheck : null;
    const now = this.deps.clock.now();
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
    const disabled = this.killSwitch(config);
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
      trustedRootVersion: TufClient.trustedRootVersion(this.deps.stateDir) ?? null,
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
