import { LivegraftError, desiredEventValidator, type DesiredEvent } from '@livegraft/protocol';
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/log.ts';
import { SseParser } from './sse.ts';

/** First reconnect delay when the server named none (`retry:`). */
export const PUSH_RETRY_BASE_MS = 1000;
/** Reconnect delays double up to this. */
export const PUSH_RETRY_MAX_MS = 5 * 60_000;
/** A `retry:` above this is clamped, so a bad server cannot park the stream for days. */
export const PUSH_RETRY_CEILING_MS = 10 * 60_000;
/**
 * The server sends a comment every 25 s; a stream quiet for this long is a
 * dead connection (a NAT dropped it, the server hung) and is reopened.
 */
export const PUSH_IDLE_TIMEOUT_MS = 90_000;
/** How often the idle check runs. */
const IDLE_CHECK_MS = 5_000;

export type PushEnd = 'stopped' | 'revoked';

export interface PushStreamOptions {
  /** Opens one connection (ServerClient.openEvents). */
  open: (signal: AbortSignal, lastEventId: string | undefined) => Promise<Response>;
  /** Real time for reconnect waits and the idle check (kernel waits use the agent's clock). */
  timers: Clock;
  log: Logger;
  random?: () => number;
  onDesired: (event: DesiredEvent) => void;
  /** The server refused the token: the stream stops for good. */
  onRevoked: (message: string) => void;
  /** Each time a connection is open and the server answered 200. */
  onConnected?: () => void;
}

/** Reconnect delay after `failures` failed or ended connections in a row: exponential, jittered, bounded. */
export function pushRetryMs(failures: number, serverRetryMs: number | undefined, random: () => number): number {
  const base = Math.min(PUSH_RETRY_CEILING_MS, Math.max(PUSH_RETRY_BASE_MS, serverRetryMs ?? PUSH_RETRY_BASE_MS));
  const step = Math.min(Math.max(base, PUSH_RETRY_MAX_MS), base * 2 ** Math.min(20, Math.max(0, failures - 1)));
  return Math.round(step * (0.5 + 0.5 * random()));
}

/**
 * The agent's end of `GET /api/v1/events/stream`: keeps one connection
 * open, hands every `desired` event to the daemon, and reconnects with
 * jittered exponential backoff (honouring the server's `retry:` and
 * sending Last-Event-ID when the server numbers its events). A 401 ends it
 * for good: the token was revoked, and retrying would only hammer the server.
 * INVARIANT: at most one connection at a time; every wait is bounded and
 * ends early on stop.
 */
export class PushStream {
  readonly #o: PushStreamOptions;
  readonly #random: () => number;
  readonly #parser = new SseParser();
  /** Connections that ended (or failed) in a row without delivering an event. */
  #failures = 0;
  connected = false;

  constructor(o: PushStreamOptions) {
    this.#o = o;
    this.#random = o.random ?? Math.random;
  }

  async run(stop: AbortSignal): Promise<PushEnd> {
    const { log, timers } = this.#o;
    while (!stop.aborted) {
      let outcome: 'ended' | 'failed' | 'revoked';
      try {
        outcome = await this.#connectOnce(stop);
      } catch (err) {
        if (stop.aborted) break;
        outcome = 'failed';
        log.log('warn', 'push stream failed', {
          code: err instanceof LivegraftError ? err.code : 'INTERNAL',
          error: (err as Error).message,
        });
      }
      this.connected = false;
      if (outcome === 'revoked') return 'revoked';
      if (stop.aborted) break;
      this.#failures++;
      const delay = pushRetryMs(this.#failures, this.#parser.retryMs, this.#random);
      log.log('debug', 'push stream closed; reconnecting', { outcome, retryInMs: delay, failures: this.#failures });
      await timers.sleep(delay, stop);
    }
    return 'stopped';
  }

  async #connectOnce(stop: AbortSignal): Promise<'ended' | 'failed' | 'revoked'> {
    const conn = new AbortController();
    const onStop = (): void => conn.abort();
    stop.addEventListener('abort', onStop, { once: true });
    try {
      const res = await this.#o.open(conn.signal, this.#parser.lastEventId);
      if (res.status === 401) {
        await res.body?.cancel().catch(() => undefined);
        const message = `the server refused this host's token on the push stream (HTTP 401): credential revoked; re-enrol the host`;
        this.#o.log.log('error', message, { code: 'CREDENTIAL_REVOKED' });
        this.#o.onRevoked(message);
        return 'revoked';
      }
      if (res.status !== 200 || res.body === null) {
        await res.body?.cancel().catch(() => undefined);
        this.#o.log.log('warn', `push stream refused with HTTP ${res.status}`, { status: res.status });
        return 'failed';
      }
      if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        await res.body.cancel().catch(() => undefined);
        this.#o.log.log('warn', 'push stream answer is not text/event-stream');
        return 'failed';
      }
      this.connected = true;
      this.#o.onConnected?.();
      return await this.#read(res.body, conn);
    } finally {
      stop.removeEventListener('abort', onStop);
      conn.abort();
    }
  }

  async #read(body: ReadableStream<Uint8Array>, conn: AbortController): Promise<'ended' | 'failed'> {
    const { timers } = this.#o;
    let lastByteAt = timers.now();
    let idle = false;
    // The watchdog ends with the connection (conn is aborted in connectOnce's finally).
    void (async () => {
      while (!conn.signal.aborted) {
        await timers.sleep(IDLE_CHECK_MS, conn.signal);
        if (!conn.signal.aborted && timers.now() - lastByteAt > PUSH_IDLE_TIMEOUT_MS) {
          idle = true;
          conn.abort();
        }
      }
    })();
    const decoder = new TextDecoder();
    this.#parser.reset();
    try {
      for await (const chunk of body) {
        lastByteAt = timers.now();
        for (const ev of this.#parser.feed(decoder.decode(chunk, { stream: true }))) this.#dispatch(ev.event, ev.data);
      }
    } catch (err) {
      if (idle) {
        this.#o.log.log('warn', `push stream quiet for ${PUSH_IDLE_TIMEOUT_MS} ms; reconnecting`);
        return 'failed';
      }
      if (conn.signal.aborted) return 'ended';
      throw err;
    }
    return 'ended';
  }

  #dispatch(event: string, data: string): void {
    if (event !== 'desired') return;
    let parsed: DesiredEvent;
    try {
      parsed = desiredEventValidator.parse(JSON.parse(data));
    } catch (err) {
      this.#o.log.log('warn', `ignoring a malformed desired event: ${(err as Error).message}`);
      return;
    }
    // A delivered event shows the connection works: the next reconnect starts from the base delay.
    this.#failures = 0;
    this.#o.onDesired(parsed);
  }
}
