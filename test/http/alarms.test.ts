import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { encodeCursor } from '../../src/cursor.js';
import type { Alarm } from '../../src/devices/alarms.js';
import type { AlarmEvent } from '../../src/devices/events.js';
import type { DeviceRecord } from '../../src/devices/types.js';

// SPEC §12 REST: GET /alarms with its filters and cursor, one alarm, a device's alarms, acknowledging
// and clearing by hand, the /stats counts, the events, and who may write. /metrics in metrics.test.ts.

const T0 = 1_700_000_000;
const WRITER = 'writer-0123456789abcdef';
const READER = 'reader-0123456789abcdef';

async function app(t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const a = await buildTestApp(t, testConfig(env), { connectMqtt: false });
  await a.ready();
  return a;
}

const send = (a: FastifyInstance, overrides: Partial<DeviceRecord>) => a.devices.accept(record(overrides), Date.now());
const ack = (a: FastifyInstance, id: string, payload?: unknown, headers: Record<string, string> = {}) =>
  a.inject({ method: 'POST', url: `/alarms/${encodeURIComponent(id)}/ack`, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
const clear = (a: FastifyInstance, id: string, headers: Record<string, string> = {}) =>
  a.inject({ method: 'POST', url: `/alarms/${encodeURIComponent(id)}/clear`, headers });
const list = async (a: FastifyInstance, query = ''): Promise<{ items: Alarm[]; nextCursor: string | null; total: number }> => {
  const res = await a.inject(`/alarms${query === '' ? '' : `?${query}`}`);
  if (res.statusCode !== 200) throw new Error(`GET /alarms?${query}: ${res.statusCode} ${res.body}`);
  return res.json();
};
const the = async (a: FastifyInstance, deviceId: string, type: Alarm['type']): Promise<Alarm> => {
  const { items } = await list(a, `deviceId=${encodeURIComponent(deviceId)}&type=${type}`);
  if (items.length === 0) throw new Error(`${deviceId} has no ${type} alarm`);
  return items[0]!;
};
const iso = (seconds: number): string => new Date(seconds * 1000).toISOString();
const brief = (alarms: Alarm[]): string[] => alarms.map((x) => `${x.deviceId}/${x.type}`);

/**
 * Six alarms of every type and severity on five devices, raised at distinct source times but for
 * two (o2's, at the same second): newest first they are o2 (two), x1, b2, b1, o1.
 */
async function raiseFleet(a: FastifyInstance): Promise<void> {
  await a.devices.setMeta({ deviceId: 'o1', name: 'MH-1', address: null, latitude: null, longitude: null, zone: 'north', tags: [] });
  await send(a, { deviceId: 'o1', state: 'open', timestamp: T0 + 10 }); // cover_open major
  await send(a, { deviceId: 'b1', state: 'close', batteryLevel: 1500, timestamp: T0 + 20 }); // battery_low warning
  await send(a, { deviceId: 'b2', state: 'close', batteryLevel: 500, timestamp: T0 + 30 }); // battery_low critical
  await send(a, { deviceId: 'x1', state: 'offline', timestamp: T0 + 40 }); // silent major
  await send(a, { deviceId: 'o2', state: 'open', batteryLevel: 500, timestamp: T0 + 50 }); // cover_open major, battery_low critical
}

for (const store of ['memory', 'sqlite'] as const) {
  t.test(`GET /alarms (${store} store): newest first, every filter, pages across a boundary, total`, async (t) => {
    const a = await app(t, store === 'sqlite' ? { DATA_DIR: t.testdir() } : {});
    await raiseFleet(a);

    const all = await list(a);
    t.equal(all.total, 6);
    t.equal(all.nextCursor, null, 'one page holds them all');
    t.same(brief(all.items).slice(2), ['x1/silent', 'b2/battery_low', 'b1/battery_low', 'o1/cover_open'], 'newest raisedAt first');
    t.same(brief(all.items).slice(0, 2).sort(), ['o2/battery_low', 'o2/cover_open'], 'o2 raised both at one second');
    t.ok(all.items.every((x, i) => i === 0 || all.items[i - 1]!.raisedAt >= x.raisedAt), 'raisedAt never rises');
    t.equal(all.items.find((x) => x.deviceId === 'o1')!.raisedAt, iso(T0 + 10), 'raisedAt: the source time of the open');

    const ids = async (query: string): Promise<string[]> => brief((await list(a, query)).items);
    t.same(await ids('type=cover_open'), ['o2/cover_open', 'o1/cover_open']);
    t.same(await ids('type=silent'), ['x1/silent']);
    t.same((await ids('severity=critical')).sort(), ['b2/battery_low', 'o2/battery_low']);
    t.same(await ids('severity=warning'), ['b1/battery_low']);
    t.same(await ids('type=battery_low&severity=critical&deviceId=b2'), ['b2/battery_low']);
    t.same((await ids('deviceId=o2')).sort(), ['o2/battery_low', 'o2/cover_open']);
    t.same(await ids('zone=north'), ['o1/cover_open'], 'zone: of the registry entry the alarm carries');
    t.same(await ids('zone=south'), []);
    t.equal((await list(a, 'status=active')).total, 6);
    t.equal((await list(a, 'status=cleared')).total, 0);
    t.equal((await list(a, 'acknowledged=false')).total, 6);

    const b1 = await the(a, 'b1', 'battery_low');
    t.equal((await ack(a, b1.alarmId, { note: 'n' })).statusCode, 200);
    t.equal((await clear(a, (await the(a, 'x1', 'silent')).alarmId)).statusCode, 200);
    t.same(await ids('acknowledged=true'), ['b1/battery_low']);
    t.same(await ids('status=cleared'), ['x1/silent']);
    t.same(await ids('status=active&acknowledged=false&type=battery_low').then((x) => x.sort()), ['b2/battery_low', 'o2/battery_low']);
    t.equal((await list(a, 'status=active&limit=1')).total, 5, 'total counts every page');

    // a page boundary between the two alarms of one second, and at every other place
    const order = (await list(a)).items.map((x) => x.alarmId);
    for (const limit of [1, 2, 4]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Awaited<ReturnType<typeof list>> = await list(a, `limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`);
        t.equal(page.total, 6);
        t.ok(page.items.length <= limit);
        seen.push(...page.items.map((x) => x.alarmId));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== null && pages < 10);
      t.same(seen, order, `limit=${limit}: every alarm once, in order`);
      t.equal(pages, Math.ceil(6 / limit), `limit=${limit}: no empty last page`);
    }
    const filtered = await list(a, 'severity=critical&limit=1');
    const rest = await list(a, `severity=critical&limit=1&cursor=${filtered.nextCursor}`);
    t.same([filtered.total, rest.total, rest.nextCursor, rest.items.length], [2, 2, null, 1], 'a cursor with filters');
    t.not(rest.items[0]!.alarmId, filtered.items[0]!.alarmId);
  });
}

t.test('GET /alarms refuses a bad cursor and bad parameters', async (t) => {
  const a = await app(t);
  await raiseFleet(a);
  const cursors = ['x', encodeCursor('o1'), encodeCursor('[1,2]'), encodeCursor('["a"]'), encodeCursor('{"raisedAt":"x"}'), Buffer.from('["a","b"]').toString('base64url')];
  for (const cursor of cursors) {
    const res = await a.inject(`/alarms?cursor=${encodeURIComponent(cursor)}`);
    t.same([res.statusCode, res.json().code], [400, 'BRG_ERR_INVALID_CURSOR'], `cursor ${cursor}`);
  }
  for (const query of ['type=flood', 'severity=high', 'status=open', 'acknowledged=maybe', 'limit=0', 'limit=1001', 'limit=Infinity', 'limit=1e3', 'deviceId=', 'zone=']) {
    const res = await a.inject(`/alarms?${query}`);
    t.same([res.statusCode, res.json().code], [400, 'FST_ERR_VALIDATION'], query);
  }
  t.equal((await list(a, 'limit=1000')).items.length, 6);
});

t.test('GET /alarms/{id} and GET /devices/{id}/alarms; 404s', async (t) => {
  const a = await app(t);
  await raiseFleet(a);
  await send(a, { deviceId: 'quiet', state: 'close', timestamp: T0 }); // no alarm
  const o2 = await the(a, 'o2', 'cover_open');

  const one = await a.inject(`/alarms/${o2.alarmId}`);
  t.equal(one.statusCode, 200);
  t.same(one.json(), o2);
  t.same(Object.keys(one.json()).sort(), ['acknowledged', 'acknowledgedAt', 'alarmId', 'clearedAt', 'clearedReceivedAt', 'deviceId', 'meta', 'note', 'raisedAt', 'raisedReceivedAt', 'severity', 'status', 'type'], 'every key present');
  t.match(one.json(), { status: 'active', severity: 'major', acknowledged: false, clearedAt: null, acknowledgedAt: null, note: null, meta: null });

  const device = (await a.inject('/devices/o2/alarms')).json();
  t.equal(device.deviceId, 'o2');
  t.same(device.items.map((x: Alarm) => x.type).sort(), ['battery_low', 'cover_open']);
  t.same((await a.inject('/devices/o1/alarms')).json().items[0].meta, { deviceId: 'o1', name: 'MH-1', address: null, latitude: null, longitude: null, zone: 'north', tags: [] }, 'meta: the registry entry');
  t.same((await a.inject('/devices/quiet/alarms')).json(), { deviceId: 'quiet', items: [] }, 'a known device without alarms');

  // a new open after a close: the device's newest alarm comes first
  await send(a, { deviceId: 'o1', state: 'close', timestamp: T0 + 100 });
  await send(a, { deviceId: 'o1', state: 'open', timestamp: T0 + 200 });
  const history = (await a.inject('/devices/o1/alarms')).json().items as Alarm[];
  t.same(history.map((x) => [x.type, x.status]), [['cover_open', 'active'], ['cover_open', 'cleared']], 'newest first, cleared ones kept');

  for (const [method, url] of [['GET', '/alarms/nope'], ['POST', '/alarms/nope/ack'], ['POST', '/alarms/nope/clear'], ['GET', `/alarms/${'z'.repeat(128)}`]] as const) {
    const res = await a.inject({ method, url });
    t.same([res.statusCode, res.json().code], [404, 'BRG_ERR_ALARM_NOT_FOUND'], `${method} ${url.slice(0, 40)}`);
  }
  const none = await a.inject('/devices/nobody/alarms');
  t.same([none.statusCode, none.json().code], [404, 'BRG_ERR_DEVICE_NOT_FOUND']);
  t.equal((await a.inject(`/alarms/${'z'.repeat(129)}`)).statusCode, 400, 'ids longer than 128 characters are refused');
  const long = 'd'.repeat(128);
  await send(a, { deviceId: long, state: 'open' });
  t.equal((await a.inject(`/devices/${long}/alarms`)).json().items.length, 1, 'a deviceId of 128 characters');
});

t.test('POST /alarms/{id}/ack: the note, idempotent, with or without a body, JSON only', async (t) => {
  const a = await app(t);
  await raiseFleet(a);
  const o1 = await the(a, 'o1', 'cover_open');

  const first = await ack(a, o1.alarmId, { note: 'crew sent, ETA 30 min' });
  t.equal(first.statusCode, 200);
  const acked = first.json() as Alarm;
  t.match(acked, { alarmId: o1.alarmId, acknowledged: true, note: 'crew sent, ETA 30 min', status: 'active', raisedAt: o1.raisedAt });
  t.ok(Date.parse(acked.acknowledgedAt!) > 0, 'acknowledgedAt is a time');
  t.same((await a.inject(`/alarms/${o1.alarmId}`)).json(), acked, 'stored');

  const again = await ack(a, o1.alarmId, { note: 'second thoughts' });
  t.same([again.statusCode, again.json()], [200, acked], 'a second acknowledgement changes nothing: the first note and time stay');

  const noBody = await ack(a, (await the(a, 'b1', 'battery_low')).alarmId);
  t.same([noBody.statusCode, noBody.json().acknowledged, noBody.json().note], [200, true, null], 'no body: note null');
  const emptyJson = await a.inject({ method: 'POST', url: `/alarms/${(await the(a, 'b2', 'battery_low')).alarmId}/ack`, headers: { 'content-type': 'application/json' }, payload: '' });
  t.same([emptyJson.statusCode, emptyJson.json().note], [200, null], 'an empty JSON body: note null');
  const emptyObject = await ack(a, (await the(a, 'x1', 'silent')).alarmId, {});
  t.same([emptyObject.statusCode, emptyObject.json().note], [200, null]);
  const nullNote = await ack(a, (await the(a, 'o2', 'battery_low')).alarmId, { note: null });
  t.same([nullNote.statusCode, nullNote.json().note], [200, null]);

  const target = (await the(a, 'o2', 'cover_open')).alarmId;
  const bad: [unknown, RegExp][] = [
    [{ note: 'n'.repeat(1001) }, /note is longer than 1000 characters/],
    [{ note: 5 }, /note must be a string or null/],
    [{ note: ['x'] }, /note must be a string or null/],
    [{ note: 'x', acknowledged: false }, /unknown field 'acknowledged'/],
    [[{ note: 'x' }], /JSON object/],
    ['"just a string"', /JSON object/],
  ];
  for (const [body, message] of bad) {
    const res = await a.inject({ method: 'POST', url: `/alarms/${target}/ack`, headers: { 'content-type': 'application/json' }, payload: typeof body === 'string' ? body : JSON.stringify(body) });
    t.same([res.statusCode, res.json().code], [400, 'BRG_ERR_INVALID_ACK'], JSON.stringify(body).slice(0, 40));
    t.match(res.json().message, message);
  }
  const broken = await a.inject({ method: 'POST', url: `/alarms/${target}/ack`, headers: { 'content-type': 'application/json' }, payload: '{"note":' });
  t.same([broken.statusCode, broken.json().code], [400, 'FST_ERR_CTP_INVALID_JSON_BODY']);
  const poisoned = await a.inject({ method: 'POST', url: `/alarms/${target}/ack`, headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{"x":1}}' });
  t.equal(poisoned.statusCode, 400, 'prototype poisoning is refused');
  const form = await a.inject({ method: 'POST', url: `/alarms/${target}/ack`, headers: { 'content-type': 'text/plain' }, payload: '{"note":"from a form"}' });
  t.same([form.statusCode, form.json().code], [415, 'BRG_ERR_UNSUPPORTED_MEDIA_TYPE'], 'no text/plain: the simple request a foreign form can send');
  const urlencoded = await a.inject({ method: 'POST', url: `/alarms/${target}/ack`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'note=x' });
  t.equal(urlencoded.statusCode, 415);
  t.equal((await a.inject(`/alarms/${target}`)).json().acknowledged, false, 'no refusal changed anything');

  const emoji = '\u{1F6A7}'.repeat(1000); // 1000 characters, 2000 UTF-16 units
  const full = await ack(a, target, { note: emoji });
  t.same([full.statusCode, full.json().note], [200, emoji], 'a note of 1000 characters, counted as characters');
  const charset = await a.inject({ method: 'POST', url: `/alarms/${(await the(a, 'o2', 'cover_open')).alarmId}/ack`, headers: { 'content-type': 'application/json; charset=utf-8' }, payload: '{}' });
  t.equal(charset.statusCode, 200, 'application/json with a charset');
});

t.test('POST /alarms/{id}/clear: cleared, idempotent, acknowledged after; the cause is ignored until a new open', async (t) => {
  const a = await app(t);
  await send(a, { deviceId: 'c1', state: 'open', timestamp: T0 });
  const raised = await the(a, 'c1', 'cover_open');

  const res = await clear(a, raised.alarmId);
  t.equal(res.statusCode, 200);
  const cleared = res.json() as Alarm;
  t.match(cleared, { alarmId: raised.alarmId, status: 'cleared', acknowledged: false });
  t.ok(Date.parse(cleared.clearedAt!) > 0);
  const again = await clear(a, raised.alarmId);
  t.same([again.statusCode, again.json()], [200, cleared], 'clearing a cleared alarm changes nothing');
  const withJson = await a.inject({ method: 'POST', url: `/alarms/${raised.alarmId}/clear`, headers: { 'content-type': 'application/json' }, payload: '' });
  t.equal(withJson.statusCode, 200, 'an empty JSON body is no body');
  const form = await a.inject({ method: 'POST', url: `/alarms/${raised.alarmId}/clear`, headers: { 'content-type': 'text/plain' }, payload: 'x' });
  t.equal(form.statusCode, 415);

  const acked = await ack(a, raised.alarmId, { note: 'was a test' });
  t.match(acked.json(), { status: 'cleared', acknowledged: true, note: 'was a test', clearedAt: cleared.clearedAt }, 'acknowledged after the clear');

  await send(a, { deviceId: 'c1', state: 'open', timestamp: T0 + 600 }); // a heartbeat of the same open
  t.same((await list(a, 'deviceId=c1')).items.map((x) => x.alarmId), [raised.alarmId], 'a heartbeat of the open raises nothing');
  t.equal((await list(a, 'status=active')).total, 0);

  await send(a, { deviceId: 'c1', state: 'close', timestamp: T0 + 700 });
  await send(a, { deviceId: 'c1', state: 'open', timestamp: T0 + 800 });
  const fresh = await list(a, 'deviceId=c1');
  t.equal(fresh.total, 2, 'a new open raises a new alarm');
  t.not(fresh.items[0]!.alarmId, raised.alarmId, 'with a new id');
  t.match(fresh.items[0], { status: 'active', acknowledged: false, note: null, raisedAt: iso(T0 + 800) });
});

t.test('/stats alarms counts move with raises, acknowledgements and clears; every transition is an event', async (t) => {
  const a = await app(t);
  const events: AlarmEvent[] = [];
  a.devices.events.subscribe((e) => e.kind === 'alarm' && events.push(e));
  const stats = async () => (await a.inject('/stats')).json().alarms;
  const zero = { warning: 0, major: 0, critical: 0 };
  t.same(await stats(), { active: 0, unacknowledged: 0, byType: { cover_open: 0, battery_low: 0, silent: 0 }, bySeverity: { cover_open: zero, battery_low: zero, silent: zero } });

  await raiseFleet(a);
  await send(a, { deviceId: 'b1', state: 'close', batteryLevel: 900, timestamp: T0 + 60 }); // escalated to critical
  t.same(await stats(), {
    active: 6,
    unacknowledged: 6,
    byType: { cover_open: 2, battery_low: 3, silent: 1 },
    bySeverity: { cover_open: { ...zero, major: 2 }, battery_low: { ...zero, critical: 3 }, silent: { ...zero, major: 1 } },
  });

  const o1 = await the(a, 'o1', 'cover_open');
  await ack(a, o1.alarmId);
  await ack(a, o1.alarmId); // idempotent: no second event
  await clear(a, (await the(a, 'x1', 'silent')).alarmId);
  await clear(a, (await the(a, 'x1', 'silent')).alarmId);
  await send(a, { deviceId: 'o2', state: 'close', batteryLevel: 9000, timestamp: T0 + 70 }); // clears both of o2's
  const after = await stats();
  t.same([after.active, after.unacknowledged, after.byType], [3, 5, { cover_open: 1, battery_low: 2, silent: 0 }], 'cleared ones stay unacknowledged until acknowledged');

  a.devices.events.flush();
  const seen = events.map((e) => `${e.transition} ${e.alarm.deviceId}/${e.alarm.type}`);
  t.same(seen.slice(0, 4), ['raised o1/cover_open', 'raised b1/battery_low', 'raised b2/battery_low', 'raised x1/silent']);
  t.same(seen.slice(4, 6).sort(), ['raised o2/battery_low', 'raised o2/cover_open'], 'o2 raised both with one message');
  t.same(seen.slice(6, 9), ['escalated b1/battery_low', 'acknowledged o1/cover_open', 'cleared x1/silent'], 'one event per change, none for the repeated ack and clear');
  t.same(seen.slice(9).sort(), ['cleared o2/battery_low', 'cleared o2/cover_open']);
  t.ok(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq), 'each with its own seq, in order');
  t.equal(events[7]!.alarm.acknowledged, true, 'the event carries the alarm as it became');
});

t.test('who may acknowledge and clear: a read key reads only, a write key writes; no foreign page writes', async (t) => {
  const a = await app(t, { API_KEYS: WRITER, API_READ_KEYS: READER });
  await raiseFleet(a);
  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  const target = (await a.inject({ url: '/alarms?type=silent', headers: as(READER) })).json().items[0] as Alarm;

  for (const url of ['/alarms', `/alarms/${target.alarmId}`, '/devices/x1/alarms', '/alarms?status=active&type=silent', '/stats']) {
    t.equal((await a.inject({ url, headers: as(READER) })).statusCode, 200, `GET ${url} with the read key`);
    t.equal((await a.inject(url)).statusCode, 401, `GET ${url} without a key`);
  }
  for (const write of [() => ack(a, target.alarmId, { note: 'x' }, as(READER)), () => clear(a, target.alarmId, as(READER)), () => ack(a, target.alarmId, undefined, { 'x-api-key': READER })]) {
    const res = await write();
    t.same([res.statusCode, res.json().code], [403, 'BRG_ERR_READ_ONLY_KEY']);
  }
  const unknown = await clear(a, 'nope', as(READER));
  t.equal(unknown.statusCode, 403, 'refused before the alarm is looked up');
  t.equal((await ack(a, target.alarmId, { note: 'x' })).statusCode, 401, 'no key');
  t.same((await a.inject({ url: `/alarms/${target.alarmId}`, headers: as(WRITER) })).json(), target, 'nothing changed');

  const acked = await ack(a, target.alarmId, { note: 'by the writer' }, as(WRITER));
  t.same([acked.statusCode, acked.json().note], [200, 'by the writer']);
  const cleared = await clear(a, target.alarmId, { 'x-api-key': WRITER });
  t.same([cleared.statusCode, cleared.json().status], [200, 'cleared']);

  const open = await app(t, { CORS_ORIGINS: 'https://ops.example' });
  await raiseFleet(open);
  const id = (await the(open, 'o1', 'cover_open')).alarmId;
  const from = (origin: string) => ({ host: '127.0.0.1:3000', origin });
  for (const [what, res] of [
    ['ack', await ack(open, id, { note: 'evil' }, from('https://evil.example'))],
    ['clear', await clear(open, id, from('https://evil.example'))],
    ['clear from a sandboxed page', await clear(open, id, from('null'))],
  ] as const) {
    t.same([res.statusCode, res.json().code], [403, 'BRG_ERR_WRITE_ORIGIN_FORBIDDEN'], what);
  }
  t.match((await open.inject(`/alarms/${id}`)).json(), { status: 'active', acknowledged: false }, 'nothing changed');
  t.equal((await ack(open, id, {}, from('https://ops.example'))).statusCode, 200, 'an origin of CORS_ORIGINS');
  t.equal((await clear(open, id, from('http://127.0.0.1:3000'))).statusCode, 200, 'the service own page');
});
