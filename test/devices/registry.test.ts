import t from 'tap';
import { checkEntry, deviceIdProblem, ENTRY_FIELDS, REGISTRY_LIMITS, sameEntry } from '../../src/devices/registry.js';
import type { RegistryEntry } from '../../src/devices/types.js';

// SPEC §11: one check for every way a registry entry comes in (PUT, JSON import, CSV import).
// Every refusal is a reason that starts with the field's name.

const EMOJI = '\u{1F573}'; // two UTF-16 units, one code point
const HOSTILE = '<img src=x onerror=alert(1)>';
const RTL = 'Kanal \u200F\u202Eevil\u202C';

const entry = (input: unknown, deviceId = 'd1'): RegistryEntry => {
  const result = checkEntry(deviceId, input);
  if (!result.ok) throw new Error(`refused: ${result.reason}`);
  return result.entry;
};
const reason = (input: unknown, deviceId = 'd1'): string => {
  const result = checkEntry(deviceId, input);
  return result.ok ? 'accepted' : result.reason;
};
const full: RegistryEntry = {
  deviceId: 'd1',
  name: 'Schacht 7',
  address: 'Hauptstr. 5\n10115 Berlin',
  latitude: 52.517,
  longitude: 13.388,
  zone: 'Mitte',
  tags: ['storm', 'Kanal Nord'],
};

t.test('the constants of SPEC §11', async (t) => {
  t.same(REGISTRY_LIMITS, { name: 200, address: 500, zone: 100, tag: 64, tags: 32 });
  t.same([...ENTRY_FIELDS], ['deviceId', 'name', 'address', 'latitude', 'longitude', 'zone', 'tags']);
});

t.test('deviceIdProblem: 1 to 128 code points, well-formed, no control characters', async (t) => {
  for (const id of ['d', 'a'.repeat(128), EMOJI.repeat(128), 'd'.repeat(64) + EMOJI.repeat(64), HOSTILE, RTL, 'a b,c;"d"|e', '\u0080\u009f']) {
    t.equal(deviceIdProblem(id), null, JSON.stringify(id.slice(0, 20)));
  }
  const refused: [unknown, string][] = [
    ['', 'deviceId must be 1 to 128 characters'],
    ['a'.repeat(129), 'deviceId must be 1 to 128 characters'],
    [EMOJI.repeat(129), 'deviceId must be 1 to 128 characters'],
    ['a\u0000', 'deviceId must not hold control characters'],
    ['a\u001f', 'deviceId must not hold control characters'],
    ['a\u007f', 'deviceId must not hold control characters'],
    ['a\nb', 'deviceId must not hold control characters'],
    ['a\ud800', 'deviceId must be well-formed Unicode (no lone surrogate)'],
    ['\udc00a', 'deviceId must be well-formed Unicode (no lone surrogate)'],
    [12, 'deviceId must be a string'],
    [null, 'deviceId must be a string'],
    [undefined, 'deviceId must be a string'],
  ];
  for (const [id, why] of refused) t.equal(deviceIdProblem(id), why, JSON.stringify(id)?.slice(0, 20) ?? 'undefined');
});

t.test('a full entry is kept as written', async (t) => {
  t.same(entry(full), full);
  t.same(Object.keys(entry(full)), [...ENTRY_FIELDS], 'keys in ENTRY_FIELDS order');
});

t.test('a field left out or null is null, tags []; "" is null; unknown keys are ignored', async (t) => {
  const empty = { deviceId: 'd1', name: null, address: null, latitude: null, longitude: null, zone: null, tags: [] };
  t.same(entry({}), empty);
  t.same(entry({ name: null, address: null, latitude: null, longitude: null, zone: null, tags: null }), empty);
  t.same(entry({ name: '', address: '', zone: '' }), empty, 'the empty string is no name');
  t.same(entry({ colour: 'red', meta: { x: 1 }, __proto__x: 1 }), empty);
  t.equal(entry(JSON.parse('{"__proto__":{"name":"x"}}')).name, null, 'a __proto__ key is only an unknown key');
  t.same(entry(Object.assign(Object.create(null) as object, { name: 'n' })).name, 'n', 'an object without prototype');
});

t.test('deviceId in the body must match the path', async (t) => {
  t.equal(entry({ deviceId: 'd1', name: 'x' }).name, 'x');
  t.equal(reason({ deviceId: 'd2' }), 'deviceId in the body must match the path');
  t.equal(reason({ deviceId: null }), 'deviceId in the body must match the path');
  t.equal(reason({}, ''), 'deviceId must be 1 to 128 characters', 'the path id is checked too');
  t.equal(reason({}, 'a\u0000'), 'deviceId must not hold control characters');
});

t.test('the input must be a plain object', async (t) => {
  for (const input of [null, undefined, 'x', 1, [], [full], new Date(0), new Map()]) t.equal(reason(input), 'entry must be a JSON object', String(input));
});

t.test('name, address and zone: bounded strings in code points', async (t) => {
  for (const [field, max] of [['name', 200], ['address', 500], ['zone', 100]] as const) {
    t.equal(entry({ [field]: 'x'.repeat(max) })[field], 'x'.repeat(max), `${field}: ${max} characters`);
    t.equal(entry({ [field]: EMOJI.repeat(max) })[field], EMOJI.repeat(max), `${field}: ${max} emoji (${2 * max} UTF-16 units)`);
    t.equal(reason({ [field]: 'x'.repeat(max + 1) }), `${field} must be at most ${max} characters`);
    t.equal(reason({ [field]: EMOJI.repeat(max + 1) }), `${field} must be at most ${max} characters`);
    t.equal(reason({ [field]: 7 }), `${field} must be a string or null`);
    t.equal(reason({ [field]: ['x'] }), `${field} must be a string or null`);
    t.equal(reason({ [field]: 'a\ud800' }), `${field} must be well-formed Unicode (no lone surrogate)`);
    t.equal(entry({ [field]: ' ' })[field], ' ', 'white space is text, kept as written');
  }
});

t.test('control characters: name and address may hold line feeds and tabs, nothing else does', async (t) => {
  t.equal(entry({ name: 'a\tb\nc', address: 'Hauptstr. 5\n10115 Berlin\t' }).address, 'Hauptstr. 5\n10115 Berlin\t');
  for (const field of ['name', 'address'] as const) {
    for (const c of ['\r', '\u0000', '\u001b', '\u007f']) {
      t.equal(reason({ [field]: `a${c}b` }), `${field} must not hold control characters other than line feed and tab`, JSON.stringify(c));
    }
  }
  for (const c of ['\n', '\t', '\r', '\u0000', '\u007f']) t.equal(reason({ zone: `a${c}` }), 'zone must not hold control characters', JSON.stringify(c));
  t.equal(entry({ name: '\u0085\u009f' }).name, '\u0085\u009f', 'C1 characters are text, as in deviceIds (schema/record.schema.json)');
});

t.test('coordinates: numbers within -90..90 and -180..180, bounds included', async (t) => {
  for (const [latitude, longitude] of [[-90, -180], [90, 180], [0, 0], [52.517, 13.388], [-33.8688, 151.2093], [1e-7, -1e-300]]) {
    const e = entry({ latitude, longitude });
    t.equal(e.latitude, latitude);
    t.equal(e.longitude, longitude);
  }
  for (const latitude of [90.000001, -90.000001, 91, Infinity, -Infinity, NaN, '52.5', true, [52]]) {
    t.equal(reason({ latitude, longitude: 0 }), 'latitude must be a number from -90 to 90', String(latitude));
  }
  for (const longitude of [180.000001, -180.000001, 360, Infinity, NaN, '13', {}]) {
    t.equal(reason({ latitude: 0, longitude }), 'longitude must be a number from -180 to 180', String(longitude));
  }
  const zero = entry({ latitude: -0, longitude: -0 });
  t.ok(Object.is(zero.latitude, 0) && Object.is(zero.longitude, 0), '-0 is 0');
});

t.test('latitude and longitude go together', async (t) => {
  t.equal(reason({ latitude: 52.5 }), 'latitude and longitude go together: set both or neither');
  t.equal(reason({ latitude: 52.5, longitude: null }), 'latitude and longitude go together: set both or neither');
  t.equal(reason({ longitude: 13.4 }), 'latitude and longitude go together: set both or neither');
});

t.test('tags: at most 32 strings of 1 to 64 code points, no |, no control characters, no repeats, order kept', async (t) => {
  const many = Array.from({ length: 32 }, (_, i) => `t${i}`);
  t.same(entry({ tags: many }).tags, many, '32 tags');
  t.equal(reason({ tags: [...many, 'one more'] }), 'tags must be at most 32');
  t.same(entry({ tags: ['z', 'a', 'm'] }).tags, ['z', 'a', 'm'], 'the order written');
  t.same(entry({ tags: ['x'.repeat(64), EMOJI.repeat(64)] }).tags, ['x'.repeat(64), EMOJI.repeat(64)], '64 code points');
  const refused: [unknown, string][] = [
    ['storm', 'tags must be an array of strings'],
    [{ 0: 'a' }, 'tags must be an array of strings'],
    [['a', 1], 'tags must be an array of strings'],
    [['a', null], 'tags must be an array of strings'],
    [[''], 'tags must each be 1 to 64 characters'],
    [['x'.repeat(65)], 'tags must each be 1 to 64 characters'],
    [[EMOJI.repeat(65)], 'tags must each be 1 to 64 characters'],
    [['a|b'], "tags must not hold '|'"],
    [['a\tb'], 'tags must not hold control characters'],
    [['a\nb'], 'tags must not hold control characters'],
    [['a\u007f'], 'tags must not hold control characters'],
    [['a\ud800'], 'tags must be well-formed Unicode (no lone surrogate)'],
    [['a', 'b', 'a'], "tags must not repeat 'a'"],
  ];
  for (const [tags, why] of refused) t.equal(reason({ tags }), why, JSON.stringify(tags));
  t.same(entry({ tags: ['A', 'a'] }).tags, ['A', 'a'], 'tags are case-sensitive');
});

t.test('the entry owns its tags: changing the input afterwards changes nothing', async (t) => {
  const tags = ['a', 'b'];
  const e = entry({ tags });
  tags.push('c');
  t.same(e.tags, ['a', 'b']);
});

t.test('the first problem in field order is the reason', async (t) => {
  t.equal(reason({ deviceId: 'other', name: 7, tags: 'x' }), 'deviceId in the body must match the path');
  t.equal(reason({ name: 7, tags: 'x' }), 'name must be a string or null');
  t.equal(reason({ zone: 7, tags: 'x' }), 'zone must be a string or null');
});

t.test('hostile-looking text is valid text, stored as is (escaped where it is shown)', async (t) => {
  const e = entry({ name: HOSTILE, address: `${RTL}\n"; DROP TABLE x; --`, zone: '\u202Eenoz', tags: [HOSTILE, '\u200F', '=cmd()'] }, RTL);
  t.equal(e.deviceId, RTL);
  t.equal(e.name, HOSTILE);
  t.equal(e.address, `${RTL}\n"; DROP TABLE x; --`);
  t.equal(e.zone, '\u202Eenoz');
  t.same(e.tags, [HOSTILE, '\u200F', '=cmd()']);
});

t.test('a 10 KB name is refused with a reason naming name', async (t) => {
  t.equal(reason({ name: 'x'.repeat(10_240) }), 'name must be at most 200 characters');
  t.equal(reason({ name: HOSTILE.repeat(400) }), 'name must be at most 200 characters');
});

t.test('sameEntry: deep equality, tags in order', async (t) => {
  t.ok(sameEntry(full, { ...full, tags: [...full.tags] }));
  const changes: Partial<RegistryEntry>[] = [
    { deviceId: 'd2' },
    { name: null },
    { address: 'x' },
    { latitude: 0, longitude: 13.388 },
    { longitude: 0 },
    { zone: null },
    { tags: [] },
    { tags: ['Kanal Nord', 'storm'] },
    { tags: ['storm'] },
    { tags: ['storm', 'Kanal Nord', 'x'] },
  ];
  for (const change of changes) t.notOk(sameEntry(full, { ...full, ...change }), JSON.stringify(change));
});
