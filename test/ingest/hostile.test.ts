import t from 'tap';
import fc from 'fast-check';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { nextEvent } from '../helpers/app.js';

// SPEC §3/§9: every payload comes from a third party. Thousands of malformed and hostile ones
// never crash the service and never change any device; each is counted and the last 100 kept.

const ts = Math.floor(Date.now() / 1000);

function hostilePayloads(): Buffer[] {
  const payloads: Buffer[] = [];
  const text = (s: string): void => {
    payloads.push(Buffer.from(s));
  };
  // garbage bytes (a random byte string is never a JSON object with DeviceID and State)
  for (const bytes of fc.sample(fc.uint8Array({ minLength: 0, maxLength: 300 }), { numRuns: 1500, seed: 42 })) {
    payloads.push(Buffer.from(bytes));
  }
  // JSON that is not an object, or an object the rules refuse; many aim at the existing device
  for (const value of fc.sample(fc.jsonValue(), { numRuns: 500, seed: 7 })) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) continue;
    text(JSON.stringify(value) ?? 'undefined');
  }
  for (let i = 0; i < 50; i++) {
    text('['.repeat(5000 + i) + ']'.repeat(5000 + i)); // deep JSON
    text(`{"DeviceID":"base","State":"open","Timestamp":${ts + 1 + i},"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}`); // deep inside
    text(`{"DeviceID":"base","State":"${'x'.repeat(70_000)}"}`); // over MAX_MESSAGE_BYTES
    text(`{"DeviceID":"base","State":"${'y'.repeat(65 + i)}"}`); // a state too long
    text('{"__proto__":{"State":"open"},"DeviceID":"base","constructor":{"prototype":{"polluted":true}}}');
    text(`{"DeviceID":"base","State":"open","Timestamp":${ts + 10 * 86_400 + i}}`); // far future
    text(`{"DeviceID":"base","State":"open","Timestamp":${ts + 1 + i},"CSQ":"strong"}`);
    text(`{"DeviceID":"base","State":"open","Timestamp":${ts + 1 + i},"BatteryLevel":-${i + 1}}`);
    text('{"DeviceID":["base"],"State":"open"}');
    text('{"DeviceID":"base","State":{"$gt":""}}');
    text('{"DeviceID":"ba\\u0000se","State":"open"}');
    text('{"DeviceID":"base","Device":"other","State":"open"}');
    text('{"DeviceID":"base","State":"open\\n{\\"level\\":60,\\"msg\\":\\"forged\\"}"}');
  }
  return payloads;
}

t.test('hostile payloads never crash the service and never change a device', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const { app, log } = await startBridge(t, broker);
  await app.ready();
  await app.ingest.subscribedOnce;
  const pub = await publisher(t, broker);

  const base = nextEvent(app, (e) => e.deviceId === 'base', 'the base device');
  await pub.publishAsync(TOPIC, message('base', 'close', ts, { CSQ: 20 }), { qos: 1 });
  await base;
  const before = (await app.inject('/devices/base')).json();

  const payloads = hostilePayloads();
  t.ok(payloads.length > 2000, `${payloads.length} hostile payloads`);
  for (const payload of payloads) pub.publish(TOPIC, payload, { qos: 1 });
  // one subscription delivers in order: once the sentinel is in, every payload before it was handled
  const sentinel = nextEvent(app, (e) => e.deviceId === 'sentinel', 'the sentinel', 60_000);
  await pub.publishAsync(TOPIC, message('sentinel', 'open', ts), { qos: 1 });
  await sentinel;

  t.same((await app.inject('/devices/base')).json(), before, 'the device is untouched');
  const list = (await app.inject('/devices')).json();
  t.same(list.items.map((d: { deviceId: string }) => d.deviceId), ['base', 'sentinel'], 'no device was created');
  const stats = (await app.inject('/stats')).json();
  t.same(stats.messages, { received: payloads.length + 2, accepted: 2, duplicate: 0, late: 0, invalid: payloads.length });
  const rejections = (await app.inject('/rejections')).json();
  t.equal(rejections.items.length, 100, 'the last 100 are kept');
  t.equal(Object.values(rejections.counts as Record<string, number>).reduce((a, b) => a + b, 0), payloads.length);
  t.ok(rejections.items.every((r: { payload: string }) => Buffer.byteLength(r.payload) <= 1024 * 3), 'payloads cut to 1 KiB');
  t.ok(rejections.counts.too_large >= 50);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  const warns = log.lines.filter((l) => l.msg === 'MQTT message rejected');
  t.ok(warns.length < 50, `the log is not flooded (${warns.length} warn lines for ${payloads.length} rejections)`);
  t.notOk(log.lines.some((l) => l.msg === 'forged'), 'no forged log line');
  t.equal((await app.inject('/healthz')).statusCode, 200);
});

t.test('a message on a topic that is not configured reaches no device', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  // an older configuration subscribed to more; the persistent session keeps that subscription
  const old = await startBridge(t, broker, { MQTT_CLIENT_ID: 'bridge-topics', MQTT_TOPICS: `${TOPIC},other/#` });
  await old.app.ready();
  await old.app.ingest.subscribedOnce;
  await old.app.close();

  const { app } = await startBridge(t, broker, { MQTT_CLIENT_ID: 'bridge-topics' });
  await app.ready();
  await app.ingest.subscribedOnce;
  const pub = await publisher(t, broker);
  await pub.publishAsync('other/feed', message('intruder', 'open', ts), { qos: 1 });
  const sentinel = nextEvent(app, (e) => e.deviceId === 'sentinel', 'the sentinel');
  await pub.publishAsync(TOPIC, message('sentinel', 'open', ts), { qos: 1 });
  await sentinel;
  t.equal((await app.inject('/devices/intruder')).statusCode, 404);
  const rejections = (await app.inject('/rejections')).json();
  t.equal(rejections.counts.topic_not_configured, 1);
  t.equal(rejections.items[0].topic, 'other/feed');
});
