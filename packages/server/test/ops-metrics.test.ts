import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { registerSlaGauge, SLA_GAUGE_MAX_AGE_MS } from '../src/compliance/metrics.ts';
import { ServerMetrics } from '../src/metrics.ts';

describe('operations metrics', () => {
  it('livegraft_sla_open_breaches reads the report at most once a minute', async () => {
    const registry = new Registry();
    let now = 1_000_000;
    let calls = 0;
    registerSlaGauge(
      registry,
      async () => {
        calls++;
        return { openBreaches: 3 * calls, hostsInBreach: calls };
      },
      () => now,
    );
    const scrape = async () => registry.metrics();
    assert.match(await scrape(), /^livegraft_sla_open_breaches\{scope="windows"\} 3$/m);
    now += SLA_GAUGE_MAX_AGE_MS - 1;
    assert.match(await scrape(), /^livegraft_sla_open_breaches\{scope="hosts"\} 1$/m);
    assert.equal(calls, 1);
    now += 1;
    assert.match(await scrape(), /^livegraft_sla_open_breaches\{scope="windows"\} 6$/m);
    assert.equal(calls, 2);
  });

  it('livegraft_hosts_stale shows the stale hosts per feed at each scrape', async () => {
    let stale = [{ feed: 'prod', count: 2 }];
    const m = new ServerMetrics({
      hostsByState: async () => [],
      feedLevels: async () => [],
      sseConnections: () => 0,
      staleHosts: async () => stale,
    });
    assert.match(await m.registry.metrics(), /^livegraft_hosts_stale\{feed="prod"\} 2$/m);
    stale = [{ feed: 'canary', count: 1 }];
    const text = await m.registry.metrics();
    assert.match(text, /^livegraft_hosts_stale\{feed="canary"\} 1$/m);
    assert.doesNotMatch(text, /feed="prod"/);
  });

  it('livegraft_hosts_clock_skewed shows hosts with a wrong clock per feed', async () => {
    const m = new ServerMetrics({
      hostsByState: async () => [],
      feedLevels: async () => [],
      sseConnections: () => 0,
      clockSkewedHosts: async () => [{ feed: 'edge', count: 3 }],
    });
    assert.match(await m.registry.metrics(), /^livegraft_hosts_clock_skewed\{feed="edge"\} 3$/m);
  });
});
