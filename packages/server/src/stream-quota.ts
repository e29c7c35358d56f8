import type { ServerResponse } from 'node:http';
import { LivegraftError } from '@livegraft/protocol';

/** Open event streams per token or host; past the cap a new one is refused with 429 STREAM_LIMIT. */
export class StreamQuota {
  readonly #open = new Map<string, number>();
  readonly #cap: number;
  readonly #what: string;

  constructor(cap: number, what: string) {
    this.#cap = cap;
    this.#what = what;
  }

  /** Counts the stream against `key` until `res` closes, or throws if `key` already holds the cap. */
  acquire(key: string, who: string, res: ServerResponse): void {
    const n = this.#open.get(key) ?? 0;
    if (n >= this.#cap) {
      throw new LivegraftError(
        'STREAM_LIMIT',
        `${who} already has ${n} ${this.#what} open (at most ${this.#cap}); close one before opening another`,
        { details: { open: n, max: this.#cap } },
      );
    }
    this.#open.set(key, n + 1);
    res.once('close', () => {
      const left = (this.#open.get(key) ?? 1) - 1;
      if (left <= 0) this.#open.delete(key);
      else this.#open.set(key, left);
    });
  }
}
