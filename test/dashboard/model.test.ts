import t from 'tap';
import fc from 'fast-check';
import type { Device } from '../../src/devices/types.js';
import * as model from '../../src/dashboard/public/model.js';
import { compareIds } from '../../src/devices/rules.js';

// The dashboard's pure logic, imported by node from the very file the browser runs.

function device(overrides: Partial<Device>): Device {
  return {
    deviceId: 'd1',
    appId: null,
    state: 'close',
    previousState: null,
    batteryLevel: 9000,
    imei: null,
    iccid: null,
    csq: 20,
    timestamp: 1_700_000_000,
    lastSeenAt: '2023-11-14T22:13:20.000Z',
    lastChangedAt: '2023-11-14T22:13:20.000Z',
    receivedAt: '2023-11-14T22:13:21.000Z',
    silent: false,
    messages: 1,
    attributes: {},
    meta: null,
    ...overrides,
  };
}

t.test('relative time and durations', async (t) => {
  const now = Date.UTC(2026, 0, 10, 12);
  t.equal(model.relativeTime(now - 3_000, now), 'just now');
  t.equal(model.relativeTime(now - 42_000, now), '42 s ago');
  t.equal(model.relativeTime(now - 5 * 60_000 - 10_000, now), '5 min ago');
  t.equal(model.relativeTime(now - 3 * 3_600_000, now), '3 h ago');
  t.equal(model.relativeTime(now - 4 * 86_400_000, now), '4 d ago');
  t.equal(model.relativeTime(now + 120_000, now), 'in 2 min', 'a clock ahead of ours');
  t.equal(model.formatDuration(0), '0 s');
  t.equal(model.formatDuration(61), '1 min 1 s');
  t.equal(model.formatDuration(3600), '1 h');
  t.equal(model.formatDuration(90_061), '1 d 1 h', 'the two largest units');
});

t.test('battery and signal', async (t) => {
  t.equal(model.batteryPercent(9971), 100);
  t.equal(model.batteryPercent(1949), 19);
  t.equal(model.batteryPercent(0), 0);
  t.equal(model.batteryPercent(null), null);
  t.ok(model.isLowBattery({ batteryLevel: 1949 }));
  t.notOk(model.isLowBattery({ batteryLevel: 2000 }), `${model.LOW_BATTERY_PERCENT} % is not low`);
  t.notOk(model.isLowBattery({ batteryLevel: null }), 'unknown is not low');
  t.same(model.signal(99), { bars: null, dbm: null, label: 'unknown' }, '99 = unknown');
  t.equal(model.signal(null).bars, null);
  t.equal(model.signal(40).bars, null, 'out of range');
  t.same([0, 1, 2, 9, 10, 14, 15, 19, 20, 31, 32].map((csq) => model.signal(csq).bars), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4]);
  t.equal(model.signal(20).dbm, -73);
  t.equal(model.signal(32).dbm, -51, "the vendor's 32 reads as 31");
  t.match(model.signal(20).label, /excellent, CSQ 20 \(-73 dBm\)/);
});

t.test('states become fixed classes, never the device string', async (t) => {
  t.equal(model.stateClass('open'), 'state-open');
  t.equal(model.stateClass('offline'), 'state-offline');
  t.equal(model.stateClass('<img src=x>'), 'state-other');
  t.equal(model.stateClass('constructor'), 'state-other');
});

t.test('sorting: by column, both ways, unknowns last, ties by id', async (t) => {
  const list = [
    device({ deviceId: 'b', batteryLevel: 5000, csq: 99, timestamp: 3, state: 'open' }),
    device({ deviceId: 'a', batteryLevel: null, csq: 10, timestamp: 1, state: 'close' }),
    device({ deviceId: 'c', batteryLevel: 5000, csq: 31, timestamp: 2, state: 'close' }),
    device({ deviceId: '07', batteryLevel: 100, csq: null, timestamp: 4, state: 'offline' }),
  ];
  const ids = (key: model.SortKey, dir: model.SortDir): string[] => model.sortDevices(list, key, dir).map((d) => d.deviceId);
  t.same(ids('deviceId', 'asc'), ['07', 'a', 'b', 'c'], 'code point order, as GET /devices');
  t.same(ids('deviceId', 'desc'), ['c', 'b', 'a', '07']);
  t.same(ids('battery', 'asc'), ['07', 'b', 'c', 'a'], 'unknown battery last');
  t.same(ids('battery', 'desc'), ['b', 'c', '07', 'a'], 'unknown last either way; ties by id');
  t.same(ids('signal', 'desc'), ['c', 'a', '07', 'b']);
  t.same(ids('lastSeen', 'asc'), ['a', 'c', 'b', '07']);
  t.same(ids('state', 'asc'), ['a', 'c', '07', 'b']);
  t.same(list.map((d) => d.deviceId), ['b', 'a', 'c', '07'], 'the input is left alone');
});

t.test('ids sort by code point, as GET /devices and every store (rules.compareIds), not by UTF-16 unit', async (t) => {
  // U+1F600 is the surrogate pair D83D DE00: below U+FFFF by UTF-16 unit, above it by code point
  const list = ['\u{1F600}', 'b', '\uFFFF', 'a\u{10000}', 'a\uE000'].map((deviceId) => device({ deviceId }));
  const ids = (dir: model.SortDir): string[] => model.sortDevices(list, 'deviceId', dir).map((d) => d.deviceId);
  t.same(ids('asc'), ['a\uE000', 'a\u{10000}', 'b', '\uFFFF', '\u{1F600}']);
  t.same(ids('desc'), ['\u{1F600}', '\uFFFF', 'b', 'a\u{10000}', 'a\uE000']);
  const tied = [device({ deviceId: '\u{1F600}', state: 'open' }), device({ deviceId: '\uFFFF', state: 'open' })];
  t.same(model.sortDevices(tied, 'state', 'asc').map((d) => d.deviceId), ['\uFFFF', '\u{1F600}'], 'ties by id, in the same order');
  t.same(model.summarize([device({ state: '\u{1F600}' }), device({ state: '\uFFFF' })]).states.map(([s]) => s), ['\uFFFF', '\u{1F600}'], 'states of equal count too');
  const sign = (n: number): number => Math.sign(n);
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => sign(model.compareIds(a, b)) === sign(compareIds(a, b))),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => sign(model.compareIds(a, b)) === sign(Buffer.compare(Buffer.from(a), Buffer.from(b)))),
    { numRuns: 2000 },
  );
});

t.test('filtering and counting', async (t) => {
  const list = [
    device({ deviceId: 'MH-1', state: 'open' }),
    device({ deviceId: 'MH-2', state: 'close', silent: true }),
    device({ deviceId: 'mh-10', state: 'close', batteryLevel: 500 }),
    device({ deviceId: 'x', state: 'offline', batteryLevel: null }),
  ];
  const ids = (filter: Partial<model.Filter>): string[] => model.filterDevices(list, { ...model.NO_FILTER, ...filter }).map((d) => d.deviceId);
  t.same(ids({}), ['MH-1', 'MH-2', 'mh-10', 'x']);
  t.same(ids({ state: 'close' }), ['MH-2', 'mh-10']);
  t.same(ids({ silent: 'yes' }), ['MH-2']);
  t.same(ids({ silent: 'no' }), ['MH-1', 'mh-10', 'x']);
  t.same(ids({ lowBattery: true }), ['mh-10']);
  t.same(ids({ search: ' Mh-1 ' }), ['MH-1', 'mh-10'], 'any case, trimmed');
  t.same(ids({ state: 'close', search: 'mh-1' }), ['mh-10'], 'filters combine');
  t.same(model.summarize(list), { total: 4, states: [['close', 2], ['offline', 1], ['open', 1]], silent: 1, lowBattery: 1 });
});

t.test('pages', async (t) => {
  const list = Array.from({ length: 250 }, (_, i) => i);
  t.same(model.pageOf(list, 1, 100), { rows: list.slice(0, 100), page: 1, pages: 3, from: 1, to: 100, total: 250 });
  const last = model.pageOf(list, Infinity, 100);
  t.same([last.page, last.from, last.to, last.rows.length], [3, 201, 250, 50], 'Infinity is the last page');
  t.equal(model.pageOf(list, 0, 100).page, 1);
  t.same(model.pageOf([], 1, 100), { rows: [], page: 1, pages: 1, from: 0, to: 0, total: 0 });
});

t.test('which copy of a device is newer (snapshot, REST pages and frames meet)', async (t) => {
  const base = device({ timestamp: 10, receivedAt: '2026-01-01T00:00:01.000Z' });
  t.ok(model.isNewer(base, undefined), 'anything beats nothing');
  t.ok(model.isNewer(device({ timestamp: 11 }), base));
  t.notOk(model.isNewer(device({ timestamp: 9, receivedAt: '2027-01-01T00:00:00.000Z' }), base), 'an older message loses');
  t.ok(model.isNewer(device({ timestamp: 10, receivedAt: '2026-01-01T00:00:02.000Z' }), base), 'same timestamp: the later arrival');
  t.ok(model.isNewer({ ...base, silent: true }, base), 'the same message, now silent');
  t.notOk(model.isNewer(base, { ...base, silent: true }), 'a stale copy does not clear silence');
});

t.test('history → open/close periods, and the battery series', async (t) => {
  // newest first, as GET /devices/{id}/history gives it; the late one (kind late) in timestamp order
  const items = [
    { timestamp: 400, state: 'close', batteryLevel: 8800 },
    { timestamp: 300, state: 'open', batteryLevel: 8900 },
    { timestamp: 150, state: 'open', batteryLevel: null },
    { timestamp: 200, state: 'open', batteryLevel: 9000 },
    { timestamp: 100, state: 'close', batteryLevel: 9100 },
  ];
  t.same(model.historyPeriods(items, 500), [
    { state: 'close', from: 100, to: 150, messages: 1 },
    { state: 'open', from: 150, to: 400, messages: 3 },
    { state: 'close', from: 400, to: 500, messages: 1 },
  ]);
  t.same(model.historyPeriods([], 500), []);
  t.same(model.historyPeriods([{ timestamp: 600, state: 'open' }], 500), [{ state: 'open', from: 600, to: 600, messages: 1 }], 'never a negative period');
  t.same(model.batterySeries(items), [
    { t: 100, pct: 91 },
    { t: 200, pct: 90 },
    { t: 300, pct: 89 },
    { t: 400, pct: 88 },
  ]);
});

t.test('reconnect backoff and the /ws URL', async (t) => {
  t.same([0, 1, 2, 3, 4, 5, 10].map((n) => model.backoff(n, 0.5)), [500, 1000, 2000, 4000, 8000, 15000, 15000], 'doubling, capped at 15 s');
  t.equal(model.backoff(0, 0), 375, 'jitter: -25 %');
  t.equal(model.backoff(0, 0.999999), 625, 'jitter: +25 %');
  t.equal(model.liveUrl({ protocol: 'http:', host: '127.0.0.1:3000' }, null), 'ws://127.0.0.1:3000/ws');
  t.equal(model.liveUrl({ protocol: 'https:', host: 'bridge.example' }, 'k&y=1'), 'wss://bridge.example/ws?apiKey=k%26y%3D1');
});
