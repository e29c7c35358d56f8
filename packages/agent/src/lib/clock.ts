import { setTimeout as delay } from 'node:timers/promises';

/** Time, injected so tests can run a 60 s kernel wait in microseconds. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    try {
      await delay(ms, undefined, signal === undefined ? undefined : { signal });
    } catch (err) {
      // An aborted sleep just ends early; callers check their own signal.
      if ((err as Error).name !== 'AbortError') throw err;
    }
  },
};

/** Every sysfs wait polls at this interval (the kernel selftests use 0.1 s too). */
export const POLL_INTERVAL_MS = 100;

/**
 * Polls `ready` until it returns true or `timeoutMs` passes. Returns whether
 * it became ready; the caller decides what a timeout means.
 */
export async function waitFor(
  clock: Clock,
  ready: () => boolean,
  timeoutMs: number,
  pollMs = POLL_INTERVAL_MS,
): Promise<boolean> {
  const deadline = clock.now() + timeoutMs;
  for (;;) {
    if (ready()) return true;
    if (clock.now() >= deadline) return false;
    await clock.sleep(Math.min(pollMs, Math.max(1, deadline - clock.now())));
  }
}
