import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { nextEvent } from '../helpers/app.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { baseUrl, launchBrowser, noProblems, openPage, rowOf, type Watched } from './browser.js';

// The dashboard in a real Chromium, fed by a real Mosquitto through the bridge: rows, live
// updates, filters, sorting, the detail view, hostile device strings and a lost connection.

const now = Math.floor(Date.now() / 1000);
const XSS_ID = '<b>bold</b>-7';
const XSS_STATE = '<img src=x onerror="window.__pwned=1">';

const browser = await launchBrowser(t);
const broker = browser && (await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false }));

if (browser !== undefined && broker !== undefined) {
  const { app } = await startBridge(t, broker);
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.ingest.subscribedOnce;
  const pub = await publisher(t, broker);

  /** Publishes one message and resolves once the bridge has taken it. */
  const send = async (deviceId: string, state: string, timestamp: number, extra: Record<string, unknown> = {}): Promise<void> => {
    const taken = nextEvent(app, (e) => e.deviceId === deviceId && e.device?.timestamp === timestamp, `${deviceId} at ${timestamp}`);
    await pub.publishAsync(TOPIC, message(deviceId, state, timestamp, extra), { qos: 1 });
    await taken;
  };

  // MH-1 opened a day ago after a close two days ago; MH-2 is low; MH-3 went quiet five days ago
  await send('MH-1', 'close', now - 2 * 86400, { BatteryLevel: 9100, CSQ: 24 });
  await send('MH-1', 'open', now - 86400, { BatteryLevel: 9050, CSQ: 23 });
  await send('MH-2', 'close', now - 3600, { BatteryLevel: 1200, CSQ: 8 });
  await send('MH-3', 'close', now - 5 * 86400, { BatteryLevel: 7000, CSQ: 99 });
  await send('MH-10', 'open', now - 60, { BatteryLevel: 5000, CSQ: 31 });
  await send(XSS_ID, XSS_STATE, now - 120, { BatteryLevel: 6000 });
  await app.devices.sweepSilence(); // MH-3: silent (SILENCE_AFTER_SECONDS, four days)

  const open = async (t: Test): Promise<Watched> => {
    const watched = await openPage(t, browser);
    await watched.page.goto(baseUrl(app));
    await watched.page.locator('#caption-count').filter({ hasText: '5 devices' }).waitFor();
    await watched.page.locator('body[data-live="live"]').waitFor();
    return watched;
  };
  const ids = async (watched: Watched): Promise<string[]> =>
    watched.page.locator('tr.device').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.id ?? ''));
  /** The row ids once they are `expected` (the page renders on its next frame), or as they are after 5 s. */
  const idsBecome = async (watched: Watched, expected: string[]): Promise<string[]> => {
    await watched.page
      .waitForFunction(
        (exp) => JSON.stringify([...document.querySelectorAll<HTMLElement>('tr.device')].map((r) => r.dataset.id ?? '')) === exp,
        JSON.stringify(expected),
        { timeout: 5_000 },
      )
      .catch(() => {}); // the assertion that follows shows what the rows are instead
    return ids(watched);
  };

  t.test('lists the devices, and a published message changes its row live, with a flash', async (t) => {
    const watched = await open(t);
    const { page } = watched;
    t.same(await ids(watched), [XSS_ID, 'MH-1', 'MH-10', 'MH-2', 'MH-3'], 'every device, by id');
    t.equal(await page.locator(`${rowOf('MH-2')} .pct`).textContent(), '12 %', 'battery as a percentage');
    t.ok(await page.locator(`${rowOf('MH-2')} .low-tag`).isVisible(), 'low battery marked');
    t.match(await page.locator(`${rowOf('MH-3')} .signal`).getAttribute('title'), /unknown/, 'CSQ 99 is unknown');
    t.match(await page.locator(`${rowOf('MH-10')} .signal`).getAttribute('title'), /4 of 4 bars/);
    t.ok(await page.locator(`${rowOf('MH-3')}.silent .silent-tag`).isVisible(), 'the silent device is marked');
    t.match(await page.locator(`${rowOf('MH-1')} .col-seen time`).textContent(), /^1 d ago$/, 'last seen, relative');
    t.ok(await page.locator(`${rowOf('MH-1')} .col-seen time`).getAttribute('title'), 'the exact time on hover');
    t.equal(await page.locator('button[data-state="open"] .count').textContent(), '2', 'counts by state');

    await send('MH-2', 'open', now - 30, { BatteryLevel: 1150, CSQ: 9 });
    await page.locator(`${rowOf('MH-2')}.flash`).waitFor();
    t.equal(await page.locator(`${rowOf('MH-2')} .badge`).first().textContent(), 'open', 'the row shows the new state');
    t.equal(await page.locator('button[data-state="open"] .count').textContent(), '3', 'the counts follow');
    t.equal(await page.locator(`${rowOf('MH-1')}.flash`).count(), 0, 'only the changed row flashes');
    t.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');
    noProblems(t, watched);
  });

  t.test('filters by state, silent, low battery and id; sorts by column', async (t) => {
    const watched = await open(t);
    const { page } = watched;
    await page.selectOption('#f-state', 'close');
    t.same(await idsBecome(watched, ['MH-3']), ['MH-3'], 'state');
    await page.selectOption('#f-state', '');
    await page.selectOption('#f-silent', 'yes');
    t.same(await idsBecome(watched, ['MH-3']), ['MH-3'], 'silent only');
    await page.selectOption('#f-silent', 'no');
    t.same(await idsBecome(watched, [XSS_ID, 'MH-1', 'MH-10', 'MH-2']), [XSS_ID, 'MH-1', 'MH-10', 'MH-2'], 'not silent');
    await page.selectOption('#f-silent', '');
    await page.check('#f-low');
    t.same(await idsBecome(watched, ['MH-2']), ['MH-2'], 'low battery');
    await page.uncheck('#f-low');
    await page.fill('#f-search', 'mh-1');
    t.same(await idsBecome(watched, ['MH-1', 'MH-10']), ['MH-1', 'MH-10'], 'a part of the id, any case');
    await page.click('#reset');
    t.same(await idsBecome(watched, [XSS_ID, 'MH-1', 'MH-10', 'MH-2', 'MH-3']), [XSS_ID, 'MH-1', 'MH-10', 'MH-2', 'MH-3'], 'cleared');
    await page.click('button[data-count="silent"]');
    t.same(await idsBecome(watched, ['MH-3']), ['MH-3'], 'a count on top filters too');
    t.equal(await page.locator('button[data-count="silent"]').getAttribute('aria-pressed'), 'true');
    await page.click('button[data-count="devices"]');

    const battery = page.locator('th[data-sort="battery"]');
    await battery.locator('button').click();
    t.equal(await battery.getAttribute('aria-sort'), 'ascending');
    t.equal(await page.locator('th[data-sort="deviceId"]').getAttribute('aria-sort'), null, 'one sorted column');
    t.same(await idsBecome(watched, ['MH-2', 'MH-10', XSS_ID, 'MH-3', 'MH-1']), ['MH-2', 'MH-10', XSS_ID, 'MH-3', 'MH-1'], 'battery, lowest first');
    await battery.locator('button').click();
    t.equal(await battery.getAttribute('aria-sort'), 'descending');
    t.same(await idsBecome(watched, ['MH-1', 'MH-3', XSS_ID, 'MH-10', 'MH-2']), ['MH-1', 'MH-3', XSS_ID, 'MH-10', 'MH-2'], 'battery, highest first');
    await page.locator('th[data-sort="lastSeen"] button').click();
    t.same(await idsBecome(watched, ['MH-3', 'MH-1', XSS_ID, 'MH-10', 'MH-2']), ['MH-3', 'MH-1', XSS_ID, 'MH-10', 'MH-2'], 'last seen, oldest first');
    noProblems(t, watched);
  });

  t.test('the detail: history as periods, a battery chart, the raw attributes; keyboard in and out', async (t) => {
    const watched = await open(t);
    const { page } = watched;
    await page.locator(rowOf('MH-1')).click();
    const dialog = page.locator('#detail');
    await dialog.locator('.periods li').nth(1).waitFor();
    t.match(await dialog.locator('#detail-title').textContent(), /MH-1/);
    t.same(await dialog.locator('.periods li .badge').allTextContents(), ['open', 'close'], 'two periods, newest first');
    t.equal(await dialog.locator('svg.timeline rect.period').count(), 2, 'the timeline draws them');
    t.equal(await dialog.locator('svg.battery-chart circle.point').count(), 2, 'a battery reading per message');
    t.match(await dialog.locator('svg.battery-chart').getAttribute('aria-label'), /from 91 % to 91 %/);
    const attributes = await dialog.locator('table.attributes tbody th').allTextContents();
    t.same(attributes.sort(), ['BatteryLevel', 'CSQ', 'DeviceID', 'State', 'Timestamp'], 'the newest message, key by key');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    t.ok(await page.locator(rowOf('MH-1')).evaluate((el) => el === document.activeElement), 'the focus is back on the row');

    // keyboard only: arrows move between rows, Enter opens
    await page.keyboard.press('ArrowDown');
    t.ok(await page.locator(rowOf('MH-10')).evaluate((el) => el === document.activeElement), 'ArrowDown moves to the next row');
    await page.keyboard.press('Enter');
    await dialog.locator('.periods li').first().waitFor();
    t.match(await dialog.locator('#detail-title').textContent(), /MH-10/);
    await send('MH-10', 'close', now - 10, { BatteryLevel: 4990, CSQ: 30 });
    await dialog.locator('.periods li').nth(1).waitFor();
    t.pass('an open detail follows its device live');
    await page.click('#detail-close');
    await dialog.waitFor({ state: 'hidden' });
    noProblems(t, watched);
  });

  t.test('device strings are text: a hostile State and DeviceID run nothing', async (t) => {
    const watched = await open(t);
    const { page } = watched;
    const row = page.locator(rowOf(XSS_ID));
    t.equal(await row.locator('th').textContent(), XSS_ID, 'the id, literally');
    t.equal(await row.locator('.badge').first().textContent(), XSS_STATE, 'the state, literally');
    t.equal(await page.locator('#rows img, #rows b').count(), 0, 'no element made of device data');
    await row.click();
    await page.locator('#detail .periods li').first().waitFor();
    t.equal(await page.locator('#detail-title .mono').textContent(), XSS_ID);
    t.equal(await page.locator('#detail img, #detail b').count(), 0);
    t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'window.__pwned is undefined');
    noProblems(t, watched);
  });

  t.test('a lost connection: a banner, a reconnect by itself, and a table that caught up', async (t) => {
    const watched = await open(t);
    const { page } = watched;
    watched.expect.push(/WebSocket connection to .* failed/); // Chromium logs the refused attempts
    const cut = holdUpgrades(app);
    t.teardown(cut.release);
    for (const client of app.liveClients.ws) client.socket.terminate();
    await page.locator('#banner').waitFor();
    t.match(await page.locator('#banner-text').textContent(), /Live connection lost/);
    await send('MH-3', 'open', now - 5, { BatteryLevel: 6900, CSQ: 12 }); // while the page is away
    t.equal(app.liveClients.ws.size, 0, 'the page was away when the message went out');
    cut.release();
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 20_000 });
    await page.locator(`${rowOf('MH-3')} .badge`).filter({ hasText: 'open' }).waitFor();
    t.notOk(await page.locator(`${rowOf('MH-3')}`).evaluate((el) => el.classList.contains('silent')), 'no longer silent');
    t.equal(app.liveClients.ws.size, 1, 'one live connection again');
    noProblems(t, watched);
  });
}

/**
 * Refuses WebSocket upgrades until released: the bridge's side of a cut network, so that a
 * message can be published while the page is certainly away.
 */
function holdUpgrades(app: FastifyInstance): { release: () => void } {
  const listeners = app.server.listeners('upgrade') as ((...args: unknown[]) => void)[];
  app.server.removeAllListeners('upgrade');
  const refuse = (_req: unknown, socket: { destroy(): void }): void => socket.destroy();
  app.server.on('upgrade', refuse);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      app.server.off('upgrade', refuse);
      for (const listener of listeners) app.server.on('upgrade', listener);
    },
  };
}
