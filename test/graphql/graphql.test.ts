import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { getIntrospectionQuery } from 'graphql';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { buildTestApp, testConfig, until, withTimeout } from '../helpers/app.js';
import { ManualClock } from '../helpers/clock.js';
import { record } from '../helpers/records.js';

// SPEC §5 GraphQL, with real clients: HTTP for queries, the graphql-ws library for subscriptions.

const ts = Math.floor(Date.now() / 1000);

async function gql(app: FastifyInstance, query: string, variables?: Record<string, unknown>) {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });
  return { status: res.statusCode, body: res.json() as { data?: Record<string, unknown> | null; errors?: { message: string }[] } };
}

function wsClient(t: Test, port: number): Client {
  const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
  t.teardown(() => client.dispose());
  return client;
}

/** Collects the `next` results of one subscription; `until(n)` resolves when n have come. */
function collect(client: Client, query: string, variables?: Record<string, unknown>) {
  const results: Record<string, unknown>[] = [];
  let wake = (): void => {};
  let failed: unknown = null;
  const dispose = client.subscribe(
    { query, variables },
    {
      next: (r) => {
        results.push(r as Record<string, unknown>);
        wake();
      },
      error: (e) => {
        failed = e;
        wake();
      },
      complete: () => {},
    },
  );
  const until = (n: number, what: string): Promise<Record<string, unknown>[]> =>
    withTimeout(
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (failed) reject(failed instanceof Error ? failed : new Error(JSON.stringify(failed)));
          else if (results.length >= n) resolve(results);
        };
        wake = check;
        check();
      }),
      10_000,
      () => `${what}: ${results.length} of ${n}`,
    );
  return { results, until, dispose };
}

t.test('queries over HTTP: device, devices with filters and pages, history, stats', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  for (const [id, state] of [['a', 'open'], ['b', 'close'], ['c', 'open']] as const) {
    await app.devices.accept(record({ deviceId: id, state, timestamp: ts, batteryLevel: 500 }), Date.now());
  }
  await app.devices.accept(record({ deviceId: 'a', state: 'close', timestamp: ts + 1 }), Date.now());

  const one = await gql(app, '{ device(deviceId: "a") { deviceId state previousState batteryLevel attributes silent timestamp } }');
  t.same(one.body.data, { device: { deviceId: 'a', state: 'close', previousState: 'open', batteryLevel: 9000, attributes: { DeviceID: 'a', State: 'close', Timestamp: ts + 1 }, silent: false, timestamp: ts + 1 } });
  t.same((await gql(app, '{ device(deviceId: "zz") { deviceId } }')).body.data, { device: null });

  const page1 = await gql(app, '{ devices(limit: 2) { total nextCursor items { deviceId } } }');
  const devices = page1.body.data!.devices as { total: number; nextCursor: string; items: { deviceId: string }[] };
  t.equal(devices.total, 3);
  t.same(devices.items.map((d) => d.deviceId), ['a', 'b']);
  const page2 = await gql(app, 'query ($c: String) { devices(limit: 2, cursor: $c) { nextCursor items { deviceId } } }', { c: devices.nextCursor });
  t.same(page2.body.data, { devices: { nextCursor: null, items: [{ deviceId: 'c' }] } });
  t.same((await gql(app, '{ devices(state: "open") { total } }')).body.data, { devices: { total: 1 } });
  t.same((await gql(app, '{ devices(silent: true) { total } }')).body.data, { devices: { total: 0 } });
  const bad = await gql(app, '{ devices(cursor: "nope") { total } }');
  t.equal(bad.body.errors?.[0]?.message, 'cursor is not one this service handed out');

  t.same((await gql(app, '{ history(deviceId: "a") { state kind } }')).body.data, { history: [{ state: 'close', kind: 'update' }, { state: 'open', kind: 'update' }] });
  t.same((await gql(app, '{ history(deviceId: "zz") { state } }')).body.data, { history: [] });
  const stats = await gql(app, '{ stats { devices byState silent messages { accepted } mqtt { connected } } }');
  t.same(stats.body.data, { stats: { devices: 3, byState: { close: 2, open: 1 }, silent: 0, messages: { accepted: 4 }, mqtt: { connected: false } } });

  const get = await app.inject({ url: '/graphql', query: { query: '{ stats { devices } }' } });
  t.same(get.json(), { data: { stats: { devices: 3 } } }, 'GET works for queries');
});

t.test('queries are bounded before they run', async (t) => {
  const app = await buildTestApp(t, testConfig({ GRAPHQL_MAX_ITEMS: '2500' }), { connectMqtt: false });
  await app.ready();
  for (let i = 0; i < 1100; i++) await app.devices.accept(record({ deviceId: `d${String(i).padStart(4, '0')}`, timestamp: ts }), Date.now());

  const cost = await gql(app, '{ a: devices(limit: 1000) { items { deviceId } } b: devices(limit: 1000) { items { deviceId } } c: devices(limit: 600) { items { deviceId } } }');
  t.equal(cost.status, 400);
  t.match(cost.body.errors?.[0]?.message, /could return 2600 list items, over the limit of 2500/);
  const fine = await gql(app, '{ devices(limit: 5000) { items { deviceId } } }');
  t.equal(fine.status, 200, 'a limit of 5000 counts as 1000 items');
  t.equal((fine.body.data!.devices as { items: unknown[] }).items.length, 1000, 'limit is clamped to 1000');
  const variable = await gql(app, 'query ($n: Int) { a: devices(limit: $n) { items { deviceId } } b: devices(limit: $n) { items { deviceId } } c: devices(limit: $n) { items { deviceId } } }', { n: 1 });
  t.equal(variable.status, 400, 'a variable limit counts as the most it can be');
  const fragments = await gql(app, 'fragment F on Query { devices(limit: 1000) { items { deviceId } } } { ...F x: devices(limit: 1000) { items { deviceId } } y: history(deviceId: "d0001", limit: 1000) { state } }');
  t.equal(fragments.status, 400, 'fragments and aliases count');

  t.equal((await gql(app, getIntrospectionQuery())).status, 200, "GraphiQL's introspection query passes the depth limit");
  const shallow = await buildTestApp(t, testConfig({ GRAPHQL_MAX_DEPTH: '2' }), { connectMqtt: false });
  const deep = await gql(shallow, '{ devices { items { deviceId } } }');
  t.equal(deep.status, 400);
  t.match(deep.body.errors?.[0]?.message, /query depth 3 is over the limit of 2/);

  const tokens = await gql(app, `{ ${'stats { devices } '.repeat(2000)} }`);
  t.equal(tokens.status, 400);
  t.match(tokens.body.errors?.[0]?.message, /tokens/);
  const batch = await app.inject({ method: 'POST', url: '/graphql', payload: [{ query: '{ stats { devices } }' }, { query: '{ stats { devices } }' }] });
  t.equal(batch.statusCode, 400, 'batched queries are off');
  const sub = await gql(app, 'subscription { deviceSilent { deviceId } }');
  t.equal(sub.status, 400);
  t.match(sub.body.errors?.[0]?.message, /WebSocket/);
  const syntax = await gql(app, '{ devices { ');
  t.equal(syntax.status, 400);
});

t.test('subscriptions with the graphql-ws client, fed by a real Mosquitto', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const { app } = await startBridge(t, broker);
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.ingest.subscribedOnce;
  const { port } = app.server.address() as { port: number };
  const client = wsClient(t, port);
  const all = collect(client, 'subscription { deviceUpdated { seq kind changed previousState device { deviceId state } } }');
  const onlyA = collect(client, 'subscription ($d: ID) { deviceUpdated(deviceId: $d) { device { deviceId } } }', { d: 'a' });
  const opened = collect(client, 'subscription { stateChanged(state: "open") { device { deviceId state } previousState } }');
  await withTimeout(new Promise<void>((resolve) => {
    const check = (): void => {
      if (app.subscriptions.size === 3) resolve();
      else setImmediate(check);
    };
    check();
  }), 5000, () => 'three subscriptions registered');

  const pub = await publisher(t, broker);
  const sequence: [string, string, number][] = [['a', 'close', ts], ['b', 'open', ts], ['a', 'close', ts + 1], ['a', 'open', ts + 2]];
  for (const [id, state, at] of sequence) await pub.publishAsync(TOPIC, message(id, state, at), { qos: 1 });
  const updates = await all.until(4, 'every update');
  const events = updates.map((r) => (r.data as { deviceUpdated: { seq: number; kind: string; changed: boolean; device: { deviceId: string } } }).deviceUpdated);
  t.same(events.map((e) => [e.device.deviceId, e.changed]), [['a', true], ['b', true], ['a', false], ['a', true]]);
  // not consecutive: b's open raised a cover_open alarm, an event with a seq of its own (SPEC §12)
  t.ok(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq), 'in seq order');
  t.equal((await onlyA.until(3, 'a only')).length, 3);
  const changes = await opened.until(2, 'changes into open');
  t.same(changes.map((r) => (r.data as { stateChanged: { device: { deviceId: string } } }).stateChanged.device.deviceId), ['b', 'a']);
  t.equal(onlyA.results.length, 3, 'the filter held');

  all.dispose();
  onlyA.dispose();
  opened.dispose();
});

t.test('deviceSilent over graphql-ws', async (t) => {
  let now = ts * 1000;
  const app = await buildTestApp(t, testConfig({ SILENCE_AFTER_SECONDS: '60' }), { connectMqtt: false, clock: { now: () => now } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  await app.devices.accept(record({ deviceId: 'q', timestamp: ts }), now);
  await app.devices.accept(record({ deviceId: 'r', timestamp: ts }), now);
  const client = wsClient(t, port);
  const silent = collect(client, 'subscription { deviceSilent(deviceId: "q") { deviceId silent } }');
  await withTimeout(new Promise<void>((resolve) => {
    const check = (): void => {
      if (app.subscriptions.size === 1) resolve();
      else setImmediate(check);
    };
    check();
  }), 5000, () => 'the subscription registered');
  now += 61_000;
  await app.devices.sweepSilence();
  const [result] = await silent.until(1, 'the silent device');
  t.same(result!.data, { deviceSilent: { deviceId: 'q', silent: true } });
});

t.test('the graphql-ws handshake with a raw socket: 4408 without connection_init, nothing before the ack', async (t) => {
  const clock = new ManualClock();
  const app = await buildTestApp(t, testConfig({ GRAPHQL_INIT_TIMEOUT_SECONDS: '3' }), { connectMqtt: false, clock });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const raw = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
  t.teardown(() => raw.terminate());
  const frames: string[] = [];
  raw.on('message', (d) => frames.push(d.toString()));
  const closed = new Promise<number>((resolve) => raw.on('close', (code) => resolve(code)));
  // the server's connection sets its timer when it opens
  await until(() => app.liveClients.graphql.size === 1, () => 'the graphql-ws connection on the server');
  const onServer = [...app.liveClients.graphql][0]!.socket;
  clock.advance(2999);
  t.equal(onServer.readyState, WebSocket.OPEN, 'open until GRAPHQL_INIT_TIMEOUT_SECONDS');
  clock.advance(1);
  t.equal(await closed, 4408, 'no connection_init within the timeout');
  t.same(frames, [], 'nothing was sent');

  const early = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
  t.teardown(() => early.terminate());
  const earlyFrames: string[] = [];
  early.on('message', (d) => earlyFrames.push(d.toString()));
  await new Promise((resolve) => early.once('open', resolve));
  early.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { deviceSilent { deviceId } }' } }));
  t.equal(await new Promise<number>((resolve) => early.on('close', (code) => resolve(code))), 4401);
  t.same(earlyFrames, []);

  const legacy = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-ws');
  t.teardown(() => legacy.terminate());
  t.equal(await new Promise<number>((resolve) => legacy.on('close', (code) => resolve(code))), 4406, 'the legacy subprotocol is refused');

  const big = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
  t.teardown(() => big.terminate());
  await new Promise((resolve) => big.once('open', resolve));
  big.send('x'.repeat(64 * 1024 + 1));
  t.equal(await new Promise<number>((resolve) => big.on('close', (code) => resolve(code))), 1009, 'maxPayload holds on /graphql too');
});

t.test('GraphiQL is served with local assets only', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  const page = await app.inject('/graphiql');
  t.equal(page.statusCode, 200);
  t.notMatch(page.body, /https?:\/\//, 'no CDN');
  const srcs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((src) => !src.startsWith('data:'));
  t.ok(srcs.length >= 6);
  for (const src of srcs) {
    const res = await app.inject(src);
    t.equal(res.statusCode, 200, src);
    t.ok(res.body.length > 20, `${src} has content`);
  }
  t.equal((await app.inject('/graphiql/assets/nope.js')).statusCode, 404);
});

t.test('fragments spread over and over are measured once: refused, not hung', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  const levels = 12;
  const fragments = Array.from({ length: levels }, (_, i) => `fragment F${i} on Query { ${`...F${i + 1} `.repeat(6)}}`);
  fragments.push(`fragment F${levels} on Query { devices { items { deviceId } } }`);
  const res = await gql(app, `{ ...F0 } ${fragments.join(' ')}`);
  t.equal(res.status, 400);
  t.match(res.body.errors?.map((e) => e.message).join(' '), /over the limit of 10000/);
});
