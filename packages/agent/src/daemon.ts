import { LivegraftError, StatusExit } from '@livegraft/protocol';
import { DEFAULT_CHECKIN_INTERVAL_SEC, type Agent } from './agent.ts';
import { isTransient } from './client.ts';
import { loadConfig } from './config.ts';

/** First retry after a server error, doubling up to the max. */
export const BACKOFF_BASE_MS = 10_000;
export const BACKOFF_MAX_MS = 15 * 60_000;
/** ±10 % on the normal interval so a fleet rebooted together does not check in together. */
export const INTERVAL_JITTER = 0.1;

export interface DaemonOptions {
  /** --interval; otherwise config, then the server's answer. */
  intervalSec?: number;
  once?: boolean;
  /** Aborted on SIGTERM/SIGINT: the current cycle finishes, then the loop ends. */
  stop: AbortSignal;
  random?: () => number;
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
  #wake = new AbortController();
  #pending = false;

  constructor(agent: Agent, opts: DaemonOptions) {
    this.#agent = agent;
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
  }

  trigger(): void {
    this.#pending = true;
    this.#wake.abort();
  }

  async run(): Promise<number> {
    const { clock, log } = this.#agent.deps;
    const config = loadConfig(this.#agent.deps.configPath);
    log.log('info', 'agent starting', { server: config.server, hostId: config.hostId });
    try {
      const boot = await this.#agent.boot();
      log.log('info', `boot: ${boot.summary}`);
    } catch (err) {
      log.log('error', 'boot re-apply failed', describe(err));
    }
    let failures = 0;
    let serverIntervalSec: number | undefined;
    let lastExit: number = StatusExit.ERROR;
    while (!this.#opts.stop.aborted) {
      this.#pending = false;
      let delayMs: number;
      const intervalSec =
        this.#opts.intervalSec ?? config.checkinIntervalSec ?? serverIntervalSec ?? DEFAULT_CHECKIN_INTERVAL_SEC;
      try {
        const outcome = await this.#agent.update({ manual: false });
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
      }
      if (this.#opts.once) break;
      if (this.#pending) continue;
      this.#wake = new AbortController();
      await clock.sleep(delayMs, AbortSignal.any([this.#opts.stop, this.#wake.signal]));
    }
    log.log('info', 'agent stopping');
    return this.#opts.once ? lastExit : 0;
  }
}

function describe(err: unknown): Record<string, unknown> {
  return err instanceof LivegraftError
    ? { code: err.code, error: err.message }
    : { code: 'INTERNAL', error: String((err as Error)?.message ?? err) };
}
