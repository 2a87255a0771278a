import t from 'tap';
import { copyFile, mkdir } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { baseUrl, launchBrowser, noProblems, openPage, rowOf } from './browser.js';
import { loadDemoFleet, loadManyDevices } from './fleet-data.js';

// The dashboard in a real Chromium, fed straight from the store (no MQTT): a demo fleet for the
// screenshots and the narrow screen, 10,000 devices, and API keys.

const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);
const DOCS_SCREENSHOT = new URL('../../docs/dashboard.png', import.meta.url);

async function listening(env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0', ...env }), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app;
}

const browser = await launchBrowser(t);

if (browser !== undefined) {
  t.test('a demo fleet of 50: counts, marks, a screenshot; and a 375 px wide screen', async (t) => {
    const app = await listening();
    const now = Date.now();
    const ids = await loadDemoFleet(app, 50, now);
    await app.devices.sweepSilence();
    const { page, ...watched } = await openPage(t, browser);
    await page.goto(baseUrl(app));
    await page.locator('#caption-count').filter({ hasText: '50 devices' }).waitFor();
    t.equal(await page.locator('tr.device').count(), 50, 'one row per device');
    const all = (await app.devices.store.list({ limit: 1000 })).items;
    const open = all.filter((d) => d.state === 'open').length;
    t.equal(await page.locator('button[data-state="open"] .count').textContent(), String(open), 'the count of open covers');
    const silent = all.filter((d) => d.silent).length;
    t.ok(silent > 0, 'the fleet has silent devices');
    t.equal(await page.locator('tr.device.silent').count(), silent, 'silent devices are marked');
    t.equal(await page.locator('tr.device.silent .silent-tag').count(), silent);
    await page.locator('body[data-live="live"]').waitFor();

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('dashboard.png', ARTIFACTS).pathname });
    // docs/dashboard.png is committed: written only when asked, so that a test run leaves git clean
    if (process.env.DASHBOARD_DOCS_SCREENSHOT === '1') await copyFile(new URL('dashboard.png', ARTIFACTS), DOCS_SCREENSHOT);

    await page.locator(rowOf(ids[0]!)).click();
    await page.locator('#detail .periods li').first().waitFor();
    await page.screenshot({ path: new URL('dashboard-detail.png', ARTIFACTS).pathname });
    await page.keyboard.press('Escape');

    await page.setViewportSize({ width: 375, height: 740 });
    await page.evaluate(() => window.scrollTo(0, 0));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    t.ok(overflow <= 0, `no page-wide horizontal scroll at 375 px (${overflow} px)`);
    t.ok(await page.locator('#f-state').isVisible(), 'the filters are there');
    await page.screenshot({ path: new URL('dashboard-375.png', ARTIFACTS).pathname });
    noProblems(t, { page, ...watched });
  });
}

if (browser !== undefined) {
  t.test('10,000 devices: a truncated snapshot filled from REST, one page of rows, the last one reachable', async (t) => {
    const app = await listening({ WS_SNAPSHOT_LIMIT: '2000' }); // the snapshot says truncated: the page pages through REST
    const now = Date.now();
    await loadManyDevices(app, 10_000, now);
    const watched = await openPage(t, browser);
    const { page } = watched;
    // the longest task the page ran (a frozen page is one long task)
    await page.addInitScript(() => {
      const w = window as unknown as { __longest: number };
      w.__longest = 0;
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) w.__longest = Math.max(w.__longest, entry.duration);
      }).observe({ type: 'longtask', buffered: true });
    });
    await page.goto(baseUrl(app));
    await page.locator('#caption-count').filter({ hasText: /^10,000 devices$/ }).waitFor({ timeout: 20_000 });
    await page.locator('body[data-live="live"]').waitFor();
    const rendered = await page.locator('tr.device').count();
    t.ok(rendered > 0 && rendered <= 250, `the DOM holds one page of rows (${rendered}), not 10,000`);
    t.equal(await page.locator('#range').textContent(), '1–100 of 10,000');

    await page.locator('#last').click();
    await page.locator(rowOf('d10000')).waitFor();
    t.equal(await page.locator('#page-of').textContent(), 'Page 100 of 100', 'paging reaches the last device');
    await page.locator('th[data-sort="lastSeen"] button').click(); // oldest first: d10000 leads
    await page.locator(`tbody tr:first-child${rowOf('d10000').slice(2)}`).waitFor();
    t.equal(await page.locator('#page-of').textContent(), 'Page 1 of 100', 'a new sort starts at page 1');

    await page.fill('#f-search', 'd05000');
    await page.locator('#caption-count').filter({ hasText: '1 of 10,000 devices' }).waitFor();
    await app.devices.accept(record({ deviceId: 'd05000', state: 'offline', timestamp: Math.floor(now / 1000) + 1 }), Date.now());
    await page.locator(`${rowOf('d05000')} .badge`).filter({ hasText: 'offline' }).waitFor();
    t.pass('a live update reaches a device among 10,000');

    const longest = await page.evaluate(() => (window as unknown as { __longest: number }).__longest);
    t.ok(longest < 2000, `no task froze the page for long (longest ${Math.round(longest)} ms)`);
    noProblems(t, watched);
  });

  t.test('API keys: the page asks for one, says when it is wrong, and works with the right one', async (t) => {
    const KEY = 'a-key-of-16-chars-or-more';
    const app = await listening({ API_KEYS: KEY });
    const ts = Math.floor(Date.now() / 1000);
    await app.devices.accept(record({ deviceId: 'k1', state: 'open', timestamp: ts }), Date.now());
    const watched = await openPage(t, browser);
    const { page } = watched;
    watched.expect.push(/status of 401/); // Chromium logs every 401 the page meets: expected here
    const sent: { rest: string[]; ws: string[] } = { rest: [], ws: [] };
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/devices') sent.rest.push(request.headers().authorization ?? '(none)');
    });
    page.on('websocket', (ws) => sent.ws.push(new URL(ws.url()).search));
    await page.goto(baseUrl(app));
    await page.locator('#auth').waitFor();
    t.ok(await page.locator('#main').isHidden(), 'no table without a key');
    t.ok(await page.locator('#key').evaluate((el) => el === document.activeElement), 'the key field has the focus');
    t.ok(await page.locator('#key-error').isHidden(), 'no error before a key was tried');

    await page.fill('#key', 'not-the-right-key-at-all');
    await page.press('#key', 'Enter');
    await page.locator('#key-error').filter({ hasText: 'That API key was refused' }).waitFor();
    t.ok(await page.locator('#auth').isVisible(), 'asked again');
    t.equal(await page.evaluate(() => sessionStorage.getItem('wiihey-bridge.apiKey')), null, 'a wrong key is not kept');

    await page.fill('#key', KEY);
    await page.click('#key-form button[type="submit"]');
    await page.locator(rowOf('k1')).waitFor();
    await page.locator('body[data-live="live"]').waitFor();
    t.ok(await page.locator('#auth').isHidden(), 'the form is gone');
    t.equal(await page.evaluate(() => sessionStorage.getItem('wiihey-bridge.apiKey')), KEY, 'the key is kept for the tab');
    t.equal(app.liveClients.ws.size, 1, '/ws took the key');
    t.same(sent.ws, [`?apiKey=${KEY}`], 'as ?apiKey= on the /ws URL, and only once it was accepted');
    t.same(sent.rest, ['(none)', 'Bearer not-the-right-key-at-all', `Bearer ${KEY}`], 'and as a Bearer header to REST');
    await app.devices.accept(record({ deviceId: 'k1', state: 'close', timestamp: ts + 1 }), Date.now());
    await page.locator(`${rowOf('k1')} .badge`).filter({ hasText: 'close' }).waitFor();

    await page.reload();
    await page.locator(rowOf('k1')).waitFor();
    t.ok(await page.locator('#auth').isHidden(), 'a reload does not ask again');
    noProblems(t, watched);
  });
}
