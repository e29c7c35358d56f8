import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type {
  EnrollResponse,
  FleetExposure,
  HostRecord,
  PatchRecord,
  RegistrationKeyCreated,
} from '@livegraft/protocol';
import type { CvePage } from '@livegraft/protocol/dashboard';
import { identity, PROC_192 } from './compliance-world.ts';
import { buildDashboard, CHROMIUM, CHROMIUM_ARGS, collectNoise, haveChromium } from './dashboard-chromium.ts';
import { hostByName, startDashboardWorld, type DashboardWorld } from './dashboard-world.ts';

/**
 * What the dashboard says must be true: every count adds up to its total,
 * recent applies and tripwire hits are there on load, a host's timeline has
 * all its applies, unsupported and held hosts say so, every open CVE can be
 * reached, and the console stays clean. Real Chromium, real server.
 */

const STEP_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 180_000;
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'none', 'not rated'] as const;
/** A Debian kernel no level is published for. */
const PROC_UNSUPPORTED =
  'Linux version 6.1.0-40-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.153-1 (2025-09-20)';
const FIVE_MIN = 5 * 60_000;

describe(
  'dashboard numbers and states in Chromium',
  { skip: haveChromium ? false : `no Chromium at ${CHROMIUM}` },
  () => {
    let out: string;
    let world: DashboardWorld;
    let browser: Browser;
    const contexts: BrowserContext[] = [];
    let level3Fix: string;

    before(async () => {
      out = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-truth-'));
      await buildDashboard(join(out, 'dist'));
      world = await startDashboardWorld(join(out, 'dist'));

      // A host on a kernel nothing is published for; its agent says "unsupported".
      const key = await world.ok<RegistrationKeyCreated>('POST', '/registration-keys', {
        name: 'edge key',
        feed: 'production',
      });
      const edge = await world.ok<EnrollResponse>(
        'POST',
        '/hosts/enroll',
        { registrationKey: key.key, hostname: 'edge-1', kernel: identity(PROC_UNSUPPORTED), agentVersion: '0.1.0' },
        'none',
      );
      world.hosts.set('edge-1', { ...edge, procVersion: PROC_UNSUPPORTED });
      await world.checkin('edge-1', 0, { state: 'unsupported' });

      // Level 3 in canary: web-canary-1 applied it five minutes ago; web-canary-2 ignores its fix (held at 2).
      await world.publishLevel(PROC_192, 3, []);
      const patches = await world.ok<PatchRecord[]>('GET', `/patches?kernelId=${world.kernel192}`);
      level3Fix = patches.find((p) => p.level === 3)?.fixes[0]?.id ?? '';
      assert.notEqual(level3Fix, '');
      const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
      await world.ok('PATCH', `/hosts/${hostByName(hosts, 'web-canary-2').id}`, { ignore: [level3Fix] });
      await world.checkin('web-canary-2', 2);
      await world.checkin('web-canary-1', 3, {
        lastApply: {
          action: 'apply',
          fromLevel: 2,
          toLevel: 3,
          ok: true,
          durationMs: 1480,
          at: new Date(Date.now() - FIVE_MIN).toISOString(),
        },
      });
      await world.ok('POST', '/tokens', { name: 'ci-release-bot', role: 'operator' });

      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    });

    after(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await browser?.close();
      await world?.stop();
      await rm(out, { recursive: true, force: true });
    });

    async function newPage(): Promise<Page> {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      contexts.push(context);
      context.setDefaultTimeout(STEP_TIMEOUT_MS);
      return context.newPage();
    }

    async function signIn(page: Page, token: string): Promise<void> {
      await page.goto(`${world.url}/`);
      await page.fill('#token', token);
      await page.click('button[type=submit]');
      await page.waitForSelector('#host-stats');
    }

    const text = async (page: Page, selector: string): Promise<string> =>
      (await page.locator(selector).first().textContent()) ?? '';

    test(
      'overview: the severity bars and the host tiles add up to their totals',
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const page = await newPage();
        await signIn(page, world.viewer.token);
        await page.waitForSelector('#exposure');
        const exposure = await world.ok<FleetExposure>('GET', '/exposure');
        let sum = 0;
        for (const s of SEVERITIES) {
          const shown = await text(page, `.sevbar[data-severity="${s}"] .sevbar-value`);
          assert.equal(shown, String(exposure.counts[s]), `${s} bar`);
          sum += Number(shown);
        }
        assert.ok(exposure.counts['not rated'] > 0, 'the seeded fleet has not-rated exposures');
        assert.equal(await page.getByTestId('exposure-total').textContent(), String(sum));

        const tiles = await page.locator('#host-stats [data-stat] .stat-value').allTextContents();
        const [total, ...buckets] = tiles.map(Number);
        assert.equal(
          buckets.reduce((a, b) => a + b, 0),
          total,
        );
        assert.equal(total, (await world.ok<HostRecord[]>('GET', '/hosts')).length);
        assert.equal(await text(page, '[data-stat="unsupported"] .stat-value'), '1');
        assert.equal(await text(page, '[data-stat="held"] .stat-value'), '1');
      },
    );

    test(
      'live activity on load: the apply and the tripwire hit from minutes ago, token names readable',
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const page = await newPage();
        await signIn(page, world.admin);
        const activity = page.locator('#activity');
        await activity.waitFor();
        await activity.locator('li[data-kind="apply"]', { hasText: 'web-canary-1 applied level 3' }).waitFor();
        await activity
          .locator('li[data-kind="tripwire"]', { hasText: 'legacy-1' })
          .filter({ hasText: 'php-fpm' })
          .waitFor();
        await activity.locator('li', { hasText: 'API token “ci-release-bot” created (operator role)' }).waitFor();
        const all = (await activity.textContent()) ?? '';
        assert.doesNotMatch(all, /token\.create [0-9a-f-]{8}/, 'no raw action and id');
      },
    );

    test('host timeline: every apply and readable tag changes', { timeout: TEST_TIMEOUT_MS }, async () => {
      const page = await newPage();
      await signIn(page, world.viewer.token);
      const canary = hostByName(await world.ok<HostRecord[]>('GET', '/hosts'), 'web-canary-1');
      await page.goto(`${world.url}/hosts/${canary.id}`);
      const timeline = page.locator('#timeline');
      await timeline.waitFor();
      const applies = await timeline.locator('li[data-kind="apply"]').allTextContents();
      for (const [from, to] of [
        [0, 1],
        [1, 2],
        [2, 3],
      ]) {
        assert.ok(
          applies.some((t) => t.includes(`Applied level ${to} from level ${from}`)),
          `apply ${from}→${to} in ${applies.join(' | ')}`,
        );
      }
      const changes = (await timeline.locator('li[data-kind="change"]').allTextContents()).join(' | ');
      assert.match(changes, /Tags set to web, eu-west by bootstrap admin/);
      assert.doesNotMatch(changes, /host\.update/);
    });

    test(
      'an unsupported kernel and a held host say so (hosts, host page, rollouts)',
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const page = await newPage();
        await signIn(page, world.viewer.token);
        const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
        await page.goto(`${world.url}/hosts?status=unsupported`);
        const rows = page.locator('table[aria-label="hosts"] tbody tr');
        await rows.first().waitFor();
        assert.equal(await rows.count(), 1);
        assert.match((await rows.first().textContent()) ?? '', /edge-1.*Unsupported kernel/);

        await page.goto(`${world.url}/hosts/${hostByName(hosts, 'edge-1').id}`);
        await page.getByTestId('unsupported-kernel').waitFor();
        assert.match(await text(page, 'h1'), /Unsupported kernel/);
        assert.doesNotMatch(await text(page, 'h1'), /Stale/);
        assert.equal(await page.getByText('No live patch applied.').count(), 0);

        await page.goto(`${world.url}/hosts?status=held`);
        await rows.first().waitFor();
        assert.equal(await rows.count(), 1);
        assert.match((await rows.first().textContent()) ?? '', /web-canary-2.*Held/);

        await page.goto(`${world.url}/rollouts`);
        const canary = page.locator(`#kernel-${world.kernel192.slice(0, 12)} tr[data-feed="canary"]`);
        await canary.waitFor();
        const held = canary.getByTestId('held');
        await held.waitFor();
        assert.match((await held.textContent()) ?? '', /1 held by its ignore-list \(web-canary-2\)/);
        assert.match((await held.getAttribute('title')) ?? '', new RegExp(`web-canary-2: ${level3Fix}`));
      },
    );

    test('CVEs page: the total, paging, and a search past the first pages', { timeout: TEST_TIMEOUT_MS }, async () => {
      const page = await newPage();
      await signIn(page, world.viewer.token);
      const all = await world.ok<CvePage>('GET', '/dashboard/cves?limit=1');
      assert.ok(all.total > 50, `more open CVEs (${all.total}) than one page`);
      await page.goto(`${world.url}/cves`);
      const count = page.getByTestId('cve-count');
      await count.waitFor();
      assert.equal(await count.getAttribute('data-total'), String(all.total));
      assert.match((await count.textContent()) ?? '', new RegExp(`^${all.total} CVEs with open SLA windows`));
      const rows = page.locator('table[aria-label="open CVEs"] tbody tr');
      const shown = async (): Promise<string[]> =>
        rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-cve') ?? ''));
      await rows.first().waitFor();
      const first = await world.ok<CvePage>('GET', '/dashboard/cves?limit=50');
      assert.deepEqual(
        await shown(),
        first.items.map((c) => c.id),
      );
      await page.click('[data-page="next"]');
      const second = await world.ok<CvePage>('GET', '/dashboard/cves?limit=50&offset=50');
      await page.locator(`tr[data-cve="${second.items[0]?.id ?? ''}"]`).waitFor();
      assert.deepEqual(
        await shown(),
        second.items.map((c) => c.id),
      );
      assert.match((await count.textContent()) ?? '', /showing 51–100/);
      assert.match(await text(page, '.pager'), new RegExp(`page 2 of ${Math.ceil(all.total / 50)}`));

      // One far beyond the first pages is reached by searching.
      const last = await world.ok<CvePage>('GET', `/dashboard/cves?limit=1&offset=${all.total - 1}`);
      const target = last.items[0]?.id ?? '';
      await page.fill('#cve', target.slice(4));
      await page.click('form.search button[type=submit]');
      await page.locator(`tr[data-cve="${target}"]`).waitFor();
      assert.match((await count.textContent()) ?? '', /matching/);
    });

    test(
      'console: no 401 on the sign-in page, no 403 on any page a viewer opens',
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const page = await newPage();
        const noise = collectNoise(page);
        await page.goto(`${world.url}/`);
        await page.waitForSelector('#token');
        await page.reload();
        await page.waitForSelector('#token');
        assert.deepEqual(noise, { console: [], failed: [], errors: [] }, 'sign-in page');

        await page.fill('#token', world.viewer.token);
        await page.click('button[type=submit]');
        await page.waitForSelector('#host-stats');
        const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
        const cve = (await world.ok<CvePage>('GET', '/dashboard/cves?limit=1')).items[0]?.id ?? '';
        const pages: [string, string][] = [
          ['/', '#activity'],
          ['/hosts', 'table[aria-label="hosts"]'],
          [`/hosts/${hostByName(hosts, 'legacy-1').id}`, '#timeline'],
          [`/hosts/${hostByName(hosts, 'edge-1').id}`, '#timeline'],
          ['/rollouts', 'table.feeds'],
          ['/cves', 'table[aria-label="open CVEs"]'],
          [`/cves/${cve}`, '[data-testid="exposed"]'],
          ['/pipeline', 'h1'],
          ['/coverage', 'h1'],
          ['/compliance', 'table[aria-label="host compliance"]'],
          ['/tripwires', 'table[aria-label="tripwire events"]'],
        ];
        for (const [path, ready] of pages) {
          await page.goto(`${world.url}${path}`);
          await page.locator(ready).first().waitFor();
          // Every card has its answer (data, or a problem) before the page is judged.
          await page.waitForFunction(
            () =>
              !(
                globalThis as unknown as { document: { body: { innerText: string } } }
              ).document.body.innerText.includes('Loading…'),
          );
        }
        assert.deepEqual(noise, { console: [], failed: [], errors: [] }, 'viewer pages');
      },
    );
  },
);
