import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import type { Alarm } from '../../src/devices/alarms.js';
import { Alarms, compareAlarms, isListed, mergeAlarm } from '../../src/dashboard/public/alarms.js';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { baseUrl, launchBrowser, noProblems, openPage, rowOf, type Watched } from './browser.js';

// SPEC §12 on the dashboard: the alarm list (active first, then cleared and not acknowledged),
// acknowledge and clear from the page, the marks in the table and on the map, the count in the
// header; live from /ws alarm frames, read again from GET /alarms after a reconnect; a read-only key
// refused in words; alarm and registry text as text. The list's own logic (alarms.js) first, in node.

const HOSTILE = '<img src=x onerror=window.__pwned=1>';
const HOSTILE_NOTE = '<b>done</b><img src=x onerror=window.__pwned=2> \u202Eevil';
const HOSTILE_ID = '<i>x</i>-9';
const WRITE_KEY = 'a-write-key-of-16-chars-or-more';
const READ_KEY = 'a-read-key-of-16-chars-or-more';

// ---- alarms.js, no browser --------------------------------------------------------------------

function alarm(overrides: Partial<Alarm>): Alarm {
  return {
    alarmId: 'a1',
    deviceId: 'd1',
    type: 'cover_open',
    severity: 'major',
    status: 'active',
    acknowledged: false,
    raisedAt: '2026-12-01T10:00:00.000Z',
    clearedAt: null,
    acknowledgedAt: null,
    note: null,
    meta: null,
    raisedReceivedAt: '2026-12-01T10:00:00.000Z',
    clearedReceivedAt: null,
    ...overrides,
  };
}

t.test('the order: active by severity then newest, then the cleared ones newest first', async (t) => {
  const list = [
    alarm({ alarmId: 'a1', severity: 'warning', raisedAt: '2026-12-01T12:00:00Z' }),
    alarm({ alarmId: 'a2', severity: 'critical', raisedAt: '2026-12-01T09:00:00Z' }),
    alarm({ alarmId: 'a3', status: 'cleared', raisedAt: '2026-12-01T13:00:00Z' }),
    alarm({ alarmId: 'a4', severity: 'major', raisedAt: '2026-12-01T11:00:00Z' }),
    alarm({ alarmId: 'a5', severity: 'major', raisedAt: '2026-12-01T11:30:00Z' }),
    alarm({ alarmId: 'a6', status: 'cleared', severity: 'critical', raisedAt: '2026-12-01T08:00:00Z' }),
    alarm({ alarmId: 'a10', severity: 'major', raisedAt: '2026-12-01T11:30:00Z' }),
  ];
  t.same(
    list.sort(compareAlarms).map((a) => a.alarmId),
    ['a2', 'a10', 'a5', 'a4', 'a1', 'a3', 'a6'],
  );
});

t.test('copies of one alarm merge forward, in any order; acknowledged and cleared leaves', async (t) => {
  const raised = alarm({});
  const acked = alarm({ acknowledged: true, acknowledgedAt: '2026-12-01T10:05:00Z', note: 'on it' });
  const cleared = alarm({ status: 'cleared', clearedAt: '2026-12-01T10:10:00Z', clearedReceivedAt: '2026-12-01T10:10:01Z' });
  const escalated = alarm({ severity: 'critical' });
  const both = mergeAlarm(mergeAlarm(raised, acked), cleared);
  t.match(both, { status: 'cleared', acknowledged: true, note: 'on it', clearedAt: '2026-12-01T10:10:00Z' });
  t.same(mergeAlarm(cleared, acked), both, 'the other order, the same alarm');
  t.equal(mergeAlarm(escalated, raised).severity, 'critical', 'a stale copy never lowers the severity');
  t.equal(mergeAlarm(acked, raised).acknowledged, true, 'nor takes the acknowledgement back');
  t.notOk(isListed(both));
  t.ok(isListed(cleared));
  t.ok(isListed(acked));
});

t.test('a read merges the frames that came while it was under way; counts and marks by device', async (t) => {
  let answer: (items: Alarm[][]) => void = () => {};
  const asked: string[] = [];
  const reads: Promise<Alarm[][]> = new Promise((resolve) => {
    answer = resolve;
  });
  const book = new Alarms(async (path) => {
    asked.push(path);
    const [active, cleared] = await reads;
    return path.includes('status=active') ? active! : cleared!;
  });
  book.set(alarm({ alarmId: 'old', deviceId: 'gone' })); // from before: acknowledged and cleared since
  const loading = book.load();
  // while the read is under way: a1 acknowledged (the read still has it unacknowledged), a9 raised
  book.apply({ type: 'alarm', seq: 7, transition: 'acknowledged', alarm: alarm({ alarmId: 'a1', acknowledged: true, acknowledgedAt: '2026-12-01T10:05:00Z', note: 'n' }) });
  book.apply({ type: 'alarm', seq: 8, transition: 'raised', alarm: alarm({ alarmId: 'a9', deviceId: 'd2', type: 'battery_low', severity: 'warning' }) });
  answer([[alarm({ alarmId: 'a1' }), alarm({ alarmId: 'a2', deviceId: 'd1', type: 'silent', severity: 'critical' })], [alarm({ alarmId: 'a3', deviceId: 'd3', status: 'cleared' })]]);
  t.equal(await loading, true);
  t.same(asked.sort(), ['/alarms?status=active', '/alarms?status=cleared&acknowledged=false']);
  t.same([...book.byId.keys()].sort(), ['a1', 'a2', 'a3', 'a9'], 'what the bridge lists, and what came since; not what left');
  t.equal(book.byId.get('a1')?.acknowledged, true, 'the frame newer than the read wins');
  t.same(book.counts(), { active: 3, unacknowledged: 3, worst: 'critical' });
  t.same(
    book.ofDevice('d1')?.alarms.map((a) => a.alarmId),
    ['a2', 'a1'],
    'd1: the critical one first',
  );
  t.equal(book.ofDevice('d1')?.severity, 'critical');
  t.equal(book.ofDevice('d3'), undefined, 'a cleared alarm marks nothing');
  const version = book.version;
  t.notOk(book.set(alarm({ alarmId: 'a9', deviceId: 'd2', type: 'battery_low', severity: 'warning' })), 'the same again changes nothing');
  t.equal(book.version, version);
  t.ok(book.apply({ type: 'alarm', seq: 9, transition: 'cleared', alarm: alarm({ alarmId: 'a1', status: 'cleared', clearedAt: '2026-12-01T11:00:00Z' }) }));
  t.notOk(book.byId.has('a1'), 'acknowledged, then cleared: it leaves');

  const failing = new Alarms(async () => {
    throw new Error('HTTP 404');
  });
  failing.set(alarm({ alarmId: 'kept' }));
  t.equal(await failing.load(), true);
  t.ok(failing.error instanceof Error, 'a failed read says so');
  t.ok(failing.byId.has('kept'), 'and keeps what the page had');
});

// ---- the page, in a real Chromium -------------------------------------------------------------

interface Entry {
  name?: string | null;
  address?: string | null;
  latitude?: number | null;
  longitude?: number | null;
}

async function listening(t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0', ...env }), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app;
}

/** The write key's header when the app has keys. */
const auth = (key?: string): Record<string, string> => (key === undefined ? {} : { authorization: `Bearer ${key}` });

async function register(t: Test, app: FastifyInstance, deviceId: string, entry: Entry, key?: string): Promise<void> {
  const res = await app.inject({ method: 'PUT', url: `/registry/${encodeURIComponent(deviceId)}`, payload: entry, headers: auth(key) });
  t.ok(res.statusCode >= 200 && res.statusCode < 300, `PUT /registry/${deviceId}: ${res.statusCode} ${res.statusCode >= 300 ? res.body : ''}`);
}

const now = Math.floor(Date.now() / 1000);
let tick = 0;
/** A message from the device, taken by the bridge (alarms raised or cleared in the same write). */
async function report(app: FastifyInstance, deviceId: string, state: string, extra: { batteryLevel?: number } = {}): Promise<void> {
  await app.devices.accept(record({ deviceId, state, timestamp: now - 600 + ++tick, ...extra }), Date.now());
}

/** The device's alarm of this type, as the bridge has it now. */
async function alarmOf(app: FastifyInstance, deviceId: string, type: Alarm['type']): Promise<Alarm> {
  const { items } = await app.devices.store.listAlarms({ deviceId, type, limit: 10 });
  const found = items[0];
  if (found === undefined) throw new Error(`no ${type} alarm of ${deviceId}`);
  return found;
}

/** The row of an alarm in the list. */
const alarmRow = (alarmId: string): string => `#alarms li.alarm[data-alarm-id=${JSON.stringify(alarmId)}]`;
const markerOf = (deviceId: string): string => `#map .leaflet-marker-icon[data-id=${JSON.stringify(deviceId)}]`;

async function reportViolations(page: Page): Promise<void> {
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
}

async function open(t: Test, browser: NonNullable<Awaited<ReturnType<typeof launchBrowser>>>, app: FastifyInstance): Promise<Watched> {
  const watched = await openPage(t, browser);
  await reportViolations(watched.page);
  await watched.page.goto(baseUrl(app));
  await watched.page.locator('body[data-live="live"]').waitFor();
  await watched.page.locator('#alarm-count[data-active]').waitFor();
  return watched;
}

/** The header's figures once they are these. */
async function countIs(page: Page, active: number, unacknowledged: number): Promise<void> {
  await page.locator(`#alarm-count[data-active="${active}"][data-unacknowledged="${unacknowledged}"]`).waitFor();
}

/** Refuses WebSocket upgrades until released (the bridge's side of a cut network). */
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

// in a subtest of its own: without chromium it is skipped, and the tests above still count
t.test('the page, in a real Chromium', async (t) => {
  const browser = await launchBrowser(t);
  if (browser === undefined) return;

  t.test('an open cover: in the list, the header, the table and the map, live; acknowledged and cleared from the page', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-1', 'close');
    await report(app, 'MH-2', 'close');
    await register(t, app, 'MH-1', { name: 'Cover One', address: 'Torstraße 1', latitude: 52.529, longitude: 13.401 });
    await register(t, app, 'MH-2', { name: 'Cover Two', latitude: 52.531, longitude: 13.409 });
    const watched = await open(t, browser, app);
    const { page } = watched;
    await countIs(page, 0, 0);
    t.match(await page.locator('#alarm-count').textContent(), /0 active alarms\s*·?\s*,?\s*0 unacknowledged/);
    t.ok(await page.locator('#alarms-active-empty').isVisible(), 'no active alarm, and it says so');

    // published: the cover opens
    await report(app, 'MH-1', 'open');
    const open1 = await alarmOf(app, 'MH-1', 'cover_open');
    const row = page.locator(alarmRow(open1.alarmId));
    await row.waitFor();
    t.pass('the alarm is in the list, without a reload');
    t.equal(await row.locator('xpath=..').getAttribute('id'), 'alarms-active', 'among the active ones');
    t.equal(await row.locator('.alarm-type').textContent(), 'Cover open');
    t.equal(await row.locator('.sev').textContent(), 'Major', 'the severity in words');
    t.ok(await row.locator('.sev').evaluate((el) => getComputedStyle(el, '::before').clipPath !== 'none'), 'and in a shape (a triangle for major)');
    t.equal(await row.locator('.alarm-device-id').textContent(), 'MH-1');
    t.equal(await row.locator('.alarm-name').textContent(), 'Cover One', 'the name of its registry entry');
    t.equal(await row.locator('.alarm-address').textContent(), 'Torstraße 1');
    const raised = row.locator('.alarm-when time');
    t.equal(await raised.getAttribute('datetime'), open1.raisedAt, 'raisedAt, exact');
    t.match(await raised.getAttribute('title'), /\d{4}/, 'the exact time on hover');
    t.match(await raised.textContent(), /ago|just now/, 'relative in the text');
    t.equal(await row.locator('.ack-state').textContent(), 'Not acknowledged');
    await countIs(page, 1, 1);
    t.match(await page.locator('#alarm-count').getAttribute('data-worst'), 'major');

    // the table and the map mark the device
    const mark = page.locator(`${rowOf('MH-1')} .alarm-mark`);
    await mark.waitFor();
    t.match(await mark.getAttribute('aria-label'), /^Active alarm, major: cover open$/, 'a mark with words');
    t.equal(await mark.getAttribute('role'), 'img');
    t.ok(await page.locator(`${rowOf('MH-1')}.has-alarm.alarm-major`).count(), 'the row carries the severity');
    t.equal(await page.locator(`${rowOf('MH-2')} .alarm-mark`).count(), 0, 'the other device has none');
    await page.locator(`${markerOf('MH-1')}.has-alarm.alarm-major`).waitFor();
    t.match(await page.locator(markerOf('MH-1')).getAttribute('class'), /\bmk mk-open\b/, 'the marker keeps its state\'s shape');
    t.match(await page.locator(markerOf('MH-1')).getAttribute('aria-label'), /: open\. Active alarm, major: cover open$/);
    t.notOk(await page.locator(markerOf('MH-2')).evaluate((el) => el.classList.contains('has-alarm')), 'no ring on the other');
    const ring = await page.locator(markerOf('MH-1')).evaluate((el) => getComputedStyle(el).boxShadow);
    t.not(ring, 'none', `a ring around the marker (${ring})`);

    // a critical one sorts first
    await report(app, 'MH-2', 'close', { batteryLevel: 500 });
    const low2 = await alarmOf(app, 'MH-2', 'battery_low');
    await page.locator(alarmRow(low2.alarmId)).waitFor();
    t.equal(low2.severity, 'critical');
    t.same(
      await page.locator('#alarms-active li.alarm').evaluateAll((els) => els.map((el) => (el as HTMLElement).dataset.alarmId)),
      [low2.alarmId, open1.alarmId],
      'the critical one first',
    );
    await countIs(page, 2, 2);
    t.equal(await page.locator('#alarm-count').getAttribute('data-worst'), 'critical');
    await page.locator(`${markerOf('MH-2')}.has-alarm.alarm-critical`).waitFor();
    t.match(await page.locator(`${rowOf('MH-2')} .alarm-mark`).getAttribute('aria-label'), /critical: battery low/);

    // acknowledge from the page, with a note
    await row.locator('.ack-note').fill('Crew 4 on the way');
    await row.locator('button.ack').click();
    await row.locator('.ack-state.acked').waitFor();
    const acked = await app.devices.store.getAlarm(open1.alarmId);
    t.match(acked, { acknowledged: true, note: 'Crew 4 on the way', status: 'active' }, 'the bridge has it acknowledged, with the note');
    t.equal(await row.locator('.alarm-note').textContent(), 'Crew 4 on the way', 'the row shows the note');
    t.ok(await row.locator('.ack-form').isHidden(), 'no second acknowledgement');
    t.ok(await row.locator('button.clear').evaluate((el) => el === document.activeElement), 'the focus moves on to Clear, in the same row');
    await countIs(page, 2, 1);

    // clear from the page: acknowledged and cleared, it leaves the list
    await row.locator('button.clear').click();
    await row.waitFor({ state: 'detached' });
    t.match(await app.devices.store.getAlarm(open1.alarmId), { status: 'cleared', acknowledged: true }, 'the bridge has it cleared');
    await countIs(page, 1, 1);
    await mark.waitFor({ state: 'detached' });
    t.pass('the table mark goes');
    await page.waitForFunction((sel) => !document.querySelector(sel)?.classList.contains('has-alarm'), markerOf('MH-1'));
    t.pass('and the ring on the map');

    // clear the unacknowledged one: it moves to the cleared group until someone acknowledges it
    const row2 = page.locator(alarmRow(low2.alarmId));
    await row2.locator('button.clear').click();
    await page.locator(`#alarms-cleared ${alarmRow(low2.alarmId).slice('#alarms '.length)}`).waitFor();
    t.match(await app.devices.store.getAlarm(low2.alarmId), { status: 'cleared', acknowledged: false });
    t.ok(await row2.locator('button.clear').isHidden(), 'nothing left to clear');
    t.ok(await row2.locator('.ack-note').evaluate((el) => el === document.activeElement), 'the focus stays in the row, on its note');
    t.match(await row2.locator('.alarm-status').textContent(), 'Cleared');
    await countIs(page, 0, 1);
    t.equal(await page.locator('#alarm-count').getAttribute('data-worst'), 'none');
    await row2.locator('button.ack').click(); // no note
    await row2.waitFor({ state: 'detached' });
    t.match(await app.devices.store.getAlarm(low2.alarmId), { acknowledged: true, note: null });
    await countIs(page, 0, 0);

    // a device's newer close clears its cover_open at the bridge: the page follows the frame
    await report(app, 'MH-2', 'open');
    const open2 = await alarmOf(app, 'MH-2', 'cover_open');
    await page.locator(`#alarms-active ${alarmRow(open2.alarmId).slice('#alarms '.length)}`).waitFor();
    await report(app, 'MH-2', 'close');
    await page.locator(`#alarms-cleared ${alarmRow(open2.alarmId).slice('#alarms '.length)}`).waitFor();
    t.pass('cleared by its cause: into the cleared group, live');
    await countIs(page, 0, 1);

    // acknowledged elsewhere (REST): the frame takes it off the page
    const res = await app.inject({ method: 'POST', url: `/alarms/${open2.alarmId}/ack`, payload: { note: 'by phone' } });
    t.equal(res.statusCode, 200);
    await page.locator(alarmRow(open2.alarmId)).waitFor({ state: 'detached' });
    await countIs(page, 0, 0);

    // the device link opens the detail
    await report(app, 'MH-1', 'offline');
    const silent = await alarmOf(app, 'MH-1', 'silent');
    await page.locator(alarmRow(silent.alarmId)).locator('.alarm-device-id').click();
    await page.locator('#detail').waitFor();
    t.match(await page.locator('#detail-title').textContent(), /MH-1/, 'the device link opens its detail');
    await page.keyboard.press('Escape');
    t.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload all along');
    noProblems(t, watched);
  });

  t.test('alarms raised before the page and while it was away: read from GET /alarms at every snapshot', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-A', 'open');
    await report(app, 'MH-B', 'close', { batteryLevel: 1500 });
    const batt = await alarmOf(app, 'MH-B', 'battery_low');
    await app.devices.clearAlarm(batt.alarmId); // cleared, not acknowledged: listed
    const watched = await open(t, browser, app);
    const { page } = watched;
    await countIs(page, 1, 2);
    t.equal(await page.locator('#alarms-active li.alarm').count(), 1);
    t.equal(await page.locator('#alarms-cleared li.alarm').count(), 1);
    t.equal(await page.locator(`#alarms-cleared ${alarmRow(batt.alarmId).slice('#alarms '.length)} .sev`).textContent(), 'Warning');

    watched.expect.push(/WebSocket connection to .* failed/); // Chromium logs the refused attempts
    const cut = holdUpgrades(app);
    t.teardown(cut.release);
    for (const client of app.liveClients.ws) client.socket.terminate();
    await page.locator('#banner').waitFor();
    // while the page is away: a new alarm, and the cleared one acknowledged
    await report(app, 'MH-C', 'offline');
    await app.devices.acknowledgeAlarm(batt.alarmId, null);
    const silent = await alarmOf(app, 'MH-C', 'silent');
    cut.release();
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 20_000 });
    await page.locator(alarmRow(silent.alarmId)).waitFor();
    await page.locator(alarmRow(batt.alarmId)).waitFor({ state: 'detached' });
    await countIs(page, 2, 2);
    t.pass('the list caught up after the reconnect');
    noProblems(t, watched);
  });

  t.test('a read-only key: acknowledge and clear are refused in words, nothing changes; a write key then works', async (t) => {
    const app = await listening(t, { API_KEYS: WRITE_KEY, API_READ_KEYS: READ_KEY });
    await report(app, 'MH-R', 'open');
    await register(t, app, 'MH-R', { name: 'Read Only' }, WRITE_KEY);
    const opened = await alarmOf(app, 'MH-R', 'cover_open');
    const watched = await openPage(t, browser);
    const { page } = watched;
    await reportViolations(page);
    watched.expect.push(/status of 401/, /status of 403/); // the first read without a key; the refused writes
    await page.goto(baseUrl(app));
    await page.locator('#auth').waitFor();
    await page.fill('#key', READ_KEY);
    await page.press('#key', 'Enter');
    await page.locator('body[data-live="live"]').waitFor();
    const row = page.locator(alarmRow(opened.alarmId));
    await row.waitFor();
    await countIs(page, 1, 1);

    await row.locator('.ack-note').fill('should not stick');
    await row.locator('button.ack').click();
    const message = page.locator('#alarm-message');
    await message.waitFor();
    t.match(await message.textContent(), /may only read.*BRG_ERR_READ_ONLY_KEY.*API_KEYS/, 'the refusal, in words');
    t.equal(await message.getAttribute('role'), 'alert');
    t.match(await app.devices.store.getAlarm(opened.alarmId), { acknowledged: false, note: null, status: 'active' }, 'the bridge changed nothing');
    t.equal(await row.locator('.ack-state').textContent(), 'Not acknowledged', 'nor did the page');
    t.equal(await row.locator('.ack-note').inputValue(), 'should not stick', 'the note stays typed, for a retry');
    t.ok(await row.locator('button.ack').isEnabled(), 'the buttons work again');

    await row.locator('button.clear').click();
    await message.filter({ hasText: 'Could not clear' }).waitFor();
    t.match(await app.devices.store.getAlarm(opened.alarmId), { status: 'active' }, 'not cleared');
    t.ok(await row.isVisible(), 'still listed');
    await countIs(page, 1, 1);

    // another key, one that may write
    await message.locator('#alarm-use-key').click();
    await page.locator('#auth').waitFor();
    t.match(await page.locator('#key-error').textContent(), /need a key from API_KEYS/);
    await page.locator('#key-cancel').click();
    await page.locator('#auth').waitFor({ state: 'hidden' });
    t.ok(await page.locator('#main').isVisible(), 'keeping the current key brings the page back');
    await message.locator('#alarm-use-key').click();
    await page.fill('#key', WRITE_KEY);
    await page.press('#key', 'Enter');
    await page.locator('body[data-live="live"]').waitFor();
    await row.waitFor();
    await row.locator('.ack-note').fill('with the right key');
    await row.locator('button.ack').click();
    await row.locator('.ack-state.acked').waitFor();
    t.match(await app.devices.store.getAlarm(opened.alarmId), { acknowledged: true, note: 'with the right key' });
    t.ok(await message.isHidden(), 'the refusal is gone');
    noProblems(t, watched);
  });

  t.test('a bridge that cannot list its alarms: said in the panel and the header, the rest of the page works', async (t) => {
    const app = await listening(t);
    await report(app, 'MH-1', 'open');
    const watched = await openPage(t, browser);
    const { page } = watched;
    await reportViolations(page);
    watched.expect.push(/status of 503/);
    await page.route(/\/alarms\?/, (route) => route.fulfill({ status: 503, contentType: 'application/json', body: '{"statusCode":503,"error":"Service Unavailable","message":"down"}' }));
    await page.goto(baseUrl(app));
    await page.locator('body[data-live="live"]').waitFor();
    await page.locator('#alarms-problem').waitFor();
    t.match(await page.locator('#alarms-problem').textContent(), /could not be read/);
    t.equal(await page.locator('#alarm-count').textContent(), 'Alarms unavailable', 'no reassuring zero');
    await page.locator(rowOf('MH-1')).waitFor();
    t.pass('the table is there');
    noProblems(t, watched);
  });

  t.test('hostile names, ids and notes are text in the list, the marks and the header', async (t) => {
    const app = await listening(t);
    await report(app, HOSTILE_ID, 'close');
    await register(t, app, HOSTILE_ID, { name: HOSTILE, address: HOSTILE_NOTE, latitude: 41.39, longitude: 2.17 });
    await report(app, HOSTILE_ID, 'open');
    const opened = await alarmOf(app, HOSTILE_ID, 'cover_open');
    const watched = await open(t, browser, app);
    const { page } = watched;
    const row = page.locator(alarmRow(opened.alarmId));
    await row.waitFor();
    t.equal(await row.locator('.alarm-device-id').textContent(), HOSTILE_ID);
    t.equal(await row.locator('.alarm-name').textContent(), HOSTILE);
    t.equal(await row.locator('.alarm-address').textContent(), HOSTILE_NOTE);
    await row.locator('.ack-note').fill(HOSTILE_NOTE);
    await row.locator('button.ack').click();
    await row.locator('.alarm-note').waitFor();
    t.equal(await row.locator('.alarm-note').textContent(), HOSTILE_NOTE, 'the note, literally');
    t.equal((await app.devices.store.getAlarm(opened.alarmId))?.note, HOSTILE_NOTE, 'as the bridge keeps it');
    t.match(await row.locator('.ack-note').getAttribute('aria-label'), HOSTILE_ID, 'an attribute, not markup');
    await page.locator(`${rowOf(HOSTILE_ID)} .alarm-mark`).waitFor();
    t.equal(await page.locator('#alarms img, #alarms b, #alarms i, #rows img, #rows i, #map img.mk, #alarm-count img').count(), 0, 'no element made of alarm or registry text');
    t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'window.__pwned is undefined');
    noProblems(t, watched);
  });
});
