import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';

/** Debian's Chromium driven by playwright-core, and a fresh build of the dashboard, for browser tests and the bench. */

export const CHROMIUM = process.env['LIVEGRAFT_CHROMIUM'] ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const haveChromium = existsSync(CHROMIUM);
const BUILD_TIMEOUT_MS = 180_000;

const dashboardDir = fileURLToPath(new URL('../../dashboard/', import.meta.url));

/** Builds the dashboard from source into `outDir`, so a test sees the current code. */
export async function buildDashboard(outDir: string): Promise<void> {
  const vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js');
  await promisify(execFile)(
    process.execPath,
    [vite, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'],
    { cwd: dashboardDir, timeout: BUILD_TIMEOUT_MS },
  );
}

/** What the browser console and the network said that a person could see as a problem. */
export interface PageNoise {
  /** Console messages of level error or warning ("Failed to load resource: 401", CSP reports...). */
  console: string[];
  /** Answers with status >= 400: "403 GET /api/v1/exposure". */
  failed: string[];
  errors: string[];
}

/** Starts collecting a page's console errors and warnings, failed answers and uncaught errors. */
export function collectNoise(page: Page): PageNoise {
  const noise: PageNoise = { console: [], failed: [], errors: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') noise.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) noise.failed.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('pageerror', (e) => noise.errors.push(e.message));
  return noise;
}
