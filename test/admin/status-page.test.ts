// The status page in a real Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
// no browser is ever downloaded). Screenshots go to test-artifacts/status-page/.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startUpstream } from '../helpers/upstream.js';
import { startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(process.cwd(), 'test-artifacts', 'status-page');
const TOKEN = 'page-test-token';
const track = useCleanup();

let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    timeout: 60_000,
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
});

describe('status page (Chromium)', () => {
  it('shows live routes and breakers, follows a breaker opening, isolates and resets with the token', async () => {
    const good = track(await startUpstream(ok('fine')));
    const bad = track(await startUpstream(ok('fine')));
    const px = track(
      await startProxy(
        {
          upstreams: { good: { endpoints: [good.url] }, bad: { endpoints: [bad.url] } },
          routes: [
            { name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'good', concurrency: { max: 64 } },
            { name: 'payments', match: { pathPrefix: '/payments' }, upstream: 'bad', retry: { attempts: 0 }, breaker: { consecutiveFailures: 3, halfOpenAfter: '5m' } },
          ],
        },
        { env: { OUTRIGGER_ADMIN_TOKEN: TOKEN } },
      ),
    );
    for (let i = 0; i < 8; i++) await req(px.url, { path: '/orders/1' });
    for (let i = 0; i < 3; i++) await req(px.url, { path: '/payments/1' });

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    track({ close: () => context.close() });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    const foreign: string[] = [];
    const origin = px.adminUrl;
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(`${origin}/`) && !u.startsWith('data:')) foreign.push(u);
    });

    const res = await page.goto(`${origin}/`, { timeout: 30_000 });
    expect(res?.status()).toBe(200);
    const csp = res?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe-inline');

    // Routes and breaker states from the live proxy.
    await page.waitForSelector('tr[data-route="orders"] [data-state="closed"]', { timeout: 10_000 });
    await page.waitForSelector('tr[data-route="payments"] [data-state="closed"]', { timeout: 10_000 });
    expect(await page.textContent('#m-node')).toBe(process.version);
    expect(await page.textContent('#m-hash')).toBe(px.app.state.runtime.loaded.hash.slice(0, 12));
    expect(await page.textContent('tr[data-route="orders"] td[data-label="In flight"]')).toBe('0 / 64');

    // Fail the upstream: the page shows the breaker open within 3 s, without a reload.
    bad.behave = ok('broken', 503);
    for (let i = 0; i < 3; i++) await req(px.url, { path: '/payments/1' });
    expect(px.app.state.runtime.breaker('payments')?.state).toBe('open');
    await page.waitForSelector('tr[data-route="payments"] [data-state="open"]', { timeout: 3000 });
    expect(await page.textContent('tr[data-route="payments"] [data-state]')).toBe('open');
    await page.waitForSelector('#events li[data-severity="error"]', { timeout: 5000 });
    expect(await page.textContent('#events')).toContain('breaker_opened');

    // Isolate without the token: the page asks for it; with it, the breaker is isolated.
    const isolate = page.locator('tr[data-route="orders"] button', { hasText: 'Isolate' });
    await isolate.click();
    await expect.poll(() => page.textContent('#result'), { timeout: 5000 }).toContain('admin token');
    await page.fill('#token', TOKEN);
    await isolate.click();
    await expect.poll(() => page.textContent('#result'), { timeout: 5000 }).toContain('isolate orders: done, breaker is now isolated');
    await page.waitForSelector('tr[data-route="orders"] [data-state="isolated"]', { timeout: 5000 });
    expect(px.app.state.runtime.breaker('orders')?.state).toBe('isolated');

    // Reset from the keyboard: focus the button and press Enter.
    await page.focus('tr[data-route="orders"] button:has-text("Reset")');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#result'), { timeout: 5000 }).toContain('reset orders: done, breaker is now closed');
    await page.waitForSelector('tr[data-route="orders"] [data-state="closed"]', { timeout: 5000 });

    // Severity filter: only error and above.
    await page.selectOption('#sev', 'error');
    await expect
      .poll(async () => (await page.$$eval('#events li', (lis) => lis.map((li) => li.getAttribute('data-severity')))).every((s) => s === 'error' || s === 'critical'), { timeout: 5000 })
      .toBe(true);

    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await page.waitForTimeout(1200);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'desktop-1280x800.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    // Readable on a phone: the layout fits the width, no sideways scrolling.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'mobile-390x844.png'), fullPage: true });

    expect(consoleErrors).toEqual([]);
    expect(foreign).toEqual([]);
  }, 120_000);
});
