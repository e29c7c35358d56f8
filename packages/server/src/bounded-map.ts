/**
 * A Map that holds at most `max` entries, oldest first: set() makes a key the
 * newest, and the oldest entry goes once there are more than `max`. For the
 * per-node caches a check-in fills (one entry a host), so memory stays
 * bounded however many hosts or tokens are seen.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  readonly #max: number;

  constructor(max: number) {
    super();
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`a bounded map holds at least 1 entry, not ${max}`);
    this.#max = max;
  }

  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    if (this.size > this.#max) {
      const oldest = this.keys().next();
      if (oldest.done !== true) super.delete(oldest.value);
    }
    return this;
  }
}
