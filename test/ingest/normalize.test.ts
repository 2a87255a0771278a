import t from 'tap';
import fc from 'fast-check';
import { normalize, REJECTION_REASONS, type Normalized } from '../../src/ingest/normalize.js';

const NOW = 1_800_000_000; // Unix seconds, the bridge clock in these tests
const LIMITS = { maxMessageBytes: 65_536, maxClockSkewSeconds: 86_400 };
const run = (payload: string | Buffer, limits = LIMITS): Normalized =>
  normalize(typeof payload === 'string' ? Buffer.from(payload) : payload, NOW, limits);
const ok = (payload: string) => {
  const result = run(payload);
  if (!result.ok) throw new Error(`rejected: ${result.reason} ${result.detail}`);
  return result.record;
};

// SPEC §2: the vendor's own samples, each of which must be accepted
t.test('the API document sample', async (t) => {
  const text = '{"CustomerID":"a6157a33","DeviceID":"5da6f03c","Timestamp":"1529553530","State":"open","IMEI":"351756051523999","ICCID":"89014103243534707921","CSQ":30}';
  t.same(ok(text), {
    deviceId: '5da6f03c',
    appId: 'a6157a33',
    state: 'open',
    timestamp: 1529553530,
    batteryLevel: null,
    imei: '351756051523999',
    iccid: '89014103243534707921',
    csq: 30,
    attributes: JSON.parse(text),
  });
});

t.test("the older edition's sample: CCID, CSQ as a string", async (t) => {
  const rec = ok('{"CustomerID":"a6157a33","DeviceID":"5da6f03c","Timestamp":"1529553530","State":"open","IMEI":"351756051523999","CCID":"89014103243534707921","CSQ":"30"}');
  t.equal(rec.iccid, '89014103243534707921');
  t.equal(rec.csq, 30);
  t.equal(rec.timestamp, 1529553530);
});

t.test("the sample client's output: numbers, BatteryLevel, no APP-ID", async (t) => {
  const rec = ok('{"DeviceID":"3","State":"close","BatteryLevel":9971,"CSQ":31,"IMEI":"868575022027272","CCID":"89860414111890171008","Timestamp":1529997979}');
  t.same(
    { ...rec, attributes: undefined },
    { deviceId: '3', appId: null, state: 'close', timestamp: 1529997979, batteryLevel: 9971, imei: '868575022027272', iccid: '89860414111890171008', csq: 31, attributes: undefined },
  );
});

t.test('every alias, in any case', async (t) => {
  const cases: [string, string, unknown, unknown][] = [
    ['deviceId', 'DeviceID', 'x', 'x'],
    ['deviceId', 'device', 'x', 'x'],
    ['deviceId', 'DEVICE_ID', 'x', 'x'],
    ['appId', 'APP-ID', 'app', 'app'],
    ['appId', 'AppID', 'app', 'app'],
    ['appId', 'customerid', 'app', 'app'],
    ['state', 'STATE', 'open', 'open'],
    ['timestamp', 'ts', 1_700_000_000, 1_700_000_000],
    ['timestamp', 'TimeStamp', '1700000000', 1_700_000_000],
    ['batteryLevel', 'batterylevel', 5000, 5000],
    ['batteryLevel', 'Battery', '5000', 5000],
    ['imei', 'imei', 351756051523999, '351756051523999'],
    ['iccid', 'ICCID', 'c', 'c'],
    ['iccid', 'ccid', 'c', 'c'],
    ['csq', 'csq', '99', 99],
  ];
  for (const [field, key, value, expected] of cases) {
    const message: Record<string, unknown> = { DeviceID: 'd', State: 'open' };
    if (field === 'deviceId') delete message.DeviceID;
    if (field === 'state') delete message.State;
    message[key] = value;
    const rec = ok(JSON.stringify(message)) as unknown as Record<string, unknown>;
    t.equal(rec[field], expected, `${key} → ${field}`);
  }
});

t.test('conversions', async (t) => {
  t.equal(ok('{"DeviceID":42,"State":"open"}').deviceId, '42', 'an integer device id becomes a string');
  t.equal(ok('{"DeviceID":"d","State":"open"}').timestamp, NOW, 'no timestamp: the receive time');
  t.equal(ok('{"DeviceID":"d","State":"open","Timestamp":1529997979123}').timestamp, 1529997979, '13 digits: milliseconds');
  t.equal(ok('{"DeviceID":"d","State":"open","Timestamp":"1529997979123"}').timestamp, 1529997979, 'as a string too');
  t.equal(ok('{"DeviceID":"d","State":"open","CSQ":null}').csq, null, 'null is not sent');
  t.equal(ok('{"DeviceID":"d","State":"open","ICCID":"x","CCID":"x"}').iccid, 'x', 'two aliases that agree');
  t.equal(ok('{"DeviceID":"d","State":"open","CSQ":32}').csq, 32, "the document's own example CSQ 32");
  t.equal(ok('{"DeviceID":"d","State":"open","CSQ":99}').csq, 99, '99 = unknown');
  const rec = ok('{"DeviceID":"d","State":"open","Extra":true,"Note":"hi","Level":1.5}');
  t.same(rec.attributes, { DeviceID: 'd', State: 'open', Extra: true, Note: 'hi', Level: 1.5 }, 'every original key is kept');
});

t.test('every rejection reason', async (t) => {
  const cases: [string | Buffer, string, typeof LIMITS?][] = [
    ['{"DeviceID":"d","State":"open","Pad":"' + 'x'.repeat(200) + '"}', 'too_large', { ...LIMITS, maxMessageBytes: 100 }],
    [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'invalid_utf8'],
    ['{"DeviceID":', 'not_json'],
    ['', 'not_json'],
    ['[1,2]', 'not_object'],
    ['"open"', 'not_object'],
    ['null', 'not_object'],
    ['42', 'not_object'],
    ['{"State":"open"}', 'missing_device_id'],
    ['{"DeviceID":null,"State":"open"}', 'missing_device_id'],
    ['{"DeviceID":"","State":"open"}', 'invalid_device_id'],
    ['{"DeviceID":"' + 'd'.repeat(129) + '","State":"open"}', 'invalid_device_id'],
    ['{"DeviceID":1.5,"State":"open"}', 'invalid_device_id'],
    ['{"DeviceID":true,"State":"open"}', 'invalid_device_id'],
    ['{"DeviceID":{"a":1},"State":"open"}', 'invalid_device_id'],
    ['{"DeviceID":"a\\nb","State":"open"}', 'invalid_device_id'],
    ['{"DeviceID":"d"}', 'missing_state'],
    ['{"DeviceID":"d","State":""}', 'invalid_state'],
    ['{"DeviceID":"d","State":1}', 'invalid_state'],
    ['{"DeviceID":"d","State":"' + 's'.repeat(65) + '"}', 'invalid_state'],
    ['{"DeviceID":"d","State":"open","BatteryLevel":10001}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","BatteryLevel":-1}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","BatteryLevel":"full"}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","CSQ":100}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","CSQ":30.5}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","CSQ":""}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","Timestamp":-5}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","Timestamp":"yesterday"}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","Timestamp":true}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","IMEI":[1]}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","IMEI":"' + '1'.repeat(65) + '"}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","CustomerID":false}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","Extra":{"nested":1}}', 'invalid_field'],
    ['{"DeviceID":"d","State":"open","Extra":[]}', 'invalid_field'],
    ['{"DeviceID":"a","Device":"b","State":"open"}', 'conflicting_keys'],
    ['{"DeviceID":"d","State":"open","state":"close"}', 'conflicting_keys'],
    [`{"DeviceID":"d","State":"open","Timestamp":${NOW + 86_401}}`, 'timestamp_in_future'],
  ];
  const seen = new Set<string>();
  for (const [payload, reason, limits] of cases) {
    const result = run(payload, limits);
    const label = `${reason}: ${String(payload).slice(0, 60)}`;
    if (result.ok) {
      t.fail(label, { record: result.record });
      continue;
    }
    t.equal(result.reason, reason, label);
    t.ok(result.detail.length > 0, 'with a detail');
    seen.add(result.reason);
  }
  t.ok(run(`{"DeviceID":"d","State":"open","Timestamp":${NOW + 86_400}}`).ok, 'exactly the allowed skew is accepted');
  // topic_not_configured is decided by ingest, before normalization; internal_error is a bug's
  t.same([...seen, 'topic_not_configured', 'internal_error'].sort(), [...REJECTION_REASONS].sort(), 'every reason is tested');
});

t.test('__proto__ and constructor are data', async (t) => {
  const rec = ok('{"__proto__":"x","constructor":"y","DeviceID":"__proto__","State":"open"}');
  t.equal(rec.deviceId, '__proto__');
  t.ok(Object.hasOwn(rec.attributes, '__proto__'), 'kept as an own key');
  t.equal(rec.attributes.constructor, 'y');
  const nested = run('{"__proto__":{"polluted":1},"DeviceID":"d","State":"open"}');
  t.equal(nested.ok ? 'accepted' : nested.reason, 'invalid_field', 'a nested __proto__ is refused like any nesting');
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  t.equal(Object.getPrototypeOf(rec.attributes), Object.prototype, 'the prototype is untouched');
});

t.test('random input never throws, and what passes is a valid record', async (t) => {
  const arbitraryValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.jsonValue());
  const keys = fc.constantFrom('DeviceID', 'device', 'State', 'Timestamp', 'ts', 'CSQ', 'BatteryLevel', 'IMEI', 'ICCID', 'CCID', 'APP-ID', '__proto__', 'x');
  fc.assert(
    fc.property(fc.dictionary(keys, arbitraryValue), (message) => {
      const result = run(JSON.stringify(message));
      if (result.ok) {
        return typeof result.record.deviceId === 'string' && typeof result.record.state === 'string';
      }
      return REJECTION_REASONS.includes(result.reason);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      const result = run(Buffer.from(bytes));
      return result.ok || REJECTION_REASONS.includes(result.reason);
    }),
    { numRuns: 2000 },
  );
  t.pass('no exception in 4000 random payloads');
});

t.test('deeply nested JSON is refused: nothing nested reaches a serializer', async (t) => {
  const deep = '{"DeviceID":"d","State":"open","x":' + '['.repeat(30_000) + ']'.repeat(30_000) + '}';
  const result = run(deep, { ...LIMITS, maxMessageBytes: 1_000_000 });
  t.equal(result.ok ? 'accepted' : result.reason, 'invalid_field');
  const top = run('['.repeat(30_000) + ']'.repeat(30_000), { ...LIMITS, maxMessageBytes: 1_000_000 });
  t.equal(top.ok ? 'accepted' : top.reason, 'not_object');
});
