import { LivegraftError, MAX_TRIPWIRE_EVENTS, type TripwireEvent } from '@livegraft/protocol';
import { isTransient } from './client.ts';
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/log.ts';

/** Events waiting to be sent; beyond this the oldest are dropped (a flood is reported by its first thousand). */
export const MAX_QUEUED_TRIPWIRES = 1000;
/** Hits arriving together go in one request. */
export const TRIPWIRE_BATCH_DELAY_MS = 250;
export const TRIPWIRE_RETRY_BASE_MS = 1000;
export const TRIPWIRE_RETRY_MAX_MS = 5 * 60_000;
/** Nothing queued: the loop still wakes this often to notice stop (it is woken early by add). */
const IDLE_WAIT_MS = 60_000;

export interface TripwireReporterOptions {
  send: (events: TripwireEvent[]) => Promise<number>;
  timers: Clock;
  log: Logger;
  random?: () => number;
  /** The server refused the token: reporting stops. */
  onRevoked: (message: string) => void;
}

/**
 * Sends tripwire hits read from the kernel log to POST /api/v1/hosts/tripwire:
 * batched (up to the protocol's 100 per request), from a bounded queue,
 * retried with jittered exponential backoff while the server is unreachable.
 * The server drops duplicates, so a batch resent after a lost answer is harmless.
 */
export class TripwireReporter {
  readonly #o: TripwireReporterOptions;
  readonly #random: () => number;
  #queue: TripwireEvent[] = [];
  #wake = new AbortController();
  dropped = 0;
  sent = 0;

  constructor(o: TripwireReporterOptions) {
    this.#o = o;
    this.#random = o.random ?? Math.random;
  }

  get queued(): number {
    return this.#queue.length;
  }

  add(event: TripwireEvent): void {
    this.#queue.push(event);
    if (this.#queue.length > MAX_QUEUED_TRIPWIRES) {
      this.#queue.shift();
      this.dropped++;
    }
    this.#wake.abort();
  }

  async run(stop: AbortSignal): Promise<void> {
    const { timers, log } = this.#o;
    let failures = 0;
    while (!stop.aborted) {
      if (this.#queue.length === 0) {
        this.#wake = new AbortController();
        await timers.sleep(IDLE_WAIT_MS, AbortSignal.any([stop, this.#wake.signal]));
        continue;
      }
      if (failures === 0) await timers.sleep(TRIPWIRE_BATCH_DELAY_MS, stop);
      if (stop.aborted) break;
      const batch = this.#queue.slice(0, MAX_TRIPWIRE_EVENTS);
      try {
        const accepted = await this.#o.send(batch);
        this.#remove(batch);
        this.sent += batch.length;
        failures = 0;
        log.log('info', `reported ${batch.length} tripwire hit(s)`, {
          accepted,
          cves: [...new Set(batch.map((e) => e.cve))],
        });
      } catch (err) {
        const status = err instanceof LivegraftError ? err.details?.['status'] : undefined;
        if (status === 401) {
          this.#o.onRevoked(
            "the server refused this host's token for a tripwire report (HTTP 401): credential revoked",
          );
          return;
        }
        if (!isTransient(err)) {
          // The server will never take these (a validation error): keep the rest flowing.
          this.#remove(batch);
          this.dropped += batch.length;
          log.log('error', 'the server refused a tripwire report; dropping it', {
            code: err instanceof LivegraftError ? err.code : 'INTERNAL',
            error: (err as Error).message,
          });
          continue;
        }
        failures++;
        const step = Math.min(TRIPWIRE_RETRY_MAX_MS, TRIPWIRE_RETRY_BASE_MS * 2 ** Math.min(20, failures - 1));
        const delay = Math.round(step * (0.5 + 0.5 * this.#random()));
        log.log('warn', 'tripwire report failed; retrying', {
          code: err instanceof LivegraftError ? err.code : 'INTERNAL',
          failures,
          retryInMs: delay,
        });
        await timers.sleep(delay, stop);
      }
    }
  }

  #remove(batch: TripwireEvent[]): void {
    const done = new Set(batch);
    this.#queue = this.#queue.filter((e) => !done.has(e));
  }
}
