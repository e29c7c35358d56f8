import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import {
  API_PREFIX,
  type EnrollResponse,
  type HostRecord,
  type PatchRecord,
  type RegistrationKeyCreated,
} from '@livegraft/protocol';
import type { HostPage } from '@livegraft/protocol/dashboard';
import { identity, PROC_192 } from './compliance-world.ts';
import { buildDashboard, CHROMIUM, CHROMIUM_ARGS, collectNoise, haveChromium } from './dashboard-chromium.ts';
import { hostByName, startDashboardWorld, type DashboardWorld } from './dashboard-world.ts';

/**
 * The Hosts and Rollouts pages with more hosts than one page: the server
 * pages, searches and sorts the host list, and neither page downloads the
 * whole list (nor the fleet exposure). Held and unsupported-kernel hosts stay
 * visible. Real Chromium, real server.
 */

const STEP_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 180_000;
/** More than two pages of 50. */
const BULK = 120;
const PROC_UNSUPPORTED =
  'Linux version 6.1.0-40-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.153-1 (2025-09-20)';

describe(
  'dashboard host list paged on the server, in Chromium',
  { skip: haveChromium ? false : `no Chromium at ${CHROMIUM}` },
  () => {
    let out: string;
    let world: DashboardWorld;
    let browser: Browser;
    const contexts: BrowserContext[] = [];
    let total = 0;

    before(async () => {
      out = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-hosts-'));
      await buildDashboard(join(out, 'dist'));
      world = await startDashboardWorld(join(out, 'dist'), { enrollBurst: 1000 });
      const key = await world.ok<RegistrationKeyCreated>('POST', '/registration-keys', {
        name: 'bulk key',
        feed: 'production',
      });
      const enrol = async (hostname: string, proc: string): Promise<void> => {
        const r = await world.ok<EnrollResponse>(
          'POST',
          '/hosts/enroll',
          { registrationKey: key.key, hostname, kernel: identity(proc), agentVersion: '0.1.0' },
          'none',
        );
        world.hosts.set(hostname, { ...r, procVersion: proc });
      };
      for (let i = 0; i < BULK; i += 20) {
        await Promise.all(
          Array.from({ length: 20 }, async (_, j) => {
            const name = `bulk-${String(i + j).padStart(3, '0')}`;
            await enrol(name, PROC_192);
            await world.checkin(name, 0);
          }),
        );
      }
      // One host on a kernel nothing is published for, and one held below its feed's level by its ignore-list.
      await enrol('edge-1', PROC_UNSUPPORTED);
      await world.checkin('edge-1', 0, { state: 'unsupported' });
      await world.publishLevel(PROC_192, 3, []);
      const patches = await world.ok<PatchRecord[]>('GET', `/patches?kernelId=${world.kernel192}`);
      const fix = patches.find((p) => p.level === 3)?.fixes[0]?.id ?? '';
      assert.notEqual(fix, '');
      const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
      await world.ok('PATCH', `/hosts/${hostByName(hosts, 'web-canary-2').id}`, { ignore: [fix] });
      await world.checkin('web-canary-2', 2);
      total = (await world.ok<HostRecord[]>('GET', '/hosts')).length;
      assert.ok(total > BULK);
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    });

    after(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await browser?.close();
      await world?.stop();
      await rm(out, { recursive: true, force: true });
    });

    /** A signed-in viewer's page, and every API path (with its query) it asks for. */
    async function viewerPage(): Promise<{ page: Page; asked: string[] }> {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      contexts.push(context);
      context.setDefaultTimeout(STEP_TIMEOUT_MS);
      const page = await context.newPage();
      const asked: string[] = [];
      page.on('request', (r) => {
        const u = new URL(r.url());
        if (u.pathname.startsWith(API_PREFIX)) asked.push(u.pathname.slice(API_PREFIX.length) + u.search);
      });
      await page.goto(`${world.url}/`);
      await page.fill('#token', world.viewer.token);
      await page.click('button[type=submit]');
      await page.waitForSelector('#host-stats');
      return { page, asked };
    }

    const names = (page: Page): Promise<string[]> =>
      page.locator('table[aria-label="hosts"] tbody tr td:first-child').allTextContents();
    const countText = async (page: Page): Promise<string> => (await page.getByTestId('host-count').textContent()) ?? '';

    test(
      'hosts: pages of 50, search, sort and filters answered by the server; never the whole list',
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const { page, asked } = await viewerPage();
        const noise = collectNoise(page);
        asked.length = 0;
        await page.goto(`${world.url}/hosts`);
        const rows = page.locator('table[aria-label="hosts"] tbody tr');
        await rows.first().waitFor();
        assert.equal(await rows.count(), 50);
        assert.equal(await countText(page), `${total} of ${total} hosts · showing 1–50`);
        const api = await world.ok<HostPage>('GET', '/dashboard/hosts?limit=50', undefined, world.viewer.token);
        assert.deepEqual(
          await names(page),
          api.items.map((r) => r.hostname),
        );
        assert.match(
          (await page.locator('.pager').textContent()) ?? '',
          new RegExp(`page 1 of ${Math.ceil(total / 50)}`),
        );

        await page.click('[data-page="next"]');
        await page.getByTestId('host-count').filter({ hasText: 'showing 51–100' }).waitFor();
        const second = await world.ok<HostPage>('GET', '/dashboard/hosts?limit=50&offset=50');
        assert.deepEqual(
          await names(page),
          second.items.map((r) => r.hostname),
        );

        // The last host by name is on no early page: the search finds it, from the first page.
        await page.fill('#f-text', 'bulk-119');
        await page
          .getByTestId('host-count')
          .filter({ hasText: new RegExp(`^1 of ${total} hosts`) })
          .waitFor();
        assert.deepEqual(await names(page), ['bulk-119']);
        await page.fill('#f-text', '');
        await page
          .getByTestId('host-count')
          .filter({ hasText: `${total} of ${total} hosts · showing 1–50` })
          .waitFor();

        // Sorted by the server over the whole fleet: by name, descending.
        await page.click('table[aria-label="hosts"] th button:has-text("Host")');
        await page.locator('th[aria-sort="ascending"]', { hasText: 'Host' }).waitFor();
        await page.click('table[aria-label="hosts"] th button:has-text("Host")');
        await page.locator('th[aria-sort="descending"]', { hasText: 'Host' }).waitFor();
        const all = (await world.ok<HostRecord[]>('GET', '/hosts')).map((h) => h.hostname).sort();
        await page
          .locator('table[aria-label="hosts"] tbody tr')
          .first()
          .filter({ hasText: all.at(-1)! })
          .waitFor();
        assert.deepEqual(await names(page), all.reverse().slice(0, 50));

        await page.selectOption('#f-feed', 'canary');
        await page
          .getByTestId('host-count')
          .filter({ hasText: `of ${total} hosts` })
          .waitFor();
        const canary = await world.ok<HostPage>('GET', '/dashboard/hosts?feed=canary&limit=200');
        await page
          .getByTestId('host-count')
          .filter({ hasText: new RegExp(`^${canary.matching} of ${total} hosts`) })
          .waitFor();
        assert.deepEqual((await names(page)).sort(), canary.items.map((r) => r.hostname).sort());

        assert.ok(asked.some((p) => p.startsWith('/dashboard/hosts?')));
        assert.deepEqual(
          asked.filter((p) => p === '/hosts' || p.startsWith('/hosts?') || p.startsWith('/exposure')),
          [],
          'the whole host list and the fleet exposure are never downloaded',
        );
        assert.deepEqual(noise, { console: [], failed: [], errors: [] });
      },
    );

    test(
      'held and unsupported-kernel hosts stay visible (hosts filters, rollouts) without the whole list',
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const { page, asked } = await viewerPage();
        asked.length = 0;
        const rows = page.locator('table[aria-label="hosts"] tbody tr');
        await page.goto(`${world.url}/hosts?status=unsupported`);
        await page
          .getByTestId('host-count')
          .filter({ hasText: new RegExp(`^1 of ${total} hosts`) })
          .waitFor();
        assert.match((await rows.first().textContent()) ?? '', /edge-1.*Unsupported kernel/);
        await page.goto(`${world.url}/hosts?status=held`);
        await page
          .getByTestId('host-count')
          .filter({ hasText: new RegExp(`^1 of ${total} hosts`) })
          .waitFor();
        assert.match((await rows.first().textContent()) ?? '', /web-canary-2.*Held/);

        await page.goto(`${world.url}/rollouts`);
        const canary = page.locator(`#kernel-${world.kernel192.slice(0, 12)} tr[data-feed="canary"]`);
        await canary.waitFor();
        const held = canary.getByTestId('held');
        await held.waitFor();
        assert.match((await held.textContent()) ?? '', /1 held by its ignore-list \(web-canary-2\)/);
        // The production feed's bulk hosts are counted without listing them.
        const production = page.locator(`#kernel-${world.kernel192.slice(0, 12)} tr[data-feed="production"]`);
        const hosts = (await world.ok<HostRecord[]>('GET', '/hosts')).filter(
          (h) => h.feed === 'production' && h.kernelId === world.kernel192,
        );
        assert.ok(hosts.length > BULK);
        assert.match((await production.textContent()) ?? '', new RegExp(`/${hosts.length} \\(`));
        assert.ok(asked.includes('/dashboard/rollouts'));
        assert.deepEqual(
          asked.filter((p) => p === '/hosts' || p.startsWith('/hosts?') || p.startsWith('/exposure')),
          [],
          'the whole host list is never downloaded',
        );
      },
    );
  },
);
