import t from 'tap';
import fc from 'fast-check';
import { normalize, type Normalized } from '../../src/ingest/normalize.js';
import type { DeviceRecord } from '../../src/devices/types.js';

// SPEC §3 and issue 13 finding 6: two keys of one field agree when their values normalize to the
// same value; conflicting_keys is for aliases that disagree after normalization. An alias whose
// value is invalid is refused for that, naming its key.

const NOW = 1_800_000_000;
const LIMITS = { maxMessageBytes: 65_536, maxClockSkewSeconds: 86_400 };
const run = (payload: string): Normalized => normalize(Buffer.from(payload), NOW, LIMITS);
const message = (members: string) => `{${members.includes('"Device') ? '' : '"DeviceID":"d",'}${/"state"/i.test(members) ? '' : '"State":"open",'}${members}}`;
const outcome = (members: string) => {
  const result = run(message(members));
  return result.ok ? 'accepted' : result.reason;
};

t.test('issue 13 #6: Battery 5 and BatteryLevel "5" agree', async (t) => {
  const result = run('{"DeviceID":"d","State":"open","Battery":5,"BatteryLevel":"5"}');
  t.ok(result.ok);
  if (result.ok) {
    t.equal(result.record.batteryLevel, 5);
    t.same({ ...result.record.attributes }, { DeviceID: 'd', State: 'open', Battery: 5, BatteryLevel: '5' }, 'both keys kept as sent');
  }
});

// [members, field, value when they agree, or the rejection]
const cases: [string, keyof DeviceRecord, unknown][] = [
  ['"Battery":5,"BatteryLevel":"5"', 'batteryLevel', 5],
  ['"BatteryLevel":"5","battery":5', 'batteryLevel', 5],
  ['"Battery":5,"BatteryLevel":5.0', 'batteryLevel', 5],
  ['"Battery":"0005","BatteryLevel":5', 'batteryLevel', 5],
  ['"Battery":5,"BatteryLevel":"6"', 'batteryLevel', 'conflicting_keys'],
  ['"Battery":5,"BatteryLevel":6', 'batteryLevel', 'conflicting_keys'],
  ['"Timestamp":1529997979,"ts":"1529997979"', 'timestamp', 1529997979],
  ['"ts":"1529997979","Timestamp":1529997979', 'timestamp', 1529997979],
  ['"Timestamp":1529997979,"TS":1529997979', 'timestamp', 1529997979],
  // a 13-digit value is milliseconds: it agrees with its own second (SPEC §3 compares normalized values)
  ['"Timestamp":1529997979,"ts":1529997979123', 'timestamp', 1529997979],
  ['"Timestamp":"1529997979999","ts":1529997979123', 'timestamp', 1529997979],
  ['"Timestamp":1529997979,"ts":1529997980', 'timestamp', 'conflicting_keys'],
  ['"Timestamp":1529997979,"ts":"1529997980000"', 'timestamp', 'conflicting_keys'],
  ['"CSQ":31,"csq":"31"', 'csq', 31],
  ['"Csq":"31","CSQ":31', 'csq', 31],
  ['"CSQ":31,"csq":"32"', 'csq', 'conflicting_keys'],
  ['"DeviceID":42,"Device":"42","State":"open"', 'deviceId', '42'],
  ['"Device_ID":"42","DeviceID":42,"State":"open"', 'deviceId', '42'],
  ['"DeviceID":42,"Device":"42","Device_ID":42,"State":"open"', 'deviceId', '42'],
  ['"DeviceID":12345678901234567890,"device":"12345678901234567890","State":"open"', 'deviceId', '12345678901234567890'],
  ['"DeviceID":42,"Device":"042","State":"open"', 'deviceId', 'conflicting_keys'],
  ['"DeviceID":"a","Device_ID":"b","State":"open"', 'deviceId', 'conflicting_keys'],
  ['"ICCID":89860414111890171008,"CCID":"89860414111890171008"', 'iccid', '89860414111890171008'],
  ['"CCID":"8986","iccid":8986', 'iccid', '8986'],
  ['"ICCID":"8986","CCID":"8987"', 'iccid', 'conflicting_keys'],
  ['"ICCID":89860414111890171008,"CCID":89860414111890171009', 'iccid', 'conflicting_keys'],
  ['"IMEI":351756051523999,"imei":"351756051523999"', 'imei', '351756051523999'],
  ['"IMEI":351756051523999,"imei":"351756051523998"', 'imei', 'conflicting_keys'],
  ['"APP-ID":"a","AppID":"a","CustomerID":"a"', 'appId', 'a'],
  ['"AppID":7,"CustomerID":"7"', 'appId', '7'],
  ['"AppID":"a","CustomerID":"b"', 'appId', 'conflicting_keys'],
  ['"DeviceID":"d","State":"open","STATE":"open"', 'state', 'open'],
  ['"DeviceID":"d","State":"open","state":"close"', 'state', 'conflicting_keys'],
  ['"Battery":null,"BatteryLevel":5', 'batteryLevel', 5],
  ['"BatteryLevel":5,"Battery":null', 'batteryLevel', 5],
];

t.test('agreeing and disagreeing aliases of every aliased field', async (t) => {
  for (const [members, field, expected] of cases) {
    const result = run(message(members));
    if (expected === 'conflicting_keys') {
      t.equal(result.ok ? 'accepted' : result.reason, 'conflicting_keys', members);
      if (!result.ok) t.match(result.detail, /disagree/);
    } else {
      t.equal(result.ok ? result.record[field] : `${result.reason}: ${result.detail}`, expected, members);
    }
  }
});

t.test('an alias whose value is invalid is refused for that, naming its key', async (t) => {
  const invalid: [string, string, RegExp][] = [
    ['"Battery":5,"BatteryLevel":20000', 'invalid_field', /^BatteryLevel /],
    ['"Battery":20000,"BatteryLevel":5', 'invalid_field', /^Battery /],
    ['"Battery":"full","BatteryLevel":5', 'invalid_field', /^Battery /],
    ['"Battery":20000,"BatteryLevel":"20000"', 'invalid_field', /^Battery /],
    ['"CSQ":31,"csq":100', 'invalid_field', /^csq /],
    ['"Timestamp":1529997979,"ts":"yesterday"', 'invalid_field', /^ts /],
    ['"Timestamp":1529997979,"ts":-1', 'invalid_field', /^ts /],
    ['"ICCID":"8986","CCID":[1]', 'invalid_field', /^CCID /],
    ['"ICCID":"8986","CCID":"' + '1'.repeat(65) + '"', 'invalid_field', /^CCID /],
    ['"DeviceID":"d","Device":"","State":"open"', 'invalid_device_id', /^Device /],
    ['"DeviceID":"d","Device":1.5,"State":"open"', 'invalid_device_id', /^Device /],
    ['"DeviceID":"d","Device":"\\ud800","State":"open"', 'invalid_field', /^Device .*well-formed/],
    ['"DeviceID":"d","State":"open","state":""', 'invalid_state', /^state /],
    ['"DeviceID":"d","State":"open","state":1', 'invalid_state', /^state /],
  ];
  for (const [members, reason, detail] of invalid) {
    const result = run(message(members));
    t.equal(result.ok ? 'accepted' : result.reason, reason, members);
    if (!result.ok) t.match(result.detail, detail);
  }
});

t.test('aliases that agree on a far-future timestamp: timestamp_in_future', async (t) => {
  t.equal(outcome(`"Timestamp":${NOW + 86_401},"ts":"${NOW + 86_401}"`), 'timestamp_in_future');
});

t.test('property: battery aliases agree exactly when their values are the same integer', async (t) => {
  const battery = fc.integer({ min: 0, max: 10_000 });
  const written = (n: number, asString: boolean, zeros: number) => (asString ? `"${'0'.repeat(zeros)}${n}"` : String(n));
  fc.assert(
    fc.property(battery, battery, fc.boolean(), fc.boolean(), fc.nat(3), fc.mixedCase(fc.constant('battery')), (a, b, aString, bString, zeros, key) => {
      const result = run(message(`"${key}":${written(a, aString, zeros)},"BatteryLevel":${written(b, bString, 0)}`));
      return a === b ? result.ok && result.record.batteryLevel === a : !result.ok && result.reason === 'conflicting_keys';
    }),
    { numRuns: 300 },
  );
  t.pass('300 pairs');
});
