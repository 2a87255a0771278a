import t from 'tap';
import { normalize, type Normalized } from '../../src/ingest/normalize.js';

// SPEC §3 and issue 13 finding 5: lengths count Unicode code points, and an id or state that is
// not well-formed Unicode (a lone surrogate, sent as a JSON escape) is refused with invalid_field.

const NOW = 1_800_000_000;
const LIMITS = { maxMessageBytes: 65_536, maxClockSkewSeconds: 86_400 };
const run = (payload: string): Normalized => normalize(Buffer.from(payload), NOW, LIMITS);
const reason = (payload: string) => {
  const result = run(payload);
  return result.ok ? `accepted ${result.record.deviceId.length}` : result.reason;
};
const json = (value: object) => JSON.stringify(value);
const EMOJI = '\u{1F573}'; // two UTF-16 units, one code point

t.test('issue 13 #5: an id of 128 emoji is accepted, of 129 refused', async (t) => {
  const id = EMOJI.repeat(128);
  t.equal(id.length, 256, '256 UTF-16 units');
  const result = run(json({ DeviceID: id, State: 'open' }));
  t.ok(result.ok, '128 code points');
  if (result.ok) t.equal(result.record.deviceId, id);
  t.equal(reason(json({ DeviceID: EMOJI.repeat(129), State: 'open' })), 'invalid_device_id', '129 code points');
  t.ok(run(json({ DeviceID: 'd'.repeat(64) + EMOJI.repeat(64), State: 'open' })).ok, 'mixed: 128 code points');
  t.equal(reason(json({ DeviceID: 'd'.repeat(65) + EMOJI.repeat(64), State: 'open' })), 'invalid_device_id', 'mixed: 129');
});

t.test('a state of 64 emoji is accepted, of 65 refused', async (t) => {
  t.ok(run(json({ DeviceID: 'd', State: EMOJI.repeat(64) })).ok);
  t.equal(reason(json({ DeviceID: 'd', State: EMOJI.repeat(65) })), 'invalid_state');
});

t.test('a lone surrogate in an id or a state is invalid_field', async (t) => {
  const cases = [
    '{"DeviceID":"\\ud800","State":"open"}',
    '{"DeviceID":"a\\udc00b","State":"open"}',
    '{"DeviceID":"\\ude00\\ud83d","State":"open"}',
    '{"Device_ID":"abc\\udbff","State":"open"}',
    '{"DeviceID":"d","State":"\\ud800"}',
    '{"DeviceID":"d","state":"open\\udfff"}',
    '{"DeviceID":"d","State":"open","CustomerID":"\\ud800"}',
  ];
  for (const payload of cases) {
    const result = run(payload);
    t.equal(result.ok ? 'accepted' : result.reason, 'invalid_field', payload);
    if (!result.ok) t.match(result.detail, /well-formed/);
  }
});

t.test('a surrogate pair written as JSON escapes is one code point, and fine', async (t) => {
  const result = run('{"DeviceID":"\\ud83d\\ude00","State":"\\ud83d\\udd13"}');
  t.ok(result.ok);
  if (result.ok) t.same([result.record.deviceId, result.record.state], ['😀', '🔓']);
});

t.test('a lone surrogate elsewhere is kept as data', async (t) => {
  const result = run('{"DeviceID":"d","State":"open","Note\\ud800":"x\\udc00"}');
  t.ok(result.ok);
  if (result.ok) {
    t.equal(result.record.attributes['Note\ud800'], 'x\udc00');
    t.equal(JSON.stringify(result.record.attributes), '{"DeviceID":"d","State":"open","Note\\ud800":"x\\udc00"}', 'serialized as escapes');
  }
});
