import type { FastifyReply, FastifyRequest } from 'fastify';
import { LivegraftError } from '@livegraft/protocol';

/** Buckets kept at most; beyond it the least recently used are dropped (they were full or idle). */
const MAX_BUCKETS = 10_000;

export interface RateLimitOptions {
  /** Requests allowed at once. */
  burst: number;
  /** Sustained requests per minute. */
  perMinute: number;
  /** Milliseconds; injected so tests need not sleep. */
  now?: () => number;
}

/**
 * An in-process token bucket per client IP. Enough for enrolment, the only
 * unauthenticated path that writes; a fleet behind one NAT should raise the
 * limits. Memory is bounded by MAX_BUCKETS.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #o: Required<RateLimitOptions>;

  constructor(o: RateLimitOptions) {
    this.#o = { now: Date.now, ...o };
  }

  /** Takes a token for the key; returns 0 if allowed, else the seconds until one is available. */
  take(key: string): number {
    const now = this.#o.now();
    const ratePerMs = this.#o.perMinute / 60_000;
    const b = this.#buckets.get(key) ?? { tokens: this.#o.burst, at: now };
    b.tokens = Math.min(this.#o.burst, b.tokens + (now - b.at) * ratePerMs);
    b.at = now;
    this.#buckets.delete(key);
    this.#buckets.set(key, b);
    if (this.#buckets.size > MAX_BUCKETS) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / ratePerMs / 1000));
  }

  /** An onRequest hook answering 429 with Retry-After when the client's bucket is empty. */
  hook(): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
    return async (req, reply) => {
      const wait = this.take(req.ip);
      if (wait > 0) {
        void reply.header('retry-after', String(wait));
        throw new LivegraftError('RATE_LIMITED', `too many requests from ${req.ip}; retry in ${wait} s`, {
          details: { retryAfterSec: wait },
        });
      }
    };
  }
}
