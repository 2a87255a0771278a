import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { DiagnosticSeverity, Parser, fromFile } from '@asyncapi/parser';
import { alarmEvent, metaEvent, silentEvent, updateEvent, type DeviceEvent } from '../src/devices/events.js';
import { makeAlarm } from '../src/devices/alarms.js';
import { webhookBody as outboxWebhookBody } from '../src/devices/outbox.js';
import { apply, markSilent } from '../src/devices/rules.js';
import type { Device } from '../src/devices/types.js';
import { deviceJson, sseBlock, wsFrame } from '../src/devices/wire.js';
import { normalize } from '../src/ingest/normalize.js';
import {
  ASYNCAPI_PATH,
  FRAME_MESSAGES,
  checkFrame,
  checkFrameHeaders,
  checkMessage,
  messageExamples,
  type FrameName,
} from './helpers/asyncapi.js';
import { record } from './helpers/records.js';
import { parseSse } from './helpers/sse.js';

// asyncapi.yaml describes every message stream (SPEC §5): the parser accepts it, and the frames the
// bridge really serializes match its schemas, while broken ones do not.

t.test('the parser finds no error in asyncapi.yaml', async (t) => {
  const { document, diagnostics } = await fromFile(new Parser(), ASYNCAPI_PATH).parse();
  const errors = diagnostics
    .filter((d) => d.severity === DiagnosticSeverity.Error)
    .map((d) => `${d.code} at ${d.path.join('.')}: ${d.message}`);
  t.same(errors, [], 'no error-severity diagnostics');
  if (document === undefined) return t.fail('no document');
  t.match(document.version(), /^3\./, 'AsyncAPI 3');

  const addresses = new Map(document.channels().all().map((c) => [c.id(), c.address()]));
  t.same(Object.fromEntries(addresses), {
    inbox: 'iot/{appId}/inbox',
    appsInbox: 'apps/{appId}/inbox',
    ws: '/ws',
    events: '/events',
    graphql: '/graphql',
    webhooks: null,
  });
  const channelMessages = (id: string) =>
    document.channels().get(id)?.messages().all().map((m) => m.id()).sort() ?? [];
  t.same(channelMessages('inbox'), ['mqttMessage']);
  t.same(channelMessages('appsInbox'), ['mqttMessage']);
  t.same(channelMessages('ws'), ['wsAlarm', 'wsError', 'wsMeta', 'wsSilent', 'wsSnapshot', 'wsSubscribe', 'wsUpdate']);
  t.same(channelMessages('events'), ['sseAlarm', 'sseMeta', 'sseReset', 'sseSilent', 'sseUpdate']);
  t.same(channelMessages('graphql'), ['graphqlNext']);
  t.same(channelMessages('webhooks'), ['webhook', 'webhookAlarm']);

  // the bridge's point of view: it consumes the inbox and client frames, and sends everything else
  const actions = Object.fromEntries(
    document.operations().all().map((op) => [op.id(), `${op.action()} ${op.channels().all().map((c) => c.id()).join()}`]),
  );
  t.same(actions, {
    receiveInbox: 'receive inbox',
    receiveAppsInbox: 'receive appsInbox',
    sendWsFrames: 'send ws',
    receiveWsSubscribe: 'receive ws',
    sendEvents: 'send events',
    sendGraphqlResults: 'send graphql',
    sendWebhook: 'send webhooks',
  });
  const wsQuery = document.channels().get('ws')?.bindings().get('ws')?.value<{ query?: { properties?: object } }>().query;
  t.same(Object.keys(wsQuery?.properties ?? {}), ['deviceId', 'state', 'snapshot'], '/ws documents its query');

  for (const [frame, id] of Object.entries(FRAME_MESSAGES)) {
    t.ok(document.components().messages().get(id), `${frame}: components.messages.${id} exists`);
  }
});

// Real devices and events, serialized as the bridge serializes them.
const RECEIVED = '2023-11-14T22:13:21.500Z';
const first = apply(undefined, record({ deviceId: 'd1', state: 'close' }), RECEIVED);
if (first.kind !== 'update') throw new Error('a new device is an update');
const second = apply(first.device, record({ deviceId: 'd1', state: 'open', timestamp: 1_700_000_100 }), RECEIVED);
if (second.kind !== 'update') throw new Error('a newer state is an update');
const sparse = apply(
  undefined,
  record({ deviceId: 'd2', appId: null, batteryLevel: null, imei: null, iccid: null, csq: null }),
  RECEIVED,
);
if (sparse.kind !== 'update') throw new Error('a new device is an update');

const update = updateEvent(7, second.device, second.previousState, second.changed);
const heartbeatOfNew = updateEvent(1, sparse.device, null, true);
const silent = silentEvent(8, markSilent(second.device));
const registered = { deviceId: second.device.deviceId, name: 'MH <1>', address: null, latitude: -33.9, longitude: 151.2, zone: 'z', tags: ['a'] };
const meta = metaEvent(9, second.device.deviceId, { ...second.device, meta: registered }, registered);
const metaNeverSeen = metaEvent(10, 'planned', null, { ...registered, deviceId: 'planned' });
const metaDeleted = metaEvent(11, second.device.deviceId, second.device, null);
const raisedAlarm = makeAlarm('a12', second.device.deviceId, 'cover_open', 'major', '2023-11-14T22:13:20.000Z', registered, '2026-01-01T00:00:00.000Z');
const alarmRaised = alarmEvent(12, second.device, 'raised', raisedAlarm);
const alarmCleared = alarmEvent(13, second.device, 'cleared', { ...raisedAlarm, status: 'cleared', clearedAt: '2023-11-14T23:00:00.000Z', clearedReceivedAt: '2026-01-01T00:01:00.000Z', meta: null });

const parse = (json: string): Record<string, unknown> => JSON.parse(json) as Record<string, unknown>;
const sseFields = (event: DeviceEvent) => {
  const [block, ...more] = parseSse(sseBlock(event));
  if (block === undefined || more.length > 0) throw new Error('an event is one SSE block');
  const fields: Record<string, string> = {};
  for (const name of ['id', 'event', 'data'] as const) if (block[name] !== null) fields[name] = block[name];
  return fields;
};
const sseData = (event: DeviceEvent) => parse(sseFields(event).data!);
const { data: _data, ...sseHeaders } = sseFields(update);
const plainDevice = (device: Device) => parse(deviceJson(device));
const webhookBody = (kind: 'device.state_changed' | 'device.silent', seq: number, device: Device, previousState: string | null) => ({
  type: kind,
  timestamp: new Date(device.timestamp * 1000).toISOString(),
  data: { seq, device: plainDevice(device), previousState },
});

/** Valid frames; each test below breaks a copy. */
const valid = (): Record<FrameName, Record<string, unknown>> => ({
  mqttMessage: { DeviceID: 'd1', State: 'open', Timestamp: 1_700_000_100 },
  wsSnapshot: { type: 'snapshot', devices: [plainDevice(second.device), plainDevice(sparse.device)], total: 2, truncated: false },
  wsUpdate: parse(wsFrame(update)),
  wsSilent: parse(wsFrame(silent)),
  wsMeta: parse(wsFrame(meta)),
  wsAlarm: parse(wsFrame(alarmRaised)),
  sseAlarm: sseData(alarmRaised),
  webhookAlarm: parse(outboxWebhookBody(alarmRaised, 'alarm.raised', '2026-01-01T00:00:00.000Z')),
  wsError: { type: 'error', message: 'frame is not JSON' },
  wsSubscribe: { type: 'subscribe', deviceIds: ['d1', 'd2'], states: null },
  sseUpdate: sseData(update),
  sseSilent: sseData(silent),
  sseMeta: sseData(meta),
  sseReset: { lastSeq: 8 },
  webhook: webhookBody('device.state_changed', 7, second.device, 'close'),
});

t.test('checkFrame accepts real frames', async (t) => {
  for (const [name, frame] of Object.entries(valid()) as [FrameName, unknown][]) {
    t.same(checkFrame(name, frame), [], name);
  }
  t.same(checkFrame('wsUpdate', parse(wsFrame(heartbeatOfNew))), [], 'a device with null fields');
  t.same(checkFrame('sseUpdate', sseData(heartbeatOfNew)), [], 'previousState null');
  t.same(checkFrame('wsSnapshot', { type: 'snapshot', devices: [], total: 20_000, truncated: true }), [], 'a truncated snapshot');
  t.same(checkFrame('wsSubscribe', { type: 'subscribe', deviceIds: null, states: ['open', 'offline'] }), [], 'states only');
  t.same(checkFrame('wsSubscribe', { type: 'subscribe', types: ['meta', 'update'] }), [], 'types');
  t.same(checkFrame('wsMeta', parse(wsFrame(metaNeverSeen))), [], 'a meta frame of a device never heard from');
  t.same(checkFrame('sseMeta', sseData(metaDeleted)), [], 'a deleted entry');
  t.equal(sseFields(meta).event, 'meta');
  t.same(checkFrame('wsAlarm', parse(wsFrame(alarmCleared))), [], 'a cleared alarm without meta');
  t.equal(sseFields(alarmRaised).event, 'alarm');
  t.same(checkFrame('webhookAlarm', parse(outboxWebhookBody(alarmCleared, 'alarm.cleared', 'x'))), [], 'alarm.cleared');
  t.equal(parse(outboxWebhookBody(alarmCleared, 'alarm.cleared', 'x')).timestamp, '2023-11-14T23:00:00.000Z', 'a clear at its source time');
  t.same(checkFrame('webhook', webhookBody('device.silent', 8, silent.device, 'close')), [], 'device.silent');
  t.same(checkFrame('webhook', webhookBody('device.state_changed', 1, sparse.device, null)), [], 'a new device');
});

t.test('checkFrame rejects broken frames', async (t) => {
  const broken = (name: FrameName, why: string, change: (frame: Record<string, unknown>) => void) => {
    const frame = structuredClone(valid()[name]);
    change(frame);
    const errors = checkFrame(name, frame);
    t.not(errors.length, 0, `${name}: ${why}`, { errors });
    return errors;
  };
  const device = (frame: Record<string, unknown>) => frame.device as Record<string, unknown>;

  t.match(broken('wsUpdate', 'missing seq', (f) => delete f.seq), [/seq/]);
  t.match(broken('wsUpdate', 'extra field', (f) => (f.extra = 1)), [/additional properties: extra/]);
  broken('wsUpdate', 'seq as a string', (f) => (f.seq = String(f.seq)));
  broken('wsUpdate', 'previousState missing', (f) => delete f.previousState);
  broken('wsUpdate', 'changed as a string', (f) => (f.changed = 'true'));
  t.match(broken('wsUpdate', 'device without lastSeenAt', (f) => delete device(f).lastSeenAt), [/\/device .*lastSeenAt/]);
  broken('wsUpdate', 'device with an unknown field', (f) => (device(f).history = []));
  broken('wsUpdate', 'device timestamp as ISO', (f) => (device(f).timestamp = device(f).lastSeenAt));
  broken('wsUpdate', 'device lastSeenAt not a date-time', (f) => (device(f).lastSeenAt = 'yesterday'));
  t.match(broken('wsUpdate', 'wrong type', (f) => (f.type = 'silent')), ['/type must be equal to constant: "update"']);
  broken('wsSilent', 'missing seq', (f) => delete f.seq);
  broken('wsSilent', 'changed on a silent frame', (f) => (f.changed = false));
  broken('wsSnapshot', 'missing total', (f) => delete f.total);
  broken('wsSnapshot', 'missing truncated', (f) => delete f.truncated);
  broken('wsSnapshot', 'a device missing a field', (f) => delete (f.devices as Record<string, unknown>[])[1]!.silent);
  broken('wsError', 'no message', (f) => delete f.message);
  broken('wsSubscribe', 'deviceIds as a string', (f) => (f.deviceIds = 'd1'));
  broken('wsSubscribe', 'type missing', (f) => delete f.type);
  broken('wsSubscribe', 'over 1000 ids', (f) => (f.deviceIds = Array.from({ length: 1001 }, (_, i) => `d${i}`)));
  t.match(broken('sseUpdate', 'seq in the data (it is the id line)', (f) => (f.seq = 7)), [/additional properties: seq/]);
  broken('sseUpdate', 'a ws frame as SSE data', (f) => (f.type = 'update'));
  broken('sseUpdate', 'device without attributes', (f) => delete device(f).attributes);
  broken('sseSilent', 'missing device', (f) => delete f.device);
  broken('sseReset', 'lastSeq as a string', (f) => (f.lastSeq = '8'));
  broken('webhook', 'unknown type', (f) => (f.type = 'device.updated'));
  broken('webhook', 'timestamp in Unix seconds', (f) => (f.timestamp = 1_700_000_100));
  broken('webhook', 'data without seq', (f) => delete (f.data as Record<string, unknown>).seq);
  broken('webhook', 'previousState missing', (f) => delete (f.data as Record<string, unknown>).previousState);
  broken('webhook', 'device missing a field', (f) => delete device(f.data as Record<string, unknown>).receivedAt);
  t.match(broken('mqttMessage', 'no DeviceID', (f) => delete f.DeviceID), [/device id key/]);
  t.match(broken('mqttMessage', 'no State', (f) => delete f.State), [/State key/]);
  t.match(broken('mqttMessage', 'a nested object', (f) => (f.extra = { a: 1 })).join('\n'), '/extra must match a schema in anyOf');
  broken('mqttMessage', 'an array value', (f) => (f.tags = ['a']));
  broken('mqttMessage', 'BatteryLevel out of range', (f) => (f.BatteryLevel = 10_001));
});

t.test('the SSE id and event lines and the webhook headers', async (t) => {
  t.same(checkFrameHeaders('sseUpdate', sseHeaders), [], 'real id and event lines');
  t.same(sseHeaders, { id: '7', event: 'update' });
  const { data: _d, ...silentHeaders } = sseFields(silent);
  t.same(checkFrameHeaders('sseSilent', silentHeaders), []);
  t.not(checkFrameHeaders('sseSilent', sseHeaders).length, 0, 'event: update is not a silent block');
  t.same(checkFrameHeaders('sseReset', { event: 'reset' }), []);
  t.not(checkFrameHeaders('sseReset', { id: '3', event: 'reset' }).length, 0, 'a reset has no id');

  const body = JSON.stringify(valid().webhook);
  const id = 'msg_01HZX3Q9_7';
  const timestamp = '1700000101';
  const key = Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64'); // whsec_ secrets are base64 after the prefix
  const signature = `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
  const headers = { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature };
  t.same(checkFrameHeaders('webhook', { ...headers, 'user-agent': 'wiihey-bridge', host: 'receiver.example.com' }), []);
  t.not(checkFrameHeaders('webhook', { ...headers, 'webhook-id': 'msg_a.b_7' }).length, 0, 'a . in webhook-id');
  t.not(checkFrameHeaders('webhook', { ...headers, 'webhook-signature': signature.slice(3) }).length, 0, 'no v1,');
  t.not(checkFrameHeaders('webhook', { ...headers, 'webhook-timestamp': new Date().toISOString() }).length, 0, 'ISO timestamp');
  const { 'webhook-id': _id, ...withoutId } = headers;
  t.not(checkFrameHeaders('webhook', withoutId).length, 0, 'no webhook-id');
  t.throws(() => checkFrameHeaders('wsUpdate', {}), /no headers schema/);
});

// SPEC §2, verbatim
const VENDOR_SAMPLES = [
  '{"CustomerID":"a6157a33","DeviceID":"5da6f03c","Timestamp":"1529553530","State":"open","IMEI":"351756051523999","ICCID":"89014103243534707921","CSQ":30}',
  '{"CustomerID":"a6157a33","DeviceID":"5da6f03c","Timestamp":"1529553530","State":"open","IMEI":"351756051523999","CCID":"89014103243534707921","CSQ":"30"}',
  '{"DeviceID":"3","State":"close","BatteryLevel":9971,"CSQ":31,"IMEI":"868575022027272","CCID":"89860414111890171008","Timestamp":1529997979}',
];
const LIMITS = { maxMessageBytes: 65_536, maxClockSkewSeconds: 86_400 };
const NOW = 1_700_000_000;

t.test('MQTT messages: the vendor samples pass, nesting does not, and normalize() agrees', async (t) => {
  for (const sample of VENDOR_SAMPLES) {
    t.same(checkFrame('mqttMessage', JSON.parse(sample)), [], sample);
    t.ok(normalize(Buffer.from(sample), NOW, LIMITS).ok, 'the bridge accepts it too');
  }
  const schema = JSON.parse(readFileSync(new URL('../schema/message.schema.json', import.meta.url), 'utf8')) as { examples: unknown[] };
  t.same(schema.examples, VENDOR_SAMPLES.map((s) => JSON.parse(s)), 'the schema gives the SPEC §2 samples as examples');

  const cases: [string, boolean][] = [
    ['{"DeviceID":"d1","State":"open","location":{"lat":1}}', false],
    ['{"DeviceID":"d1","State":"open","tags":["a"]}', false],
    ['{"deviceid":"d1","state":"open"}', true], // keys are case-insensitive
    ['{"Device_ID":42,"STATE":"open","ts":"1529553530"}', true],
    ['{"DeviceID":"d1"}', false],
    ['{"State":"open","IMEI":"351756051523999"}', false],
  ];
  for (const [payload, ok] of cases) {
    t.equal(checkFrame('mqttMessage', JSON.parse(payload)).length === 0, ok, `schema: ${payload}`);
    t.equal(normalize(Buffer.from(payload), NOW, LIMITS).ok, ok, `normalize: ${payload}`);
  }
});

t.test('every message has examples, and they pass their own schemas', async (t) => {
  const examples = messageExamples();
  const withExamples = new Set(examples.map((e) => e.messageId));
  for (const id of [...Object.values(FRAME_MESSAGES), 'graphqlNext']) t.ok(withExamples.has(id), `${id} has an example`);
  for (const example of examples) {
    const label = `${example.messageId} example ${example.name}`;
    if (example.payload !== undefined) t.same(checkMessage(example.messageId, 'payload', example.payload), [], `${label}: payload`);
    if (example.headers !== undefined) t.same(checkMessage(example.messageId, 'headers', example.headers), [], `${label}: headers`);
  }
});
