// Check-ins ask for a promotion check of their feed. A rollout's thousands of
// asks within a second make one run at once and one more after the gap, not a
// run per ask; an ask after a quiet spell runs at once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROMOTION_CHECK_GAP_MS } from '../src/fleet/service.ts';
import { startFleetHarness, type FleetHarness } from './fleet-helpers.ts';

/** Bounds each wait for a run; far above the gap, so a loaded machine is not mistaken for a missing run. */
const RUN_WAIT_MS = 30_000;

describe('promotion checks that check-ins ask for', () => {
  let h: FleetHarness;
  let runs = 0;
  before(async () => {
    h = await startFleetHarness();
    const fleet = h.server.fleet.fleet;
    const evaluate = fleet.evaluatePromotions.bind(fleet);
    fleet.evaluatePromotions = async (feed?: string) => {
      runs++;
      return evaluate(feed);
    };
  });
  after(async () => {
    await h.stop();
  });

  async function runsReach(n: number): Promise<void> {
    const end = Date.now() + RUN_WAIT_MS;
    while (runs < n && Date.now() < end) await sleep(20);
    assert.equal(runs, n, `expected ${n} promotion runs`);
  }

  it('folds asks that come within the gap after a run into one more run, then stays quiet', async () => {
    const fleet = h.server.fleet.fleet;
    const ask = (): void => fleet.checkPromotionsSoon('production', (err) => assert.fail(String(err)));
    ask();
    await runsReach(1);
    // Asks spread over the gap, each after the run before it has had time to end: one more run, not three.
    for (let i = 0; i < 3; i++) {
      await sleep(PROMOTION_CHECK_GAP_MS / 5);
      ask();
    }
    await runsReach(2);
    await sleep(3 * PROMOTION_CHECK_GAP_MS);
    assert.equal(runs, 2, 'no run without an ask');
    // After a quiet spell an ask runs again.
    ask();
    await runsReach(3);
  });
});
