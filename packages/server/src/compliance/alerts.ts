import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { TripwireRecord } from '@livegraft/protocol';

/** One webhook POST may take this long before it counts as failed. */
export const ALERT_TIMEOUT_MS = 5_000;
/** Attempts per alert, with exponential backoff between them. */
export const ALERT_ATTEMPTS = 5;
export const ALERT_BACKOFF_MS = 1_000;
/** Alerts waiting for delivery at most; beyond this the oldest is dropped (and logged). */
export const MAX_PENDING_ALERTS = 1_000;

export interface TripwireAlert {
  type: 'livegraft.tripwire';
  version: 1;
  /** One line for chat webhooks (Slack and Mattermost show `text`). */
  text: string;
  host: { id: string; hostname: string };
  events: TripwireRecord[];
  sentAt: string;
}

export function tripwireAlert(events: readonly TripwireRecord[], now: Date): TripwireAlert {
  const first = events[0];
  if (first === undefined) throw new RangeError('an alert needs at least one event');
  const cves = [...new Set(events.map((e) => e.cve))].join(', ');
  const who = `pid ${first.pid} uid ${first.uid} comm ${first.comm}`;
  const more = events.length > 1 ? ` (${events.length} events)` : '';
  return {
    type: 'livegraft.tripwire',
    version: 1,
    text: `livegraft: exploit attempt blocked on ${first.hostname}: ${cves} by ${who}${more}`,
    host: { id: first.hostId, hostname: first.hostname },
    events: [...events],
    sentAt: now.toISOString(),
  };
}

export interface AlertSenderOptions {
  url: string;
  log: Logger;
  fetch?: typeof fetch;
  /** Overrides for tests: the wait before retry n (1-based). */
  backoffMs?: (attempt: number) => number;
  timeoutMs?: number;
  attempts?: number;
}

/**
 * Delivers alerts to a webhook in the background, one at a time, in order.
 * A request that raises an alert never waits for the webhook.
 */
export class AlertSender {
  readonly #o: Required<Omit<AlertSenderOptions, 'fetch'>> & { fetch: typeof fetch };
  readonly #queue: TripwireAlert[] = [];
  #running: Promise<void> | undefined;
  #closed = false;
  readonly #stop = new AbortController();

  constructor(o: AlertSenderOptions) {
    this.#o = {
      url: o.url,
      log: o.log,
      fetch: o.fetch ?? fetch,
      backoffMs: o.backoffMs ?? ((n) => ALERT_BACKOFF_MS * 2 ** (n - 1)),
      timeoutMs: o.timeoutMs ?? ALERT_TIMEOUT_MS,
      attempts: o.attempts ?? ALERT_ATTEMPTS,
    };
  }

  send(alert: TripwireAlert): void {
    if (this.#closed) return;
    if (this.#queue.length >= MAX_PENDING_ALERTS) {
      const dropped = this.#queue.shift();
      this.#o.log.warn({ dropped: dropped?.text }, 'alert webhook backlog full; dropped the oldest alert');
    }
    this.#queue.push(alert);
    this.#running ??= this.#drain().finally(() => {
      this.#running = undefined;
    });
  }

  /** Resolves when everything queued so far was delivered or given up. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** Stops retrying; pending alerts are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stop.abort();
    this.#queue.length = 0;
    await this.#running;
  }

  async #drain(): Promise<void> {
    for (let alert = this.#queue.shift(); alert !== undefined && !this.#closed; alert = this.#queue.shift()) {
      await this.#deliver(alert);
    }
  }

  async #deliver(alert: TripwireAlert): Promise<void> {
    const body = JSON.stringify(alert);
    for (let attempt = 1; attempt <= this.#o.attempts && !this.#closed; attempt++) {
      let problem: string;
      let retry = true;
      try {
        const res = await this.#o.fetch(this.#o.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'livegraft-server' },
          body,
          signal: AbortSignal.any([AbortSignal.timeout(this.#o.timeoutMs), this.#stop.signal]),
        });
        await res.body?.cancel();
        if (res.ok) {
          this.#o.log.info({ attempt, status: res.status }, 'tripwire alert delivered');
          return;
        }
        problem = `HTTP ${res.status}`;
        // A client error other than throttling will not fix itself.
        retry = res.status >= 500 || res.status === 429 || res.status === 408;
      } catch (err) {
        problem = (err as Error).message;
      }
      if (!retry || attempt === this.#o.attempts) {
        this.#o.log.error({ attempt, problem, alert: alert.text }, 'tripwire alert not delivered; giving up');
        return;
      }
      this.#o.log.warn({ attempt, problem }, 'tripwire alert delivery failed; retrying');
      await sleep(this.#o.backoffMs(attempt), this.#stop.signal);
    }
  }
}

/** Waits `ms`, or less when `signal` aborts; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}
