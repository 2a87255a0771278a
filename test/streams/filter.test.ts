import t from 'tap';
import { listProblem, matches, matchesDevice, MATCH_ALL, MAX_FILTER_ITEMS, parseList, queryFilter } from '../../src/streams/filter.js';
import { metaEvent, updateEvent } from '../../src/devices/events.js';
import type { Device } from '../../src/devices/types.js';

// SPEC §3 and issue 13 finding 5: a filter measures ids and states as ingest does, in code points,
// and refuses what ingest refuses (a lone surrogate), so every id ingest accepts can be asked for.

const EMOJI = '\u{1F573}'; // two UTF-16 units, one code point

const refused = (query: { deviceId?: string; state?: string }): string => {
  try {
    queryFilter(query);
    return 'accepted';
  } catch (err) {
    const e = err as { code: string; statusCode: number; message: string };
    return `${e.code} ${e.statusCode} ${e.message}`;
  }
};

t.test('issue 13 #5: an id of 128 emoji is a filter, of 129 a 400', async (t) => {
  const id = EMOJI.repeat(128);
  t.same(queryFilter({ deviceId: id }).deviceIds, new Set([id]));
  t.match(refused({ deviceId: EMOJI.repeat(129) }), /^BRG_ERR_INVALID_FILTER 400 .*deviceId longer than 128/);
  t.equal(refused({ deviceId: `a,${id},b` }), 'accepted', 'in a list');
  t.equal(refused({ deviceId: 'd'.repeat(128) }), 'accepted');
  t.match(refused({ deviceId: 'd'.repeat(129) }), /deviceId longer than 128/);
  t.equal(refused({ deviceId: 'd'.repeat(127) + EMOJI }), 'accepted', '127 + one astral: 128');
  t.match(refused({ deviceId: 'd'.repeat(128) + EMOJI }), /longer than 128/);
});

t.test('a state of 64 emoji is a filter, of 65 a 400', async (t) => {
  t.equal(refused({ state: EMOJI.repeat(64) }), 'accepted');
  t.match(refused({ state: EMOJI.repeat(65) }), /state longer than 64/);
});

t.test('a lone surrogate in a filter is a 400: it could never match', async (t) => {
  for (const deviceId of ['\ud800', 'a\udc00', `${EMOJI}\ud83d`, 'ok,\ude00']) {
    t.match(refused({ deviceId }), /^BRG_ERR_INVALID_FILTER 400 .*deviceId .*well-formed/, JSON.stringify(deviceId));
  }
  t.match(refused({ state: 'open\udbff' }), /state .*well-formed/);
  t.equal(refused({ deviceId: '\ud83d\ude00', state: '\ud83d\udd13' }), 'accepted', 'a surrogate pair is fine');
});

t.test('listProblem: length, well-formedness, count', async (t) => {
  t.equal(listProblem([EMOJI.repeat(128)], 'deviceId'), null);
  t.match(listProblem([EMOJI.repeat(129)], 'deviceId'), /longer than 128/);
  t.match(listProblem(['\ud800'], 'state'), /well-formed/);
  t.match(listProblem(Array.from({ length: MAX_FILTER_ITEMS + 1 }, (_, i) => String(i)), 'deviceId'), /more than 1000/);
  t.equal(listProblem(Array.from({ length: MAX_FILTER_ITEMS }, (_, i) => String(i)), 'deviceId'), null);
});

t.test('parseList and matches', async (t) => {
  t.equal(parseList(undefined), null);
  t.equal(parseList(''), null);
  t.equal(parseList(',,'), null);
  t.same(parseList('a,,b,a'), new Set(['a', 'b']));
  const device = { deviceId: EMOJI.repeat(128), state: 'open' } as Device;
  const event = updateEvent(1, device, null, true);
  t.ok(matches(queryFilter({ deviceId: EMOJI.repeat(128) }), event));
  t.ok(matches(queryFilter({ state: 'open,close' }), event));
  t.notOk(matches(queryFilter({ deviceId: 'other' }), event));
  t.ok(matches(queryFilter({}), event), 'no filter: every device');
  t.ok(matchesDevice(queryFilter({ state: 'open' }), device), 'a snapshot takes the device');
});

t.test('meta events: every client without a filter, and by device and type', async (t) => {
  const device = { deviceId: 'm', state: 'close' } as Device;
  const seen = metaEvent(2, 'm', device, null);
  const unseen = metaEvent(3, 'n', null, null);
  t.ok(matches(MATCH_ALL, seen) && matches(MATCH_ALL, unseen), 'no filter: meta events too');
  t.ok(matches(queryFilter({ deviceId: 'n' }), unseen), 'by device id, even one never heard from');
  t.ok(matches(queryFilter({ state: 'close' }), seen), 'a state filter takes the meta event of a device in that state');
  t.notOk(matches(queryFilter({ state: 'close' }), unseen), 'a device never heard from has no state to match');
  const onlyMeta = { ...MATCH_ALL, types: new Set(['meta'] as const) };
  t.ok(matches(onlyMeta, seen));
  t.notOk(matches(onlyMeta, updateEvent(4, device, null, true)), 'types leaves updates out');
});
