import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import fc from 'fast-check';
import { normalize, REJECTION_REASONS, type Normalized } from '../../src/ingest/normalize.js';

// SPEC §3 and issue 13 finding 4: a JSON number is never stored as a different number. One that a
// double holds exactly stays a number; one it cannot hold keeps the text of its digits.

const NOW = 1_800_000_000;
const LIMITS = { maxMessageBytes: 65_536, maxClockSkewSeconds: 86_400 };
const run = (payload: string): Normalized => normalize(Buffer.from(payload), NOW, LIMITS);
const ok = (payload: string) => {
  const result = run(payload);
  if (!result.ok) throw new Error(`rejected: ${result.reason} ${result.detail}`);
  return result.record;
};
const reason = (payload: string) => {
  const result = run(payload);
  return result.ok ? 'accepted' : result.reason;
};
const message = (members: string) => `{"DeviceID":"d","State":"open",${members}}`;

t.test('issue 13 #4: a 20-digit ICCID sent as a number keeps its digits', async (t) => {
  const rec = ok('{"DeviceID":"x","State":"open","ICCID":89860012345678901234}');
  t.equal(rec.iccid, '89860012345678901234');
  t.equal(rec.attributes.ICCID, '89860012345678901234', 'attributes: the digits as a string');
  t.equal(JSON.stringify(rec.attributes), '{"DeviceID":"x","State":"open","ICCID":"89860012345678901234"}');
});

t.test('ICCIDs and IMEIs of 19 and 20 digits, as numbers and as strings', async (t) => {
  for (const digits of ['8986001234567890123', '89860012345678901234', '89014103243534707921', '9999999999999999999', '10000000000000000001']) {
    for (const key of ['ICCID', 'CCID', 'iccid', 'IMEI', 'imei']) {
      const field = key.toLowerCase() === 'imei' ? 'imei' : 'iccid';
      const asNumber = ok(message(`"${key}":${digits}`));
      t.equal(asNumber[field], digits, `${key} ${digits} as a number`);
      t.equal(asNumber.attributes[key], digits, `${key} ${digits} as a number: attributes`);
      const asString = ok(message(`"${key}":"${digits}"`));
      t.equal(asString[field], digits, `${key} ${digits} as a string`);
      t.equal(asString.attributes[key], digits);
    }
  }
});

t.test('a number a double holds stays a number', async (t) => {
  const rec = ok(message('"IMEI":351756051523999,"Safe":9007199254740991,"Pow":9007199254740992,"Half":1.5,"Tenth":0.1,"Big":1e21,"Neg":-12,"Zero":0,"Exp":1E5'));
  t.equal(rec.imei, '351756051523999');
  t.same(
    { ...rec.attributes },
    { DeviceID: 'd', State: 'open', IMEI: 351756051523999, Safe: 9007199254740991, Pow: 9007199254740992, Half: 1.5, Tenth: 0.1, Big: 1e21, Neg: -12, Zero: 0, Exp: 100000 },
  );
  t.equal(ok(message('"CSQ":30.0')).csq, 30, '30.0 is the integer 30');
  t.equal(ok(message('"Fw":"v1.2.3","CSQ":31')).csq, 31, 'a dot in a string costs a second read, not a number');
});

t.test('a number no double holds keeps its text in attributes', async (t) => {
  const cases: [string, string][] = [
    ['9007199254740993', '2^53 + 1'],
    ['123456789012345678901234567890', 'thirty digits'],
    ['-98765432109876543210', 'negative'],
    ['1e400', 'overflows to Infinity (JSON.stringify would write null)'],
    ['-1e400', 'overflows to -Infinity'],
    ['1E400', 'capital E'],
    ['1e-400', 'underflows to 0'],
    ['2e-324', 'rounds to 0'],
    ['4.9e-324', 'a subnormal with more digits than it keeps'],
    ['1.00000000000000000001', 'a fraction rounded away, to the integer 1'],
    ['4999999999999999999999e-21', 'a negative exponent rounded away, to 5'],
    ['0.1000000000000000000001', 'a fraction rounded to 0.1'],
    ['3.14159265358979323846264338327950288', 'pi with more digits than a double'],
  ];
  for (const [token, why] of cases) {
    const rec = ok(message(`"Counter":${token}`));
    t.equal(rec.attributes.Counter, token, `${token}: ${why}`);
    t.equal(JSON.parse(JSON.stringify(rec.attributes)).Counter, token, `${token} survives serialization`);
  }
});

t.test('the second read finds each key, whatever the spacing and escaping', async (t) => {
  const rec = ok('{ "DeviceID" : "d" ,\n\t"State":"open" , "a\\"b" : 12345678901234567890 , "\\u0049CCID":89860012345678901234, "flag" : true, "none" : null, "s":"1e400", "n" : 1e400 }');
  t.equal(rec.attributes['a"b'], '12345678901234567890', 'an escaped quote in a key');
  t.equal(rec.iccid, '89860012345678901234', 'a key written with a \\u escape');
  t.equal(rec.attributes.ICCID, '89860012345678901234');
  t.equal(rec.attributes.flag, true);
  t.equal(rec.attributes.none, null);
  t.equal(rec.attributes.s, '1e400', 'a string that looks like a number is a string');
  t.equal(rec.attributes.n, '1e400');
  t.same(Object.keys(rec.attributes), ['DeviceID', 'State', 'a"b', 'ICCID', 'flag', 'none', 's', 'n'], 'in the order of the payload');
});

t.test('the second read steps over nested values, which are refused as before', async (t) => {
  t.equal(reason(message('"x":1e400,"n":{"a":[1,"]}",{"b":"\\"}"}]},"y":2')), 'invalid_field', 'an unknown key');
  t.equal(reason(message('"IMEI":{"a":"}"},"x":1e400')), 'invalid_field', 'a known key');
  t.equal(reason('{"DeviceID":["[",1e400],"State":"open","x":1.5}'), 'invalid_device_id', 'the device id');
});

t.test('a repeated key: the last member wins, as in JSON.parse', async (t) => {
  t.equal(ok(message('"x":1e400,"x":2')).attributes.x, 2);
  t.equal(ok(message('"x":2,"x":1e400')).attributes.x, '1e400');
  t.equal(ok(message('"x":1e400,"x":"text"')).attributes.x, 'text');
  t.equal(ok(message('"ICCID":"a","ICCID":89860012345678901234')).iccid, '89860012345678901234');
});

t.test('__proto__ and constructor with a number no double holds stay data', async (t) => {
  const rec = ok(message('"__proto__":89860012345678901234,"constructor":1e400'));
  t.ok(Object.hasOwn(rec.attributes, '__proto__'));
  t.equal(Object.getOwnPropertyDescriptor(rec.attributes, '__proto__')?.value, '89860012345678901234');
  t.equal(rec.attributes.constructor, '1e400');
  t.equal(Object.getPrototypeOf(rec.attributes), Object.prototype, 'the prototype is untouched');
  t.equal(JSON.stringify(rec.attributes), '{"DeviceID":"d","State":"open","__proto__":"89860012345678901234","constructor":"1e400"}');
});

t.test('an integer device id beyond 2^53 keeps its digits; a number that is no integer is refused', async (t) => {
  t.equal(ok('{"DeviceID":12345678901234567890,"State":"open"}').deviceId, '12345678901234567890');
  t.equal(ok('{"DeviceID":9007199254740993,"State":"open"}').deviceId, '9007199254740993');
  t.equal(ok('{"DeviceID":9007199254740992,"State":"open"}').deviceId, '9007199254740992');
  t.equal(ok('{"DeviceID":-42,"State":"open"}').deviceId, '-42');
  t.equal(reason('{"DeviceID":1e400,"State":"open"}'), 'invalid_device_id');
  t.equal(reason('{"DeviceID":1.00000000000000000001,"State":"open"}'), 'invalid_device_id');
  t.equal(reason('{"DeviceID":1.5,"State":"open"}'), 'invalid_device_id');
  t.equal(reason('{"DeviceID":"d","State":1e400}'), 'invalid_state');
});

t.test('an application id sent as a number keeps its digits too', async (t) => {
  t.equal(ok(message('"CustomerID":89860012345678901234')).appId, '89860012345678901234');
  t.equal(ok(message('"AppID":42')).appId, '42');
});

t.test('batteryLevel, csq and timestamp: a huge number is refused, never rounded into range', async (t) => {
  const cases = [
    '"BatteryLevel":99999999999999999999',
    '"BatteryLevel":1e400',
    '"Battery":-1e400',
    '"BatteryLevel":5.00000000000000000001',
    '"BatteryLevel":10000.000000000000000001',
    '"CSQ":99999999999999999999',
    '"CSQ":1e400',
    '"CSQ":30.000000000000000001',
    '"CSQ":1e-400',
    '"Timestamp":15299979790000000000',
    '"Timestamp":1529997979000000000000000',
    '"ts":1e400',
    '"Timestamp":1529997979.0000000000001',
    '"Timestamp":9007199254740993',
  ];
  for (const members of cases) t.equal(reason(message(members)), 'invalid_field', members);
});

t.test('the rejection names the key and the number as written', async (t) => {
  const result = run(message('"CSQ":1e400'));
  t.notOk(result.ok);
  if (!result.ok) t.match(result.detail, /CSQ .*1e400/);
});

// The property: for any flat payload, normalize either refuses it with a known reason, or keeps
// every value the payload wrote, numbers exactly or as the text of their digits.

/** A decimal number token as an exact rational: mantissa × 10^exponent (BigInt, so no rounding). */
function exact(token: string): { mantissa: bigint; exponent: number } | null {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/.exec(token);
  if (m === null) return null; // Infinity
  const fraction = m[3] ?? '';
  const mantissa = BigInt(m[1]! + m[2]! + fraction);
  return { mantissa, exponent: Number(m[4] ?? 0) - fraction.length };
}

/** Does the double the token parses to print as the very number the token wrote? */
function holdsExactly(token: string): boolean {
  const a = exact(token)!;
  const b = exact(String(Number(token)));
  if (b === null) return false;
  if (a.mantissa === 0n || b.mantissa === 0n) return a.mantissa === b.mantissa;
  const shift = a.exponent - b.exponent;
  return shift >= 0 ? a.mantissa * 10n ** BigInt(shift) === b.mantissa : b.mantissa * 10n ** BigInt(-shift) === a.mantissa;
}

type Value = { kind: 'number'; token: string } | { kind: 'json'; value: string | boolean | null };

const KNOWN_KEYS = ['DeviceID', 'Device', 'Device_ID', 'State', 'Timestamp', 'ts', 'BatteryLevel', 'Battery', 'IMEI', 'ICCID', 'CCID', 'CSQ', 'APP-ID', 'AppID', 'CustomerID'];
const key = fc.oneof(
  { arbitrary: fc.mixedCase(fc.constantFrom(...KNOWN_KEYS)), weight: 2 },
  { arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', '0', '1'), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 8 }), weight: 4 },
);
const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
const integerToken = fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 9 }), digits(0, 30)).map(([negative, first, rest]) => `${negative ? '-' : ''}${first}${rest}`);
const numberToken = fc.oneof(
  fc.integer().map(String),
  fc.constantFrom('0', '-0', '9007199254740991', '9007199254740992', '9007199254740993', '89860012345678901234', '8986001234567890123', '1529997979', '1529997979123'),
  integerToken,
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.tuple(integerToken, digits(1, 30)).map(([whole, fraction]) => `${whole}.${fraction}`),
  fc.tuple(integerToken, fc.constantFrom('e', 'E', 'e+', 'e-', 'E-'), fc.integer({ min: 0, max: 400 })).map(([m, e, x]) => `${m}${e}${x}`),
);
const value: fc.Arbitrary<Value> = fc.oneof(
  numberToken.map((token): Value => ({ kind: 'number', token })),
  fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), digits(1, 22), fc.constant('\ud800'), fc.boolean(), fc.constant(null)).map((v): Value => ({ kind: 'json', value: v })),
);
const payload = fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }).map((x) => x < 0.85), fc.array(fc.tuple(key, value), { maxLength: 8 })).map(([required, members]) => {
  const all: [string, Value][] = required ? [['DeviceID', { kind: 'json', value: 'd' }], ['State', { kind: 'json', value: 'open' }], ...members] : members;
  const text = `{${all.map(([k, v]) => `${JSON.stringify(k)}:${v.kind === 'number' ? v.token : JSON.stringify(v.value)}`).join(',')}}`;
  return { text, members: all };
});

t.test('property: every value is kept as the payload wrote it, or the message is refused', async (t) => {
  let accepted = 0;
  let acceptedInexact = 0;
  fc.assert(
    fc.property(payload, ({ text, members }) => {
      const result = run(text);
      if (!result.ok) return REJECTION_REASONS.includes(result.reason);
      accepted++;
      if (members.some(([, v]) => v.kind === 'number' && !holdsExactly(v.token))) acceptedInexact++;
      const last = new Map(members); // a repeated key: the last member wins, as in JSON.parse
      // serialized, as every store and API writes attributes
      const kept = Object.entries(JSON.parse(JSON.stringify(result.record.attributes)) as Record<string, unknown>);
      const wrote = [...last].map(([k, v]) => [k, v.kind === 'json' ? v.value : holdsExactly(v.token) ? Number(v.token) + 0 : v.token]);
      const byKey = (a: unknown[], b: unknown[]) => (String(a[0]) < String(b[0]) ? -1 : String(a[0]) > String(b[0]) ? 1 : 0);
      if (!isDeepStrictEqual(kept.sort(byKey), wrote.sort(byKey))) return false;
      for (const [k, v] of last) {
        const field = k.toLowerCase() === 'imei' ? 'imei' : ['iccid', 'ccid'].includes(k.toLowerCase()) ? 'iccid' : null;
        if (field === null || (v.kind === 'json' && v.value === null)) continue;
        const own = v.kind === 'json' ? v.value : holdsExactly(v.token) ? String(Number(v.token)) : v.token;
        if (result.record[field] !== own) return false;
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.ok(accepted >= 100, `${accepted} of 500 payloads accepted, so the property says something`);
  t.ok(acceptedInexact >= 20, `${acceptedInexact} of them with a number no double holds`);
});
