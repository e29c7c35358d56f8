import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { AuditEntry, ComplianceReport, FeedRecord, FleetExposure, HostRecord } from '@livegraft/protocol';
import { CHECKIN_INTERVAL_SEC, hostByName, startDashboardWorld, type DashboardWorld } from './dashboard-world.ts';
import { PROC_192 } from './compliance-world.ts';

/**
 * The dashboard in a real browser (Debian's Chromium) against a real server
 * seeded through its own API. Every assertion is about what a person sees.
 * Set LIVEGRAFT_SCREENSHOTS=docs/img to refresh the documentation images.
 */

const CHROMIUM = process.env['LIVEGRAFT_CHROMIUM'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** A built dashboard and a seeded fleet take a few seconds; a browser step should never take this long. */
const STEP_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 120_000;
const BUILD_TIMEOUT_MS = 120_000;
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** CSS pixels; long tables are cut there in the documentation images. */
const MAX_SHOT_HEIGHT = 1800;

/** The few browser globals the in-page callbacks use (this file is compiled without the DOM library). */
interface PageGlobals {
  document: {
    cookie: string;
    documentElement: { scrollWidth: number; scrollHeight: number };
    querySelector(selector: string): { textContent: string | null } | null;
  };
  innerWidth: number;
  sameDocument?: boolean;
}

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(
    `\n!!! SKIPPING the dashboard browser tests: no Chromium at ${CHROMIUM}.\n` +
      '!!! Install it (apt-get install chromium) or set LIVEGRAFT_CHROMIUM; CI installs it.\n',
  );
}

const dashboardDir = fileURLToPath(new URL('../../dashboard/', import.meta.url));

/** Builds the dashboard from source into a temp dir, so the test sees the current code. */
async function buildDashboard(outDir: string): Promise<void> {
  const vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js');
  await promisify(execFile)(
    process.execPath,
    [vite, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'],
    {
      cwd: dashboardDir,
      timeout: BUILD_TIMEOUT_MS,
    },
  );
}

function fresh(h: HostRecord): boolean {
  return h.lastCheckinAt !== null && Date.now() - Date.parse(h.lastCheckinAt) <= 2 * CHECKIN_INTERVAL_SEC * 1000;
}

describe('dashboard in Chromium', { skip: haveChromium ? false : `no Chromium at ${CHROMIUM}` }, () => {
  let out: string;
  let shots: string;
  let world: DashboardWorld;
  let browser: Browser;
  const cspViolations: string[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    out = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-build-'));
    await buildDashboard(join(out, 'dist'));
    shots = resolve(process.env['LIVEGRAFT_SCREENSHOTS'] ?? join(out, 'screenshots'));
    await mkdir(shots, { recursive: true });
    world = await startDashboardWorld(join(out, 'dist'));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await world?.stop();
    await rm(out, { recursive: true, force: true });
  });

  async function newPage(viewport = LAPTOP, phone = false): Promise<Page> {
    const context = await browser.newContext({
      viewport,
      ...(phone ? { deviceScaleFactor: 2, isMobile: true, hasTouch: true } : {}),
    });
    contexts.push(context);
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = await context.newPage();
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => cspViolations.push(`page error: ${e.message}`));
    return page;
  }

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(`${world.url}/`);
    await page.fill('#token', token);
    await page.click('button[type=submit]');
    await page.waitForSelector('#host-stats');
  }

  async function statValue(page: Page, name: string): Promise<string> {
    return (await page.locator(`[data-stat="${name}"] .stat-value`).first().textContent()) ?? '';
  }

  /** The whole page down to a height that still reads as one screenshot in the docs. */
  async function shot(page: Page, name: string): Promise<void> {
    const width = page.viewportSize()?.width ?? LAPTOP.width;
    const height = await page.evaluate(
      () => (globalThis as unknown as PageGlobals).document.documentElement.scrollHeight,
    );
    await page.screenshot({
      path: join(shots, `dashboard-${name}.png`),
      fullPage: true,
      clip: { x: 0, y: 0, width, height: Math.min(height, MAX_SHOT_HEIGHT) },
      timeout: STEP_TIMEOUT_MS,
    });
  }

  async function noSidewaysScroll(page: Page): Promise<void> {
    const overflow = await page.evaluate(() => {
      const g = globalThis as unknown as PageGlobals;
      return g.document.documentElement.scrollWidth - g.innerWidth;
    });
    assert.ok(overflow <= 0, `${page.url()} is ${overflow}px wider than the phone`);
  }

  test('sign-in: a wrong token shows why, the right one shows the overview', { timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await newPage();
    await page.goto(`${world.url}/`);
    await page.fill('#token', 'this-is-not-a-token-of-this-server');
    await page.click('button[type=submit]');
    const error = page.getByTestId('signin-error');
    await error.waitFor();
    assert.match((await error.textContent()) ?? '', /not valid/);
    await shot(page, 'signin');
    assert.equal(await page.locator('#host-stats').count(), 0, 'no data before signing in');

    await page.fill('#token', world.admin);
    await page.click('button[type=submit]');
    await page.waitForSelector('#host-stats');
    assert.equal(await page.locator('h1').first().textContent(), 'Overview');
    assert.match((await page.locator('.user').textContent()) ?? '', /bootstrap admin/);
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'lg_session');
    assert.ok(session !== undefined);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie),
      '',
      'scripts cannot read the session cookie',
    );

    await page.click('text=Sign out');
    await page.waitForSelector('#token');
    await page.reload();
    await page.waitForSelector('#token');
  });

  test('overview numbers are the API numbers', { timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await newPage();
    await signIn(page, world.admin);
    await page.waitForSelector('#exposure');
    await page.waitForSelector('#compliance-stats');
    const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
    const exposure = await world.ok<FleetExposure>('GET', '/exposure');
    const report = await world.ok<ComplianceReport>('GET', '/reports/compliance?format=json');

    const live = hosts.filter(fresh);
    const ok = live.filter((h) => h.state !== 'error' && h.state !== 'needs-attention');
    const expected = {
      total: hosts.length,
      stale: hosts.length - live.length,
      failed: live.filter((h) => h.state === 'error').length,
      attention: live.filter((h) => h.state === 'needs-attention').length,
      behind: ok.filter((h) => h.desired !== null && h.desired !== undefined && h.desired.level !== h.appliedLevel)
        .length,
      patched: ok.filter((h) => (h.desired?.level ?? h.appliedLevel) === h.appliedLevel && h.appliedLevel > 0).length,
    };
    // The seeded fleet has one of each kind of trouble, so a zero would hide a bug.
    for (const k of ['stale', 'failed', 'attention', 'behind'] as const) assert.ok(expected[k] > 0, k);
    for (const [name, n] of Object.entries(expected)) {
      assert.equal(await statValue(page, name), String(n), `${name} tile`);
    }

    assert.equal(await page.getByTestId('exposure-total').textContent(), String(exposure.counts.total));
    assert.equal(await page.getByTestId('mitigated').textContent(), String(exposure.mitigated));
    for (const sev of ['critical', 'high', 'medium', 'low'] as const) {
      const shown = await page.locator(`.sevbar[data-severity="${sev}"] .sevbar-value`).textContent();
      assert.equal(shown, String(exposure.counts[sev]), `${sev} bar`);
    }
    assert.ok(exposure.counts.critical > 0);

    assert.equal(await statValue(page, 'breaches'), String(report.summary.openBreaches));
    assert.equal(await statValue(page, 'compliant'), `${report.summary.compliantHosts}/${report.summary.hosts}`);
    await shot(page, 'overview');

    // A tile leads to the hosts it counts.
    await page.click('[data-stat="failed"]');
    await page.waitForSelector('table[aria-label="hosts"]');
    assert.equal(await page.locator('table[aria-label="hosts"] tbody tr').count(), expected.failed);
    assert.match(
      (await page.getByTestId('host-count').textContent()) ?? '',
      new RegExp(`^${expected.failed} of ${hosts.length}`),
    );
  });

  test(
    'an operator promotes with a confirm; the level moves and the audit log says who',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const page = await newPage();
      await signIn(page, world.operator.token);
      await page.click('nav >> text=Patches & rollouts');
      const card = page.locator(`#kernel-${world.kernel192.slice(0, 12)}`);
      const promote = card.locator('tr[data-feed="staging"] [data-action="promote"]');
      await promote.waitFor();
      const productionLevel = async (): Promise<number | undefined> => {
        const feeds = await world.ok<FeedRecord[]>('GET', '/feeds');
        return feeds.find((f) => f.name === 'production')?.levels.find((l) => l.kernelId === world.kernel192)?.level;
      };
      const before = await productionLevel();
      assert.equal(before, 1);

      // Cancel changes nothing.
      await promote.click();
      const dialog = page.locator('dialog.confirm');
      await dialog.waitFor({ state: 'visible' });
      assert.match((await dialog.textContent()) ?? '', /Promote level 2 from staging to production/);
      await shot(page, 'rollouts-confirm');
      await dialog.locator('text=Cancel').click();
      await dialog.waitFor({ state: 'hidden' });
      assert.equal(await productionLevel(), 1);

      await promote.click();
      await dialog.locator('[data-confirm="yes"]').click();
      await page.locator('.toast', { hasText: 'promoted to production' }).waitFor();
      await card.locator('tr[data-feed="production"] .level[data-level="2"]').waitFor();
      assert.equal(await productionLevel(), 2);
      const audit = await world.ok<AuditEntry[]>('GET', '/audit?action=feed.promote&limit=1');
      assert.equal(audit[0]?.actor.name, 'ops-alice');
      assert.equal(audit[0]?.target, 'production');
      assert.equal((audit[0]?.details as { from: string }).from, 'staging');
      // The feed is level 2 now: the staging row no longer offers a promotion.
      assert.equal(await promote.count(), 0);
    },
  );

  test('a viewer sees no action buttons, and a forced POST is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await newPage();
    await signIn(page, world.viewer.token);
    assert.match((await page.locator('.user').textContent()) ?? '', /audit-bob\s*viewer/);
    await page.click('nav >> text=Patches & rollouts');
    await page.locator(`#kernel-${world.kernel192.slice(0, 12)} tr[data-feed="canary"]`).waitFor();
    assert.equal(await page.locator('[data-action]').count(), 0);
    assert.equal(await page.getByRole('button', { name: /promote|halt|roll back|^pin|resume/i }).count(), 0);
    const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
    await page.goto(`${world.url}/hosts/${hostByName(hosts, 'web-1').id}`);
    await page.locator('#timeline').waitFor();
    assert.equal(await page.locator('[data-action]').count(), 0);
    // Compliance reads are for viewers too: the host's open CVEs show, and no page asks what the role may not read.
    await page.locator('table[aria-label="open CVEs"]').waitFor();

    const before = await world.ok<FeedRecord[]>('GET', '/feeds');
    // Straight to the API from the signed-in page, with the session's own CSRF token.
    // (No named helpers in here: the test runner's transpiler would wrap them in a helper the page lacks.)
    const forced = await page.evaluate(async (kernelId) => {
      const session = (await (await fetch('/api/v1/session')).json()) as { csrfToken: string };
      const attempts: [string, unknown][] = [
        ['/api/v1/feeds/canary/promote', {}],
        ['/api/v1/halts', { kernelId, level: 2 }],
        ['/api/v1/rollback', { feed: 'canary', kernelId, level: 1 }],
      ];
      const results: { status: number; code: string }[] = [];
      for (const [path, body] of attempts) {
        const r = await fetch(path, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken },
          body: JSON.stringify(body),
        });
        results.push({ status: r.status, code: ((await r.json()) as { code: string }).code });
      }
      return results;
    }, world.kernel192);
    assert.equal(forced.length, 3);
    for (const r of forced) assert.deepEqual(r, { status: 403, code: 'FORBIDDEN' });
    assert.deepEqual(await world.ok<FeedRecord[]>('GET', '/feeds'), before, 'nothing changed');
  });

  test(
    'host and level pages name each fix with its upstream commit (short id + subject)',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const page = await newPage();
      await signIn(page, world.viewer.token);
      const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
      const web1 = await world.ok<HostRecord>('GET', `/hosts/${hostByName(hosts, 'web-1').id}`);
      const fix = web1.applied?.fixes[0];
      const commit = fix?.commits[0];
      assert.ok(fix !== undefined && commit?.id !== undefined, 'the seeded level names an upstream commit');
      await page.goto(`${world.url}/hosts/${web1.id}`);
      const item = page.locator(`.fixes li[data-fix="${fix.id}"]`);
      await item.waitFor();
      const text = (await item.textContent()) ?? '';
      assert.ok(text.includes(commit.id.slice(0, 12)), text);
      assert.ok(!text.includes(commit.id), 'the id is shortened');
      assert.ok(text.includes(commit.subject), text);
      assert.match(text, /upstream patch/);
      const skipped = (await page.locator('.fixes li.skipped').first().textContent()) ?? '';
      assert.match(skipped, /not built.*already fixed in this kernel build/);

      await page.click('nav >> text=Patches & rollouts');
      const level2 = page.locator(`#kernel-${world.kernel192.slice(0, 12)} li[data-level="2"] .fixes li[data-fix]`);
      await level2.waitFor();
      assert.match(
        (await level2.textContent()) ?? '',
        /[0-9a-f]{12} netfilter: nf_tables: reject invalid verdicts \(level 2\)/,
      );
    },
  );

  test('live events appear without a reload', { timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await newPage();
    await signIn(page, world.admin);
    await page.locator('[data-live="on"]').waitFor();
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).sameDocument = true));
    const patchedBefore = Number(await statValue(page, 'patched'));

    await world.publishLevel(PROC_192, 3, []);
    await page.locator('#activity li', { hasText: 'Level 3 released to canary' }).waitFor();

    await world.checkin('web-canary-1', 3, {
      lastApply: {
        action: 'apply',
        fromLevel: 2,
        toLevel: 3,
        ok: true,
        durationMs: 1234,
        at: new Date().toISOString(),
      },
    });
    await page.locator('#activity li[data-kind="apply"]', { hasText: 'web-canary-1 applied level 3' }).waitFor();
    // web-canary-2 has not applied level 3 yet: it is behind now, and the tiles say so.
    await page.waitForFunction(
      (n) =>
        (globalThis as unknown as PageGlobals).document.querySelector('[data-stat="patched"] .stat-value')
          ?.textContent === String(n),
      patchedBefore - 1,
    );

    // A tripwire event counts only for a CVE of the level the host runs.
    const web1 = hostByName(await world.ok<HostRecord[]>('GET', '/hosts'), 'web-1');
    const running = await world.ok<{ manifest: { cves: string[] } }>(
      'GET',
      `/kernels/${web1.kernelId}/levels/${web1.appliedLevel}`,
    );
    await world.ok(
      'POST',
      '/hosts/tripwire',
      {
        events: [{ cve: running.manifest.cves[0], pid: 4711, uid: 1000, comm: 'pwnkit', at: new Date().toISOString() }],
      },
      world.hosts.get('web-1')?.token,
    );
    await page.locator('#activity li[data-kind="tripwire"]', { hasText: 'pwnkit' }).waitFor();
    assert.equal(await page.evaluate(() => (globalThis as unknown as PageGlobals).sameDocument), true);
  });

  test('every page renders readably at laptop and phone width', { timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await newPage();
    await signIn(page, world.admin);
    const hosts = await world.ok<HostRecord[]>('GET', '/hosts');
    const legacy = hostByName(hosts, 'legacy-1');
    const report = await world.ok<{ fixedLive: unknown[] }>('GET', '/cves/' + (await fixedCve(world)));
    assert.ok(report.fixedLive.length > 0);
    const pages: [string, string, string][] = [
      ['hosts', '/hosts', 'table[aria-label="hosts"]'],
      ['host', `/hosts/${legacy.id}`, '#timeline .tl-tripwire'],
      ['rollouts', '/rollouts', 'table.feeds'],
      ['cves', `/cves/${await fixedCve(world)}`, '[data-testid="fixed-live"]'],
      ['compliance', '/compliance', 'table[aria-label="breaches"]'],
      ['tripwires', '/tripwires', 'table[aria-label="tripwire events"]'],
    ];
    for (const [name, path, ready] of pages) {
      await page.goto(`${world.url}${path}`);
      await page.locator(ready).first().waitFor();
      await shot(page, name);
      if (name === 'compliance') {
        const pdf = (await page.locator('[data-export="pdf"]').getAttribute('href')) ?? '';
        assert.match(pdf, /format=pdf/);
        // The export link works with the session cookie alone (a plain download).
        const res = await page.request.get(`${world.url}${pdf}`);
        assert.equal(res.status(), 200);
        assert.equal((await res.body()).subarray(0, 5).toString(), '%PDF-');
        // The CVE data's own dates, not the day its file was written, and the staleness warning.
        assert.match((await page.getByTestId('dataset').textContent()) ?? '', /kernel CVE records as of 2026-08-21/);
        assert.ok((await page.locator('[data-warning="CVE_DATA_STALE"]').count()) >= 1, 'no staleness warning');
      }
    }

    const phone = await newPage(PHONE, true);
    await signIn(phone, world.admin);
    await phone.waitForSelector('#exposure');
    // Nothing wider than the screen: no sideways scrolling on a phone.
    await noSidewaysScroll(phone);
    await shot(phone, 'overview-phone');
    await phone.goto(`${world.url}/rollouts`);
    await phone.locator('table.feeds').first().waitFor();
    await noSidewaysScroll(phone);
    await shot(phone, 'rollouts-phone');
    await phone.goto(`${world.url}/hosts`);
    await phone.locator('table[aria-label="hosts"]').waitFor();
    await noSidewaysScroll(phone);
    await shot(phone, 'hosts-phone');

    assert.deepEqual(cspViolations, [], 'no CSP violation or page error on any page');
  });

  test(
    'pipeline: a fix submitted by uploading its files is planned per build; coverage shows it',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const page = await newPage();
      await signIn(page, world.admin);
      await page.goto(`${world.url}/pipeline`);
      const input = page.locator('input[name="fix-files"]');
      const patch =
        'diff --git a/net/ipv4/icmp.c b/net/ipv4/icmp.c\n--- a/net/ipv4/icmp.c\n+++ b/net/ipv4/icmp.c\n' +
        '@@ -1,3 +1,4 @@\n a\n b\n+c\n d\n';
      const file = (name: string, text: string) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(text) });
      const spec = { id: 'browser-fix', title: 'from the browser', patches: ['upstream.patch'] };
      await input.setInputFiles([
        file('fix.json', JSON.stringify({ ...spec, cves: [] })),
        file('upstream.patch', patch),
      ]);
      const error = page.locator('.card [role="alert"]');
      await error.waitFor();
      assert.match((await error.textContent()) ?? '', /names no CVE/);

      await input.setInputFiles([
        file('fix.json', JSON.stringify({ ...spec, cves: ['CVE-2099-12345'] })),
        file('upstream.patch', patch),
      ]);
      await page.locator('#fix-browser-fix').waitFor();
      const kernels = await world.ok<unknown[]>('GET', '/fleet/kernels');
      assert.equal(await page.locator('#fix-browser-fix [data-plan="to-build"]').count(), kernels.length);
      await page.locator('table[aria-label="build jobs"]').waitFor();
      await shot(page, 'pipeline');

      await page.goto(`${world.url}/coverage`);
      await page.locator('table[aria-label="coverage matrix"]').waitFor();
      const row = page.locator('tr[data-cve="CVE-2099-12345"]');
      await row.waitFor();
      assert.equal(await row.locator('td[data-state="queued"]').count(), kernels.length);
      assert.ok(
        (await page.locator('td[data-state="applied"]').count()) > 0,
        'levels the seeded hosts run show as applied',
      );
      await shot(page, 'coverage');
      assert.deepEqual(cspViolations, [], 'no CSP violation or page error');
    },
  );
});

/** A CVE the seeded level 1 of the 6.1.192 kernel fixes live. */
async function fixedCve(world: DashboardWorld): Promise<string> {
  const patches = await world.ok<{ kernelId: string; level: number; cves: string[] }[]>(
    'GET',
    `/patches?kernelId=${world.kernel192}`,
  );
  const cve = patches.find((p) => p.level === 1)?.cves[0];
  assert.ok(cve !== undefined);
  return cve;
}
