import {
  LivegraftError,
  StatusExit,
  parseTripwireLine,
  type DesiredEvent,
  type DesiredLevel,
} from '@livegraft/protocol';
import { DEFAULT_CHECKIN_INTERVAL_SEC, type Agent, type UpdateOutcome } from '../operations/agent.ts';
import { ServerClient, isTransient } from '../delivery/client.ts';
import { systemClock, type Clock } from '../lib/clock.ts';
import { loadConfig, type AgentConfig } from '../state/config.ts';
import { DEFAULT_KMSG_PATH } from '../kernel/kmsg.ts';
import { KmsgFollower, classifyKernelLine, type KmsgRecord } from '../kernel/kmsg-watch.ts';
import { PushStream } from '../delivery/push.ts';
import { TripwireReporter } from '../delivery/tripwire.ts';

/** First retry after a server error, doubling up to the max. */
export const BACKOFF_BASE_MS = 10_000;
export const BACKOFF_MAX_MS = 15 * 60_000;
/** ±10 % on the normal interval so a fleet rebooted together does not check in together. */
export const INTERVAL_JITTER = 0.1;
/** A pushed event's spreadMs is honoured up to this (a server asking for more is clamped). */
export const MAX_PUSH_SPREAD_MS = 15 * 60_000;
/** After the token was revoked, how often the config is re-read for a new one (a re-enrolment). */
export const REVOKED_RECHECK_MS = 60_000;
/** A kernel warning/oops triggers an early check-in (so the server can halt the rollout), at most this often. */
export const KERNEL_EVENT_REPORT_MIN_MS = 30_000;
/** Kernel event kinds that make the server halt a rollout: worth telling it at once. */
const URGENT_KERNEL_EVENTS: ReadonlySet<string> = new Set(['warn', 'oops', 'bug', 'panic']);

export interface DaemonOptions {
  /** --interval; otherwise config, then the server's answer. */
  intervalSec?: number;
  once?: boolean;
  /** Aborted on SIGTERM/SIGINT: the current cycle finishes, then the loop ends. */
  stop: AbortSignal;
  random?: () => number;
  /**
   * Real time for the push stream, the kernel log follower and tripwire
   * retries (the agent's clock drives kernel waits and may be a test's fake).
   */
  timers?: Clock;
  /** The kernel log to follow (default /dev/kmsg). */
  kmsgPath?: string;
  /** Called after every cycle (tests, benchmarks). */
  onCycle?: (outcome: UpdateOutcome | undefined, err?: unknown) => void;
}

/** What makes two desired levels the same for the agent: the level and whether going down is allowed. */
function desiredKey(d: DesiredLevel | null | undefined): string {
  return d === null || d === undefined ? 'none' : `${d.level}:${d.allowDowngrade ? 'down' : 'up'}`;
}

export function jitteredIntervalMs(intervalSec: number, random: () => number): number {
  return Math.round(intervalSec * 1000 * (1 - INTERVAL_JITTER + 2 * INTERVAL_JITTER * random()));
}

/** Exponential backoff with jitter in [50 %, 100 %] of the step, never above `capMs`. */
export function backoffMs(failures: number, random: () => number, capMs = BACKOFF_MAX_MS): number {
  const step = Math.min(capMs, BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(step * (0.5 + 0.5 * random()));
}

/**
 * The long-running agent: boot re-apply, then check+update now and every
 * interval, on demand (trigger, wired to SIGUSR1), stopping cleanly.
 * INVARIANTS:
 * - One cycle at a time; a trigger during a cycle runs one more cycle after it.
 * - Server errors only delay the next cycle; they never touch applied patches.
 * - Kernel operations are never interrupted by stop; stop takes effect between cycles.
 */
export class Daemon {
  readonly #agent: Agent;
  readonly #opts: DaemonOptions;
  readonly #random: () => number;
  readonly #timers: Clock;
  #wake = new AbortController();
  #pending = false;
  #cycleRunning = false;
  /** The desired level the last successful check-in answered with. */
  #lastCheckKey: string | undefined;
  /** A pushed event not yet acted on (it came during a cycle). */
  #heldEvent: DesiredEvent | undefined;
  /** The pushed event the next cycle acts on directly (no check-in before the apply). */
  #pushed: DesiredEvent | undefined;
  /** When the pushed-event trigger is due, and which scheduling is current. */
  #dueAt: number | undefined;
  #scheduleSeq = 0;
  #lastUrgentReportAt = -Infinity;
  /** The push stream's state, for tests and status. */
  pushState: 'off' | 'connecting' | 'connected' | 'revoked' = 'off';
  reporter: TripwireReporter | undefined;

  constructor(agent: Agent, opts: DaemonOptions) {
    this.#agent = agent;
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
    this.#timers = opts.timers ?? systemClock;
  }

  trigger(): void {
    this.#pending = true;
    this.#wake.abort();
  }

  async run(): Promise<number> {
    const { log } = this.#agent.deps;
    const config = loadConfig(this.#agent.deps.configPath);
    log.log('info', 'agent starting', { server: config.server, hostId: config.hostId });
    try {
      const boot = await this.#agent.boot();
      log.log('info', `boot: ${boot.summary}`);
    } catch (err) {
      log.log('error', 'boot re-apply failed', describe(err));
    }
    this.#agent.keepSpaceReserve();
    this.#agent.publishScannerFiles();
    const background = new AbortController();
    const onStop = (): void => background.abort();
    this.#opts.stop.addEventListener('abort', onStop, { once: true });
    const tasks: Promise<unknown>[] = [];
    if (this.#opts.once !== true) {
      if (config.push !== false) tasks.push(this.#runPush(background.signal));
      if (config.kernelLog !== false) tasks.push(...this.#runKernelLog(background.signal));
    }
    try {
      return await this.#loop(config);
    } finally {
      background.abort();
      this.#opts.stop.removeEventListener('abort', onStop);
      await Promise.allSettled(tasks);
    }
  }

  async #loop(config: AgentConfig): Promise<number> {
    const { clock, log } = this.#agent.deps;
    let failures = 0;
    let serverIntervalSec: number | undefined;
    let lastExit: number = StatusExit.ERROR;
    while (!this.#opts.stop.aborted) {
      this.#pending = false;
      let delayMs: number;
      const intervalSec =
        this.#opts.intervalSec ?? config.checkinIntervalSec ?? serverIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC;
      this.#cycleRunning = true;
      try {
        const pushed = this.#pushed;
        this.#pushed = undefined;
        const outcome = await this.#agent.update({ manual: false, ...(pushed === undefined ? {} : { pushed }) });
        if (outcome.check !== undefined) this.#lastCheckKey = desiredKey(outcome.check.desired);
        this.#opts.onCycle?.(outcome);
        serverIntervalSec = outcome.check?.checkinIntervalSec ?? serverIntervalSec;
        failures = 0;
        lastExit = outcome.exit;
        log.log(outcome.exit === StatusExit.ERROR ? 'error' : 'info', outcome.summary, {
          applied: outcome.check?.appliedLevel,
          latest: outcome.check?.latestLevel,
          kernelSupported: outcome.check?.kernelSupported,
          ...(outcome.disabled ? { disabled: outcome.disabled.detail } : {}),
        });
        delayMs = jitteredIntervalMs(
          this.#opts.intervalSec ?? config.checkinIntervalSec ?? serverIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC,
          this.#random,
        );
      } catch (err) {
        this.#opts.onCycle?.(undefined, err);
        lastExit = err instanceof LivegraftError && err.code === 'BUSY' ? StatusExit.BUSY : StatusExit.ERROR;
        const transient = isTransient(err) || (err instanceof LivegraftError && err.code === 'BUSY');
        if (transient) {
          failures++;
          delayMs = backoffMs(failures, this.#random, intervalSec * 1000);
          log.log('warn', 'cycle failed; backing off', { ...describe(err), failures, retryInMs: delayMs });
        } else {
          failures = 0;
          delayMs = jitteredIntervalMs(intervalSec, this.#random);
          log.log('error', 'cycle failed', { ...describe(err), retryInMs: delayMs });
        }
      } finally {
        this.#cycleRunning = false;
      }
      // An event that came in during the cycle is judged against what the cycle learnt.
      const held = this.#heldEvent;
      this.#heldEvent = undefined;
      if (held !== undefined) this.#consider(held);
      if (this.#opts.once) break;
      if (this.#pending) continue;
      this.#wake = new AbortController();
      await clock.sleep(delayMs, AbortSignal.any([this.#opts.stop, this.#wake.signal]));
    }
    log.log('info', 'agent stopping');
    return this.#opts.once ? lastExit : 0;
  }

  // ---- push ---------------------------------------------------------------------------------------------

  /** A pushed desired level: act on it (after its spread) unless the last check-in already said the same. */
  #onDesired(ev: DesiredEvent): void {
    if (this.#cycleRunning) {
      this.#heldEvent = ev;
      return;
    }
    this.#consider(ev);
  }

  #consider(ev: DesiredEvent): void {
    if (desiredKey(ev.desired) === this.#lastCheckKey) return;
    const spread = Math.min(MAX_PUSH_SPREAD_MS, Math.max(0, ev.spreadMs));
    this.#agent.deps.log.log('info', 'pushed a new desired level; checking', {
      desired: ev.desired?.level ?? null,
      inMs: spread,
    });
    this.#pushed = ev;
    this.#triggerIn(spread);
  }

  /** Runs a cycle in `ms` (an earlier pending trigger wins). */
  #triggerIn(ms: number): void {
    const due = this.#timers.now() + ms;
    if (this.#dueAt !== undefined && this.#dueAt <= due) return;
    this.#dueAt = due;
    const seq = ++this.#scheduleSeq;
    if (ms <= 0) {
      this.#dueAt = undefined;
      this.trigger();
      return;
    }
    void this.#timers.sleep(ms, this.#opts.stop).then(() => {
      if (seq !== this.#scheduleSeq || this.#opts.stop.aborted) return;
      this.#dueAt = undefined;
      this.trigger();
    });
  }

  /**
   * Holds the push stream open for the daemon's life. A revoked token stops
   * it; it starts again only when the config holds a different token (the
   * host was re-enrolled), checked every REVOKED_RECHECK_MS.
   */
  async #runPush(stop: AbortSignal): Promise<void> {
    const { log, fetch } = this.#agent.deps;
    let revokedToken: string | undefined;
    while (!stop.aborted) {
      let config: AgentConfig;
      try {
        config = loadConfig(this.#agent.deps.configPath);
      } catch (err) {
        log.log('warn', `push stream: ${(err as Error).message}`);
        await this.#timers.sleep(REVOKED_RECHECK_MS, stop);
        continue;
      }
      if (config.token === revokedToken) {
        await this.#timers.sleep(REVOKED_RECHECK_MS, stop);
        continue;
      }
      const client = new ServerClient({ server: config.server, token: config.token, fetch });
      this.pushState = 'connecting';
      const stream = new PushStream({
        open: (signal, lastEventId) => client.openEvents(signal, lastEventId),
        timers: this.#timers,
        log,
        random: this.#random,
        onDesired: (ev) => this.#onDesired(ev),
        onRevoked: (message) => this.#agent.recordRevoked(message),
        onConnected: () => (this.pushState = 'connected'),
      });
      const end = await stream.run(stop);
      if (end === 'stopped') break;
      this.pushState = 'revoked';
      revokedToken = config.token;
    }
    if (this.pushState !== 'revoked') this.pushState = 'off';
  }

  // ---- kernel log -------------------------------------------------------------------------------------

  /** Follows the kernel log: tripwire hits go to the server at once, warnings/oopses ride the next check-in. */
  #runKernelLog(stop: AbortSignal): Promise<void>[] {
    const { log, fetch } = this.#agent.deps;
    const reporter = new TripwireReporter({
      send: (events) => {
        // The current token, so a re-enrolled host reports again without a restart.
        const c = loadConfig(this.#agent.deps.configPath);
        return new ServerClient({ server: c.server, token: c.token, fetch }).tripwire(events);
      },
      timers: this.#timers,
      log,
      random: this.#random,
      onRevoked: (message) => this.#agent.recordRevoked(message),
    });
    this.reporter = reporter;
    const follower = new KmsgFollower({
      path: this.#opts.kmsgPath ?? DEFAULT_KMSG_PATH,
      timers: this.#timers,
      log,
      onRecord: (r) => this.#onKernelRecord(r, reporter),
    });
    return [reporter.run(stop), follower.run(stop)];
  }

  #onKernelRecord(r: KmsgRecord, reporter: TripwireReporter): void {
    // Only the kernel itself writes facility 0; a user-space line must not fake a hit or halt a rollout.
    if (r.facility !== undefined && r.facility !== 0) return;
    const at = new Date(this.#timers.now()).toISOString();
    const hit = parseTripwireLine(r.text);
    if (hit !== undefined) {
      reporter.add({ ...hit, at, ...(r.usec === undefined ? {} : { kernelTime: r.usec / 1e6 }) });
      return;
    }
    const kind = classifyKernelLine(r.text);
    const queue = this.#agent.deps.kernelEvents;
    if (kind === undefined || queue === undefined) return;
    queue.add(kind, r.text, at);
    this.#agent.deps.log.log('warn', `kernel ${kind}: ${r.text.slice(0, 200)}`, { kernelEvent: kind });
    const now = this.#timers.now();
    if (URGENT_KERNEL_EVENTS.has(kind) && now - this.#lastUrgentReportAt >= KERNEL_EVENT_REPORT_MIN_MS) {
      this.#lastUrgentReportAt = now;
      this.trigger();
    }
  }
}

function describe(err: unknown): Record<string, unknown> {
  return err instanceof LivegraftError
    ? { code: err.code, error: err.message }
    : { code: 'INTERNAL', error: String((err as Error)?.message ?? err) };
}
