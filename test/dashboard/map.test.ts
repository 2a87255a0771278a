import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import { copyFile, mkdir } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { buildTestApp, nextEvent, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { baseUrl, launchBrowser, noProblems, openPage, rowOf, type Watched } from './browser.js';

// SPEC §11: the dashboard's map in a real Chromium, fed by a real app (devices straight into the
// store, registry entries through PUT /registry/{deviceId}): markers by state and silence, live
// moves and recolours, no request off the origin without MAP_TILE_URL, tiles from it with it,
// device text as text, and devices registered but never seen.

const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);
const DOCS_SCREENSHOT = new URL('../../docs/map.png', import.meta.url);
const HOSTILE_NAME = '<img src=x onerror=window.__pwned=1>';
// right-to-left override, pop, right-to-left mark: an address that would reorder the text around it
const RTL_ADDRESS = '\u202Eevil\u202C Hauptstraße 5 \u200F';

interface Entry {
  name?: string | null;
  address?: string | null;
  latitude?: number | null;
  longitude?: number | null;
  zone?: string | null;
  tags?: string[];
}

async function listening(t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0', ...env }), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app;
}

/** PUT /registry/{deviceId}: the whole entry (what is left out becomes null). */
async function register(t: Test, app: FastifyInstance, deviceId: string, entry: Entry): Promise<void> {
  const res = await app.inject({ method: 'PUT', url: `/registry/${encodeURIComponent(deviceId)}`, payload: entry });
  t.ok(res.statusCode >= 200 && res.statusCode < 300, `PUT /registry/${deviceId}: ${res.statusCode} ${res.statusCode >= 300 ? res.body : ''}`);
}

/** A message from the device, taken by the bridge (its event on the way to /ws). */
async function report(app: FastifyInstance, deviceId: string, state: string, timestamp: number): Promise<void> {
  await app.devices.accept(record({ deviceId, state, timestamp }), Date.now());
}

/** The marker of a device (ids may hold any character). */
function markerOf(deviceId: string, extra = ''): string {
  return `#map .leaflet-marker-icon${extra}[data-id=${JSON.stringify(deviceId)}]`;
}

/** Any CSP violation is a console error, so that noProblems() sees it (Chromium's own line may name less). */
async function reportViolations(page: Page): Promise<void> {
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
}

async function open(t: Test, browser: NonNullable<Awaited<ReturnType<typeof launchBrowser>>>, app: FastifyInstance, markers: number): Promise<Watched> {
  const watched = await openPage(t, browser);
  await reportViolations(watched.page);
  await watched.page.goto(baseUrl(app));
  await watched.page.locator('body[data-live="live"]').waitFor();
  await watched.page.waitForFunction((n) => document.querySelectorAll('#map .leaflet-marker-icon.mk').length === n, markers);
  return watched;
}

/**
 * Waits until the page's layout has come to rest, so that what a test then measures or points at
 * stays where it is: the alarm panel above the map lists every alarm the bridge holds (it grows with
 * them, and with its "No active alarm" line, and shifts the whole map down), the markers carry the
 * rings of their devices' alarms, the list of registered devices never seen has been read (after it,
 * the map fits its view one last time and then keeps it), and the map and its markers stand still on
 * screen for a few animation frames.
 */
async function settled(page: Page, app: FastifyInstance): Promise<void> {
  const [active, cleared] = await Promise.all([
    app.devices.store.listAlarms({ status: 'active', limit: 1000 }),
    app.devices.store.listAlarms({ status: 'cleared', acknowledged: false, limit: 1000 }),
  ]);
  const listed = [...active.items, ...cleared.items].map((a) => a.alarmId).sort();
  const alarmed = [...new Set(active.items.map((a) => a.deviceId))];
  await page.waitForFunction(
    ({ listed, alarmed }) => {
      const count = document.getElementById('alarm-count');
      if (count?.dataset.active === undefined) return false; // the alarms are not read yet
      const rows = [...document.querySelectorAll<HTMLElement>('#alarms li.alarm')].map((li) => li.dataset.alarmId ?? '').sort();
      if (JSON.stringify(rows) !== JSON.stringify(listed)) return false;
      for (const el of document.querySelectorAll<HTMLElement>('#map .leaflet-marker-icon.mk')) {
        if (alarmed.includes(el.dataset.id ?? '') !== el.classList.contains('has-alarm')) return false;
      }
      return performance.getEntriesByType('resource').some((e) => e.name.includes('/registry?seen=false'));
    },
    { listed, alarmed },
  );
  const still = await page.evaluate(async () => {
    const shot = (): string =>
      JSON.stringify([...document.querySelectorAll('#map, #map .leaflet-marker-icon')].map((el) => {
        const r = el.getBoundingClientRect();
        return [r.x, r.y, r.width, r.height];
      }));
    let last = shot();
    for (let frames = 0, same = 0; frames < 600; frames++) {
      await new Promise((resolve) => requestAnimationFrame(resolve));
      const now = shot();
      same = now === last ? same + 1 : 0;
      if (same >= 3) return true;
      last = now;
    }
    return false;
  });
  if (!still) throw new Error('the map and its markers did not come to rest');
}

/** Where the markers stand within the map's own box (not on the page, which the alarm panel can shift), in CSS pixels. */
async function withinMap(page: Page, ...deviceIds: string[]): Promise<{ x: number; y: number }[]> {
  return page.evaluate((ids) => {
    const map = document.getElementById('map')?.getBoundingClientRect();
    if (map === undefined) throw new Error('no #map');
    return ids.map((id) => {
      const el = document.querySelector(`#map .leaflet-marker-icon[data-id=${JSON.stringify(id)}]`);
      if (el === null) throw new Error(`no marker of ${id}`);
      const r = el.getBoundingClientRect();
      return { x: r.x + r.width / 2 - map.x, y: r.y + r.height / 2 - map.y };
    });
  }, deviceIds);
}

/**
 * Opens what a marker opens (its device's detail, or the popup of a device never seen) by the
 * keyboard, as map.js and Leaflet let a focused marker do: where the marker stands on the page does
 * not matter. For what is opened, not how (the clicks have tests of their own).
 */
async function activate(t: Test, page: Page, deviceId: string): Promise<void> {
  const marker = page.locator(markerOf(deviceId));
  await marker.focus();
  t.ok(await marker.evaluate((el) => el === document.activeElement), `the marker of ${deviceId} has the focus`);
  await page.keyboard.press('Enter');
}

/** The marker classes of our own vocabulary (model.js markerClass), in order. */
async function kindOf(page: Page, deviceId: string): Promise<string> {
  const cls = (await page.locator(markerOf(deviceId)).getAttribute('class')) ?? '';
  return cls.split(/\s+/).filter((c) => /^mk(-|$)/.test(c)).join(' ');
}

const browser = await launchBrowser(t);
const now = Math.floor(Date.now() / 1000);

if (browser !== undefined) {
  t.test('located devices are markers, by state in shape and colour; a click opens the detail', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-A', 'close', now - 600);
    await report(app, 'MH-B', 'open', now - 500);
    await report(app, 'MH-C', 'offline', now - 400);
    await report(app, 'MH-D', 'tilted', now - 300);
    await report(app, 'MH-E', 'close', now - 200); // registered without coordinates: no marker
    await report(app, 'MH-F', 'close', now - 100); // not registered: no marker
    await report(app, 'MH-S', 'open', now - 5 * 86400); // silent: four days without a message
    await app.devices.sweepSilence();
    await register(t, app, 'MH-A', { name: 'Cover A', address: 'Torstraße 1', latitude: 52.529, longitude: 13.401, zone: 'Mitte', tags: ['storm'] });
    await register(t, app, 'MH-B', { name: 'Cover B', latitude: 52.531, longitude: 13.409 });
    await register(t, app, 'MH-C', { name: 'Cover C', latitude: 52.525, longitude: 13.395 });
    await register(t, app, 'MH-D', { name: 'Cover D', latitude: 52.522, longitude: 13.412 });
    await register(t, app, 'MH-E', { name: 'Cover E' });
    await register(t, app, 'MH-S', { name: 'Cover S', latitude: 52.527, longitude: 13.418 });

    const watched = await open(t, browser, app, 5);
    const { page } = watched;
    // MH-B and MH-S are open (cover_open) and MH-S silent: the alarm panel above the map grows with them
    await settled(page, app);
    t.equal(await kindOf(page, 'MH-A'), 'mk mk-close', 'closed');
    t.equal(await kindOf(page, 'MH-B'), 'mk mk-open', 'open');
    t.equal(await kindOf(page, 'MH-C'), 'mk mk-offline', 'offline');
    t.equal(await kindOf(page, 'MH-D'), 'mk mk-other', 'a state of its own');
    t.equal(await kindOf(page, 'MH-S'), 'mk mk-open mk-silent', 'silent, in the shape of its state');
    t.equal(await page.locator(markerOf('MH-E')).count(), 0, 'no coordinates, no marker');
    t.equal(await page.locator(markerOf('MH-F')).count(), 0, 'no entry, no marker');
    t.match(await page.locator('#map-count').textContent(), /5 located/);
    t.same(await page.locator(markerOf('MH-A')).evaluate((el) => [el.dataset.lat, el.dataset.lng]), ['52.529', '13.401']);
    t.match(await page.locator(markerOf('MH-A')).getAttribute('aria-label'), /^MH-A, Cover A, Torstraße 1: close$/, 'a name for screen readers');

    // the first load fits the view to the markers (each marker's box within the map's, measured at once)
    const boxes = await page.evaluate((ids) => {
      const box = (el: Element | null): number[] | null => {
        const r = el?.getBoundingClientRect();
        return r === undefined ? null : [r.left, r.top, r.right, r.bottom];
      };
      return { map: box(document.getElementById('map')), markers: ids.map((id) => [id, box(document.querySelector(`#map .leaflet-marker-icon[data-id=${JSON.stringify(id)}]`))] as const) };
    }, ['MH-A', 'MH-B', 'MH-C', 'MH-D', 'MH-S']);
    for (const [id, m] of boxes.markers) {
      const map = boxes.map;
      t.ok(map && m && m[0]! >= map[0]! && m[1]! >= map[1]! && m[2]! <= map[2]! && m[3]! <= map[3]!, `${id} is in view (${JSON.stringify(m)} within ${JSON.stringify(map)})`);
    }
    // the shapes differ, not only the colours
    const shape = (id: string): Promise<string> =>
      page.locator(markerOf(id)).evaluate((el) => {
        const s = getComputedStyle(el, '::before');
        return `${s.borderRadius} ${s.transform} ${s.borderStyle} ${getComputedStyle(el, '::after').content}`;
      });
    const shapes = await Promise.all(['MH-A', 'MH-B', 'MH-C', 'MH-D', 'MH-S'].map(shape));
    t.equal(new Set(shapes).size, 5, `five shapes: ${shapes.join(' | ')}`);
    t.equal(await page.locator('#map-legend li').count(), 6, 'a legend of every kind');
    t.same(
      await page.locator('#map-legend .mk').evaluateAll((els) => els.map((el) => el.className)),
      ['mk mk-close', 'mk mk-open', 'mk mk-offline', 'mk mk-other', 'mk mk-close mk-silent', 'mk mk-unseen'],
      'the legend draws the markers\' own classes',
    );
    t.equal(await page.locator(`${rowOf('MH-A')} .col-name .name`).textContent(), 'Cover A', 'the table shows the name');
    t.equal(await page.locator(`${rowOf('MH-A')} .col-name .zone`).textContent(), 'Mitte', 'and the zone');

    await page.locator(markerOf('MH-A')).click();
    const dialog = page.locator('#detail');
    await dialog.waitFor();
    t.match(await dialog.locator('#detail-title').textContent(), /MH-A/, 'the marker opens its device\'s detail');
    t.match(await dialog.locator('#detail-facts').textContent(), /Cover A.*Torstraße 1.*Mitte.*storm/);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    t.ok(await page.locator(markerOf('MH-A')).evaluate((el) => el === document.activeElement), 'the focus is back on the marker');
    await page.keyboard.press('Enter');
    await dialog.waitFor();
    t.pass('Enter on a marker opens the detail too');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });

    // the map shows the table's filter
    await page.selectOption('#f-state', 'open');
    await page.waitForFunction(() => document.querySelectorAll('#map .leaflet-marker-icon.mk').length === 2);
    t.equal(await page.locator(markerOf('MH-B')).count(), 1, 'an open one stays');
    await page.click('#reset');
    await page.waitForFunction(() => document.querySelectorAll('#map .leaflet-marker-icon.mk').length === 5);
    noProblems(t, watched);
  });

  t.test('a published state change recolours the marker, and silence hollows it, without a reload', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-1', 'close', now - 60);
    await report(app, 'MH-2', 'close', now - 60);
    await register(t, app, 'MH-1', { name: 'One', latitude: 48.137, longitude: 11.575 });
    await register(t, app, 'MH-2', { name: 'Two', latitude: 48.139, longitude: 11.58 });
    const watched = await open(t, browser, app, 2);
    const { page } = watched;
    t.equal(await kindOf(page, 'MH-1'), 'mk mk-close');
    const element = await page.locator(markerOf('MH-1')).elementHandle();

    await report(app, 'MH-1', 'open', now - 30);
    await page.locator(markerOf('MH-1', '.mk-open')).waitFor();
    t.equal(await kindOf(page, 'MH-1'), 'mk mk-open', 'from closed to open');
    t.ok(await element?.evaluate((el) => el.isConnected), 'the same marker, recoloured in place');

    t.equal(await kindOf(page, 'MH-2'), 'mk mk-close', 'the other one stays as it was');

    // a device whose last message is five days old falls silent at the next sweep (four days)
    await report(app, 'MH-3', 'close', now - 5 * 86400);
    await register(t, app, 'MH-3', { name: 'Three', latitude: 48.135, longitude: 11.57 });
    await page.waitForFunction(() => document.querySelectorAll('#map .leaflet-marker-icon.mk').length === 3);
    await app.devices.sweepSilence();
    await page.locator(markerOf('MH-3', '.mk-silent')).waitFor();
    t.equal(await kindOf(page, 'MH-3'), 'mk mk-close mk-silent', 'a silent device');
    t.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');
    noProblems(t, watched);
  });

  t.test('a PUT that moves a device moves its marker; without coordinates or entry it goes; a new one comes', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-M', 'close', now - 60);
    await report(app, 'MH-N', 'open', now - 60);
    await register(t, app, 'MH-M', { name: 'Mover', latitude: 50.11, longitude: 8.68 });
    await register(t, app, 'MH-N', { name: 'Neighbour', latitude: 50.112, longitude: 8.684 });
    const watched = await open(t, browser, app, 2);
    const { page } = watched;
    const marker = page.locator(markerOf('MH-M'));
    // MH-N is open: its alarm grows the panel above the map, which moves the whole map down the page.
    // Positions are taken within the map, once the view has settled (it keeps its place from then on).
    await settled(page, app);
    const [before, neighbour] = await withinMap(page, 'MH-M', 'MH-N');

    await register(t, app, 'MH-M', { name: 'Mover', latitude: 50.111, longitude: 8.686 });
    await page.locator(markerOf('MH-M', '[data-lat="50.111"][data-lng="8.686"]')).waitFor();
    await settled(page, app);
    const [after, neighbourAfter] = await withinMap(page, 'MH-M', 'MH-N');
    t.ok(before && after && (Math.abs(after.x - before.x) > 5 || Math.abs(after.y - before.y) > 5), `the marker moved on the map (${JSON.stringify(before)} → ${JSON.stringify(after)})`);
    t.ok(after && before && after.x > before.x && after.y < before.y, 'east and north: right and up');
    t.ok(
      neighbour && neighbourAfter && Math.abs(neighbourAfter.x - neighbour.x) < 1 && Math.abs(neighbourAfter.y - neighbour.y) < 1,
      `the map kept its view: the marker moved, not the map (MH-N ${JSON.stringify(neighbour)} → ${JSON.stringify(neighbourAfter)})`,
    );
    t.equal(await kindOf(page, 'MH-M'), 'mk mk-close', 'the same look');

    await register(t, app, 'MH-M', { name: 'Mover' });
    await marker.waitFor({ state: 'detached' });
    t.pass('coordinates removed: the marker goes');
    await register(t, app, 'MH-M', { name: 'Mover', latitude: 50.109, longitude: 8.679 });
    await marker.waitFor();
    t.pass('coordinates again: it comes back');
    const del = await app.inject({ method: 'DELETE', url: '/registry/MH-M' });
    t.ok(del.statusCode >= 200 && del.statusCode < 300, `DELETE: ${del.statusCode}`);
    await marker.waitFor({ state: 'detached' });
    t.pass('entry deleted: the marker goes');
    t.equal(await page.locator(rowOf('MH-M')).count(), 1, 'the device stays in the table');
    t.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');
    noProblems(t, watched);
  });

  t.test('without MAP_TILE_URL: not one request off the origin, the hint, a scale', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-1', 'close', now - 60);
    await register(t, app, 'MH-1', { name: 'One', latitude: 53.55, longitude: 9.99 });
    await register(t, app, 'NEW-1', { name: 'New', latitude: 53.56, longitude: 10.0 });
    const watched = await openPage(t, browser);
    const { page } = watched;
    await reportViolations(page);
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('websocket', (ws) => requests.push(ws.url()));
    await page.goto(baseUrl(app));
    await page.locator('body[data-live="live"]').waitFor();
    await page.locator(markerOf('NEW-1')).waitFor();
    await page.locator('#map-hint').waitFor();
    await settled(page, app); // the alarm panel ("No active alarm") above the map, read after the snapshot
    // a popup and a detail need nothing from elsewhere either
    await page.locator(markerOf('MH-1')).hover();
    await page.locator('.leaflet-tooltip').waitFor();
    await page.locator(markerOf('NEW-1')).click();
    await page.locator('.leaflet-popup-content').waitFor();

    const own = new URL(baseUrl(app)).host;
    const network = requests.filter((url) => /^(https?|wss?):/.test(url));
    t.ok(network.length > 5, `the page's own requests were seen (${network.length})`);
    t.same(network.filter((url) => new URL(url).host !== own), [], 'no request to any other origin');
    t.ok(network.some((url) => url.endsWith('/dashboard/vendor/leaflet/leaflet.js')), 'Leaflet from the service');
    t.ok(network.some((url) => url.endsWith('/dashboard/vendor/leaflet.markercluster/leaflet.markercluster.js')), 'markercluster from the service');
    t.match(await page.locator('#map-hint').textContent(), /MAP_TILE_URL[\s\S]*MAP_TILE_ATTRIBUTION/, 'the hint says how to add tiles');
    t.ok(await page.locator('#map .leaflet-control-scale').isVisible(), 'a scale');
    t.equal(await page.locator('#map .leaflet-tile').count(), 0, 'no tiles');
    t.ok(await page.locator('#map.no-tiles').count(), 'a plain background');
    noProblems(t, watched);
  });

  t.test('with MAP_TILE_URL: the tiles come from there, with the attribution', async (t) => {
    const tiles = await tileServer(t);
    const app = await listening(t, { MAP_TILE_URL: `${tiles.url}/{z}/{x}/{y}.png`, MAP_TILE_ATTRIBUTION: 'Tiles by the test' });
    const settings = await app.inject({ method: 'GET', url: '/dashboard/map.json' });
    t.same(settings.json(), { tileUrl: `${tiles.url}/{z}/{x}/{y}.png`, tileAttribution: 'Tiles by the test' }, 'GET /dashboard/map.json');
    await report(app, 'MH-1', 'close', now - 60);
    await register(t, app, 'MH-1', { name: 'One', latitude: 53.55, longitude: 9.99 });
    const watched = await open(t, browser, app, 1);
    const { page } = watched;
    await page.locator('#map img.leaflet-tile-loaded').first().waitFor();
    t.ok(tiles.paths.length > 0, `${tiles.paths.length} tiles asked for`);
    t.ok(tiles.paths.every((p) => /^\/\d+\/\d+\/\d+\.png$/.test(p)), 'as z/x/y');
    t.match(await page.locator('#map .leaflet-control-attribution').textContent(), /Tiles by the test/);
    t.ok(await page.locator('#map-hint').isHidden(), 'no hint');
    t.ok(await page.locator('#map .leaflet-control-scale').isVisible(), 'a scale still');
    noProblems(t, watched);
  });

  t.test('hostile names and addresses are text in the tooltip, the popup, the table and the detail', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-X', 'open', now - 60);
    await register(t, app, 'MH-X', { name: HOSTILE_NAME, address: RTL_ADDRESS, latitude: 41.39, longitude: 2.17, zone: '<b>zone</b>', tags: ['<i>t</i>'] });
    await register(t, app, 'NEW-X', { name: HOSTILE_NAME, address: RTL_ADDRESS, latitude: 41.392, longitude: 2.175 });
    const watched = await open(t, browser, app, 2);
    const { page } = watched;
    // MH-X is open: its cover_open alarm grows the panel above the map, and moves the markers down the page
    await settled(page, app);

    await page.locator(markerOf('MH-X')).hover();
    const tooltip = page.locator('.leaflet-tooltip');
    await tooltip.waitFor();
    t.equal(await tooltip.locator('.mk-tip-name').textContent(), HOSTILE_NAME, 'the tooltip shows the name literally');
    t.equal(await tooltip.locator('.mk-tip-address').textContent(), RTL_ADDRESS, 'and the address, marks and all');
    t.equal(await page.locator(`${rowOf('MH-X')} .col-name .name`).textContent(), HOSTILE_NAME, 'the table too');
    t.equal(await page.locator(`${rowOf('MH-X')} .col-name .zone`).textContent(), '<b>zone</b>');
    t.match(await page.locator(markerOf('MH-X')).getAttribute('aria-label'), HOSTILE_NAME, 'an attribute, not markup');

    await activate(t, page, 'NEW-X');
    const popup = page.locator('.leaflet-popup-content');
    await popup.waitFor();
    t.equal(await popup.locator('.mk-popup-name').textContent(), HOSTILE_NAME, 'the popup shows the name literally');
    t.match(await popup.textContent(), RTL_ADDRESS);
    await page.locator('.leaflet-popup-close-button').click();
    await popup.waitFor({ state: 'detached' });

    await activate(t, page, 'MH-X');
    await page.locator('#detail').waitFor();
    t.match(await page.locator('#detail-facts').textContent(), HOSTILE_NAME, 'the detail shows it as text');
    await page.keyboard.press('Escape');

    t.equal(await page.locator('#map img, #rows img, #detail img, #map b, #rows b, #map i').count(), 0, 'no element made of registry text');
    t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'window.__pwned is undefined');
    noProblems(t, watched);
  });

  t.test('a device registered and never seen: a marker of its own kind, live, until it reports', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-1', 'close', now - 60);
    await register(t, app, 'MH-1', { name: 'Seen', latitude: 45.46, longitude: 9.19 });
    await register(t, app, 'NEW-1', { name: 'Installed', address: 'Via Roma 1', latitude: 45.465, longitude: 9.186, zone: 'Centro', tags: ['new'] });
    await register(t, app, 'NEW-0', { name: 'Nowhere yet' }); // never seen, not located: no marker
    const watched = await open(t, browser, app, 2);
    const { page } = watched;
    await settled(page, app); // the alarm panel ("No active alarm") above the map, read after the snapshot
    t.equal(await kindOf(page, 'NEW-1'), 'mk mk-unseen', 'registered, never seen');
    t.match(await page.locator(markerOf('NEW-1')).getAttribute('aria-label'), /registered, never seen/);
    t.equal(await page.locator(rowOf('NEW-1')).count(), 0, 'not in the table of reporting devices');

    await page.locator(markerOf('NEW-1')).click();
    const popup = page.locator('.leaflet-popup-content');
    await popup.waitFor();
    t.equal(await popup.locator('.mk-popup-name').textContent(), 'Installed');
    t.match(await popup.textContent(), /Via Roma 1[\s\S]*Centro[\s\S]*new/);
    t.ok(await page.locator('#detail').isHidden(), 'no detail: there is no history');
    await page.locator('.leaflet-popup-close-button').click();
    await popup.waitFor({ state: 'detached' });

    await register(t, app, 'NEW-2', { name: 'Later', latitude: 45.462, longitude: 9.195 });
    await page.locator(markerOf('NEW-2', '.mk-unseen')).waitFor();
    t.pass('a device registered while the page is open appears');

    await report(app, 'NEW-1', 'open', now - 10);
    await page.locator(markerOf('NEW-1', '.mk-open')).waitFor();
    t.equal(await kindOf(page, 'NEW-1'), 'mk mk-open', 'its first message makes it a device marker');
    await page.locator(rowOf('NEW-1')).waitFor();
    // open: a cover_open alarm, a row more in the panel above the map, which moves the map down the page
    await settled(page, app);
    await page.locator(markerOf('NEW-1')).click();
    await page.locator('#detail').waitFor();
    t.match(await page.locator('#detail-title').textContent(), /NEW-1/, 'and it opens the detail now');
    await page.keyboard.press('Escape');

    const del = await app.inject({ method: 'DELETE', url: '/registry/NEW-2' });
    t.ok(del.statusCode >= 200 && del.statusCode < 300, `DELETE: ${del.statusCode}`);
    await page.locator(markerOf('NEW-2')).waitFor({ state: 'detached' });
    t.pass('a deleted entry of a device never seen: the marker goes');
    noProblems(t, watched);
  });

  t.test('more than 500 markers cluster', async (t) => {
    const app = await listening(t);
    const entries = [];
    for (let n = 0; n < 600; n++) {
      const deviceId = `c${String(n).padStart(4, '0')}`;
      await report(app, deviceId, n % 7 === 0 ? 'open' : 'close', now - n);
      entries.push({ deviceId, name: `Cover ${n}`, address: null, latitude: 47.3 + (n % 30) * 0.004, longitude: 8.5 + Math.floor(n / 30) * 0.006, zone: null, tags: [] });
    }
    await app.devices.importEntries(entries);
    const watched = await openPage(t, browser);
    const { page } = watched;
    await reportViolations(page);
    await page.goto(baseUrl(app));
    await page.locator('#map .marker-cluster').first().waitFor();
    const shown = await page.locator('#map .leaflet-marker-icon').count();
    t.ok(shown < 300, `clusters, not 600 markers (${shown} icons)`);
    t.ok(await page.locator('#map .marker-cluster.mk-cluster-open').count(), 'a cluster with an open cover is marked');
    t.match(await page.locator('#map-count').textContent(), /600 located/);
    noProblems(t, watched);
  });

  t.test('the demo fleet on the map (docs/map.png with MAP_DOCS_SCREENSHOT=1)', async (t) => {
    // the demo: the embedded broker and its simulated fleet, registered once the bridge subscribes
    const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '20' }));
    const registered = nextEvent(app, (e) => e.kind === 'meta', 'the demo fleet registered', 20_000);
    await app.listen({ port: 0, host: '127.0.0.1' });
    await registered;
    const watched = await openPage(t, browser);
    const { page } = watched;
    await reportViolations(page);
    await page.goto(baseUrl(app));
    await page.locator('body[data-live="live"]').waitFor();
    // every sensor sends a first message at start: then no marker is "never seen" any more
    await page.waitForFunction(
      () => document.querySelectorAll('#map .leaflet-marker-icon.mk').length === 20 && document.querySelectorAll('#map .leaflet-marker-icon.mk-unseen').length === 0,
      null,
      { timeout: 20_000 },
    );
    t.pass('the 20 demo sensors on the map, each with its state');
    const docs = process.env.MAP_DOCS_SCREENSHOT === '1';
    // for the README's picture: an open cover among them, once the simulator opens one
    if (docs) await page.locator('#map .leaflet-marker-icon.mk-open').first().waitFor({ timeout: 60_000 });
    // the alarms read (the panel above the map at its size), and the whole map in the picture: the
    // panel pushes the map's lower part below a 800 px viewport, so the page scrolls down to its end
    await page.locator('#alarm-count[data-active]').waitFor();
    await page.locator('#map-panel').evaluate((el) => el.scrollIntoView({ block: 'end' }));
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('map.png', ARTIFACTS).pathname });
    // docs/map.png is committed: written only when asked, so that a test run leaves git clean
    if (docs) await copyFile(new URL('map.png', ARTIFACTS), DOCS_SCREENSHOT);
    noProblems(t, watched);
  });
}

/** A tile server on loopback: a 1×1 PNG for every path, and the paths it was asked for. */
async function tileServer(t: Test): Promise<{ url: string; paths: string[] }> {
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
    res.end(png);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, paths };
}
