// The host page in a real browser shows the host's user-space libraries as
// its agent reported them: level, processes and the CVEs fixed live, beside
// the kernel's. Seeded through the API with a real level (Debian's glibc
// 2.36-9+deb12u7, CVE-2025-0395 and CVE-2026-0915).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import type { HostRecord, UserspaceManifest } from '@livegraft/protocol';
import { hostByName, startDashboardWorld, type DashboardWorld } from './dashboard-world.ts';

const CHROMIUM = process.env['LIVEGRAFT_CHROMIUM'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run'];
const STEP_TIMEOUT_MS = 15_000;
const BUILD_TIMEOUT_MS = 300_000;
const FIXTURES = join(import.meta.dirname, 'fixtures', 'userspace');
const dashboardDir = fileURLToPath(new URL('../../dashboard/', import.meta.url));
const haveChromium = existsSync(CHROMIUM);

describe(
  'dashboard: user-space libraries on the host page',
  { skip: haveChromium ? false : `no Chromium at ${CHROMIUM}`, timeout: BUILD_TIMEOUT_MS * 2 },
  () => {
    let out: string;
    let world: DashboardWorld;
    let browser: Browser;
    before(async () => {
      out = await mkdtemp(join(tmpdir(), 'livegraft-dashboard-us-'));
      const vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js');
      await promisify(execFile)(
        process.execPath,
        [vite, 'build', '--outDir', join(out, 'dist'), '--emptyOutDir', '--logLevel', 'warn'],
        { cwd: dashboardDir, timeout: BUILD_TIMEOUT_MS },
      );
      world = await startDashboardWorld(join(out, 'dist'));
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    });
    after(async () => {
      await browser?.close();
      await world?.stop();
      if (out !== undefined) await rm(out, { recursive: true, force: true });
    });

    test('a host running a level shows it with its CVEs and processes', async () => {
      const manifest = JSON.parse(
        readFileSync(join(FIXTURES, 'lg-libc-so-6-58254ca97202-1.json'), 'utf8'),
      ) as UserspaceManifest;
      const object = readFileSync(join(FIXTURES, manifest.code.file)).toString('base64');
      await world.ok('POST', '/userspace/levels', { manifest, object, publish: true }, world.operator.token);
      const hostname = [...world.hosts.keys()][0] ?? '';
      await world.checkin(hostname, 0, {
        userspace: [
          {
            buildId: manifest.library.buildId,
            soname: 'libc.so.6',
            level: 1,
            cves: manifest.cves,
            patched: 7,
            unpatched: 0,
            refused: 1,
            refusals: { seccomp: 1 },
          },
        ],
      });
      const host = hostByName(await world.ok<HostRecord[]>('GET', '/hosts'), hostname);

      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      context.setDefaultTimeout(STEP_TIMEOUT_MS);
      const page = await context.newPage();
      await page.goto(`${world.url}/`);
      await page.fill('#token', world.viewer.token);
      await page.click('button[type=submit]');
      await page.waitForSelector('#host-stats');
      await page.goto(`${world.url}/hosts/${host.id}`);
      const row = page.locator('#userspace table tbody tr').first();
      await row.waitFor();
      const text = (await row.textContent()) ?? '';
      assert.match(text, /libc\.so\.6/);
      assert.match(text, new RegExp(manifest.library.buildId.slice(0, 12)));
      assert.match(text, /7 patched, 0 unpatched, 1 refused/);
      assert.match(text, /CVE-2025-0395/);
      assert.match(text, /CVE-2026-0915/);
      await context.close();
    });
  },
);
