/**
 * What a world has started so far (servers, fronts, guests), so that a world
 * whose set-up fails part way stops them again. Otherwise a live server child
 * keeps the test file's process running after its tests have failed, and the
 * suite waits for it until its own timeout.
 */
export class Started {
  readonly #stops: (() => Promise<void>)[] = [];

  add(stop: () => Promise<void>): void {
    this.#stops.push(stop);
  }

  /** Runs `setUp`; if it throws, stops everything added (newest first, each failure ignored) and rethrows. */
  async orStop<T>(setUp: () => Promise<T>): Promise<T> {
    try {
      return await setUp();
    } catch (err) {
      for (const stop of this.#stops.reverse()) await stop().catch(() => undefined);
      throw err;
    }
  }
}
