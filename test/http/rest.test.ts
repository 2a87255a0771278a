import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import type { DeviceEvent } from '../../src/devices/events.js';
import { record } from '../helpers/records.js';
import { buildTestApp, nextEvent, testConfig } from '../helpers/app.js';
import { ManualClock } from '../helpers/clock.js';
import { MAX_PAGE_BYTES } from '../../src/http/devices.js';

const NOW = 1_800_000_000_000; // ms

async function appWith(t: Test, ids: string[] = []): Promise<FastifyInstance> {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false, clock: { now: () => NOW } });
  await app.ready();
  for (const [i, deviceId] of ids.entries()) {
    await app.devices.accept(record({ deviceId, state: i % 2 ? 'open' : 'close', timestamp: 1_799_990_000 + i }), NOW);
  }
  return app;
}

t.test('GET /devices pages through every device once, in deviceId order', async (t) => {
  const ids = Array.from({ length: 25 }, (_, i) => `dev-${String(i).padStart(2, '0')}`).reverse();
  const app = await appWith(t, ids);
  const seen: string[] = [];
  let cursor: string | null = null;
  type Page = { items: { deviceId: string }[]; nextCursor: string | null; total: number };
  for (let pages = 0; pages < 10; pages++) {
    const res = await app.inject({ url: '/devices', query: { limit: '10', ...(cursor ? { cursor } : {}) } });
    t.equal(res.statusCode, 200);
    const body: Page = res.json();
    t.equal(body.total, 25);
    seen.push(...body.items.map((d) => d.deviceId));
    cursor = body.nextCursor;
    if (cursor === null) break;
  }
  t.same(seen, [...ids].sort());
});

t.test('GET /devices cuts a page at about 4 MiB, whatever its limit; nextCursor goes on from there', async (t) => {
  const app = await appWith(t);
  const pad = 'a'.repeat(60_000);
  for (let i = 0; i < 150; i++) {
    await app.devices.accept(record({ deviceId: `fat-${String(i).padStart(3, '0')}`, timestamp: 1_799_990_000, attributes: { pad } }), NOW);
  }
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await app.inject({ url: '/devices', query: { limit: '1000', ...(cursor ? { cursor } : {}) } });
    t.ok(res.body.length <= MAX_PAGE_BYTES + 64 * 1024, `page ${++pages}: ${res.body.length} bytes`);
    const body = res.json() as { items: { deviceId: string }[]; nextCursor: string | null; total: number };
    t.equal(body.total, 150);
    seen.push(...body.items.map((d) => d.deviceId));
    cursor = body.nextCursor;
  } while (cursor !== null && pages < 10);
  t.ok(pages > 1, `cut into ${pages} pages`);
  t.same(seen, Array.from({ length: 150 }, (_, i) => `fat-${String(i).padStart(3, '0')}`), 'every device once, in order');
});

t.test('GET /devices filters by state and silence', async (t) => {
  const app = await appWith(t, ['a', 'b', 'c', 'd']);
  const open = (await app.inject('/devices?state=open')).json();
  t.same(open.items.map((d: { deviceId: string }) => d.deviceId), ['b', 'd']);
  t.equal(open.total, 2);
  t.equal((await app.inject('/devices?silent=true')).json().total, 0);
  t.equal((await app.inject('/devices?silent=false')).json().total, 4);
  const empty = (await app.inject('/devices?state=offline')).json();
  t.same(empty, { items: [], nextCursor: null, total: 0 });
});

t.test('GET /devices refuses bad parameters with a clear error', async (t) => {
  const app = await appWith(t, ['a']);
  for (const query of ['limit=0', 'limit=1001', 'limit=ten', 'silent=maybe', 'state=']) {
    const res = await app.inject(`/devices?${query}`);
    t.equal(res.statusCode, 400, query);
    t.equal(res.json().code, 'FST_ERR_VALIDATION', query);
    t.match(res.json().message, /querystring/, query);
  }
  for (const cursor of ['garbage', Buffer.from('x:a').toString('base64url'), 'ZDph!']) {
    const res = await app.inject({ url: '/devices', query: { cursor } });
    t.equal(res.statusCode, 400, cursor);
    t.same(res.json(), {
      statusCode: 400,
      code: 'BRG_ERR_INVALID_CURSOR',
      error: 'Bad Request',
      message: 'cursor is not one this service handed out',
    });
  }
});

t.test('GET /devices/{deviceId}: the device, or 404 in the shared error shape', async (t) => {
  const longId = 'ü/é ' + 'x'.repeat(124); // 128 characters, some that a path must percent-encode
  const app = await appWith(t, ['42', longId]);
  const res = await app.inject(`/devices/${encodeURIComponent(longId)}`);
  t.equal(res.statusCode, 200, 'a 128-character id works in the path');
  t.equal(res.json().deviceId, longId);
  const device = (await app.inject('/devices/42')).json();
  t.equal(device.state, 'close');
  t.equal(device.previousState, null);
  t.equal(device.silent, false);
  t.equal(device.lastSeenAt, new Date(1_799_990_000 * 1000).toISOString());
  t.equal(device.receivedAt, new Date(NOW).toISOString());
  const missing = await app.inject('/devices/nope');
  t.equal(missing.statusCode, 404);
  t.same(missing.json(), { statusCode: 404, code: 'BRG_ERR_DEVICE_NOT_FOUND', error: 'Not Found', message: "device 'nope' not found" });
  t.equal((await app.inject(`/devices/${'x'.repeat(129)}`)).statusCode, 400, 'over 128 characters: refused');
});

t.test('GET /devices/{deviceId}/history', async (t) => {
  const app = await appWith(t);
  for (const [ts, state] of [[100, 'open'], [200, 'close'], [150, 'open']] as const) {
    await app.devices.accept(record({ deviceId: 'h', state, timestamp: 1_799_990_000 + ts }), NOW);
  }
  const res = await app.inject('/devices/h/history');
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.equal(body.deviceId, 'h');
  t.same(body.items.map((e: { kind: string; state: string }) => `${e.kind}:${e.state}`), ['update:close', 'late:open', 'update:open']);
  t.equal((await app.inject('/devices/h/history?limit=1')).json().items.length, 1);
  t.equal((await app.inject('/devices/nope/history')).statusCode, 404);
  t.equal((await app.inject('/devices/h/history?limit=0')).statusCode, 400);
});

t.test('GET /stats counts devices and messages', async (t) => {
  const app = await appWith(t, ['a', 'b', 'c']);
  await app.devices.accept(record({ deviceId: 'a', state: 'close', timestamp: 1_799_990_000 }), NOW); // duplicate
  const stats = (await app.inject('/stats')).json();
  t.equal(stats.devices, 3);
  t.same(stats.byState, { close: 2, open: 1 });
  t.equal(stats.silent, 0);
  t.same(stats.messages, { received: 0, accepted: 3, duplicate: 1, late: 0, invalid: 0 });
  t.same(stats.mqtt, { connected: false, subscribed: false, since: null, reconnects: 0, lastError: null });
  t.equal(stats.webhooks, null, 'no WEBHOOK_URLS');
  t.type(stats.uptimeSeconds, 'number');
});

t.test('silence: a device falls silent after SILENCE_AFTER_SECONDS, once, and the next message clears it', async (t) => {
  let now = NOW;
  const app = await buildTestApp(t, testConfig({ SILENCE_AFTER_SECONDS: '60' }), { connectMqtt: false, clock: { now: () => now } });
  await app.ready();
  await app.devices.accept(record({ deviceId: 's', timestamp: NOW / 1000 }), now);
  app.devices.events.flush(); // its update is delivered before we listen (devices/events.ts: a batch a turn)
  const events: DeviceEvent[] = [];
  app.devices.events.subscribe((e) => events.push(e));
  now += 60_000;
  t.equal(await app.devices.sweepSilence(), 0, 'exactly the limit: not silent yet');
  now += 1000;
  t.equal(await app.devices.sweepSilence(), 1);
  app.devices.events.flush(); // listeners hear a batch a turn later (devices/events.ts)
  t.same(events.map((e) => [e.kind, e.deviceId, e.device?.silent]), [['silent', 's', true], ['alarm', 's', true]], 'and its silent alarm (SPEC §12)');
  const alarm = events[1]?.kind === 'alarm' ? events[1].alarm : null;
  t.same([alarm?.type, alarm?.raisedAt], ['silent', new Date(NOW + 60_000).toISOString()], 'raised at the deadline, not when the sweep saw it');
  t.equal(await app.devices.sweepSilence(), 0, 'one event per silence');
  t.equal((await app.inject('/devices?silent=true')).json().total, 1);
  t.equal((await app.inject('/stats')).json().silent, 1);
  await app.devices.accept(record({ deviceId: 's', timestamp: now / 1000 }), now);
  t.equal((await app.inject('/devices/s')).json().silent, false);
});

t.test('operations routes', async (t) => {
  const app = await appWith(t);
  t.same((await app.inject('/healthz')).json(), { status: 'ok' });
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 503, 'not connected to MQTT: not ready');
  t.equal(ready.json().status, 'unavailable');
  t.match(ready.json().reasons[0], /^mqtt: not connected/);
  t.same((await app.inject('/rejections')).json(), { items: [], counts: {} });
  const doc = await app.inject('/openapi.json');
  t.equal(doc.statusCode, 200);
  t.equal(doc.json().openapi, '3.1.0');
  t.ok(doc.json().components.schemas.Device.properties.deviceId, 'schema/ files are inlined');
  const docs = await app.inject('/docs');
  t.equal(docs.statusCode, 200, '/docs is the Swagger UI');
  t.match(docs.headers['content-type'], /html/);
  t.notMatch(docs.body, /https?:\/\/(?!127\.0\.0\.1|localhost)[a-z]/i, 'no CDN: every asset is served locally');
  t.equal((await app.inject('/docs/json')).json().openapi, '3.1.0', 'the UI shows this document');
});

t.test('unknown routes and hostile requests get the shared error shape, never a stack', async (t) => {
  const app = await appWith(t, ['a']);
  const res = await app.inject('/nope?x=1');
  t.equal(res.statusCode, 404);
  t.same(res.json(), { statusCode: 404, code: 'BRG_ERR_ROUTE_NOT_FOUND', error: 'Not Found', message: 'no route GET /nope' });
  const post = await app.inject({ method: 'POST', url: '/devices', payload: 'x'.repeat(2_000_000), headers: { 'content-type': 'application/json' } });
  t.ok([404, 413].includes(post.statusCode), 'a huge body to a read-only API');
  t.notMatch(post.body, /at .*\.ts:\d+/);
  const traversal = await app.inject('/devices/..%2F..%2Fetc%2Fpasswd');
  t.equal(traversal.statusCode, 404);
  t.equal(traversal.json().message, "device '../../etc/passwd' not found");
  const badEncoding = await app.inject('/devices/%E0%A4%A');
  t.equal(badEncoding.statusCode, 400);
  t.notMatch(badEncoding.body, /stack|\.ts:/);
});

t.test('a failing store answers 500 without its internal message', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  app.devices.store.get = async () => {
    throw new Error('disk on fire at /var/secret/path');
  };
  const res = await app.inject('/devices/x');
  t.equal(res.statusCode, 500);
  t.same(res.json(), { statusCode: 500, code: 'BRG_ERR_INTERNAL', error: 'Internal Server Error', message: 'internal server error' });
});

t.test('the silence check runs by itself (SILENCE_CHECK_SECONDS) and stops with the app', async (t) => {
  const clock = new ManualClock(NOW);
  const app = await buildTestApp(t, testConfig({ SILENCE_AFTER_SECONDS: '60', SILENCE_CHECK_SECONDS: '30' }), { connectMqtt: false, clock });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'quiet', timestamp: NOW / 1000 }), clock.now());
  const silent = nextEvent(app, (e) => e.kind === 'silent' && e.deviceId === 'quiet', 'the silent event');
  clock.advance(61_000);
  const event = await silent;
  t.equal(event.device?.silent, true);
  await app.close();
  t.equal(app.devices.events.listenerCount, 0, 'no listener left');
  t.equal(clock.pending, 0, 'no timer left on the clock');
});
