import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { once } from 'node:events';
import WebSocket from 'ws';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { buildTestApp, nextEvent, testConfig, until, withTimeout } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { WsProbe, type Frame } from '../helpers/ws.js';
import { ManualClock } from '../helpers/clock.js';
import { checkFrame } from '../helpers/asyncapi.js';

// SPEC §5 /ws, with real clients over real sockets.

const ts = Math.floor(Date.now() / 1000);

async function listening(t: Test, env: Record<string, string> = {}, clock?: ManualClock): Promise<{ app: FastifyInstance; url: string }> {
  // these count device frames: alarms off (test/streams/meta-events.test.ts has the other kinds)
  const app = await buildTestApp(t, testConfig({ ALARMS_ENABLED: 'false', ...env }), { connectMqtt: false, ...(clock ? { clock } : {}) });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return { app, url: `ws://127.0.0.1:${port}/ws` };
}

t.test('fed by a real Mosquitto: a snapshot, then updates in seq order', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const { app } = await startBridge(t, broker, { ALARMS_ENABLED: 'false' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.ingest.subscribedOnce;
  const pub = await publisher(t, broker);
  const first = nextEvent(app, (e) => e.deviceId === 'm1', 'the first message');
  await pub.publishAsync(TOPIC, message('m1', 'close', ts), { qos: 1 });
  await first;
  const { port } = app.server.address() as { port: number };
  const client = await WsProbe.open(t, `ws://127.0.0.1:${port}/ws`);
  const snapshot = await client.next(() => true, 'the snapshot');
  t.equal(snapshot.type, 'snapshot', 'the first frame is the snapshot');
  t.same((snapshot.devices as { deviceId: string }[]).map((d) => d.deviceId), ['m1']);
  t.equal(snapshot.total, 1);
  t.equal(snapshot.truncated, false);
  t.same(checkFrame('wsSnapshot', snapshot), [], 'the snapshot matches asyncapi.yaml');

  for (let i = 1; i <= 20; i++) await pub.publishAsync(TOPIC, message('m1', i % 2 ? 'open' : 'close', ts + i), { qos: 1 });
  const updates: Frame[] = [];
  for (let i = 1; i <= 20; i++) updates.push(await client.next((f) => f.type === 'update', `update ${i}`));
  const seqs = updates.map((f) => f.seq as number);
  t.same(seqs, seqs.map((_, i) => seqs[0]! + i), 'consecutive seqs, in order');
  t.equal((updates[0]!.device as { state: string }).state, 'open');
  t.equal(updates[0]!.previousState, 'close');
  t.equal(updates[0]!.changed, true);
  for (const update of updates) t.same(checkFrame('wsUpdate', update), [], 'an update matches asyncapi.yaml');
});

t.test('filters: query, then a subscribe frame that replaces them with a fresh snapshot', async (t) => {
  const { app, url } = await listening(t);
  for (const [id, state] of [['a', 'open'], ['b', 'close'], ['c', 'open']]) {
    await app.devices.accept(record({ deviceId: id, state, timestamp: ts }), Date.now());
  }
  const client = await WsProbe.open(t, `${url}?state=open`);
  const snapshot = await client.next();
  t.same((snapshot.devices as { deviceId: string }[]).map((d) => d.deviceId), ['a', 'c']);
  await app.devices.accept(record({ deviceId: 'b', state: 'close', timestamp: ts + 1 }), Date.now());
  await app.devices.accept(record({ deviceId: 'a', state: 'open', timestamp: ts + 1 }), Date.now());
  const update = await client.next((f) => f.type === 'update');
  t.equal((update.device as { deviceId: string }).deviceId, 'a', 'b (close) was filtered out');

  const subscribe = { type: 'subscribe', deviceIds: ['b'], states: null };
  t.same(checkFrame('wsSubscribe', subscribe), [], 'the frame sent matches asyncapi.yaml');
  client.send(subscribe);
  const fresh = await client.next((f) => f.type === 'snapshot', 'the fresh snapshot');
  t.same((fresh.devices as { deviceId: string }[]).map((d) => d.deviceId), ['b']);
  await app.devices.accept(record({ deviceId: 'c', state: 'open', timestamp: ts + 2 }), Date.now());
  await app.devices.accept(record({ deviceId: 'b', state: 'open', timestamp: ts + 2 }), Date.now());
  const next = await client.next((f) => f.type === 'update');
  t.equal((next.device as { deviceId: string }).deviceId, 'b');

  const bare = await WsProbe.open(t, `${url}?snapshot=false&deviceId=a,c`);
  await app.devices.accept(record({ deviceId: 'c', state: 'close', timestamp: ts + 3 }), Date.now());
  const first = await bare.next();
  t.equal(first.type, 'update', 'snapshot=false: updates only');
  t.equal((first.device as { deviceId: string }).deviceId, 'c');
});

t.test('a silent device reaches /ws', async (t) => {
  let now = ts * 1000;
  const app = await buildTestApp(t, testConfig({ SILENCE_AFTER_SECONDS: '60', ALARMS_ENABLED: 'false' }), { connectMqtt: false, clock: { now: () => now } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  await app.devices.accept(record({ deviceId: 'q', timestamp: ts }), now);
  const client = await WsProbe.open(t, `ws://127.0.0.1:${port}/ws?snapshot=false`);
  now += 61_000;
  await app.devices.sweepSilence();
  const frame = await client.next((f) => f.type === 'silent');
  t.equal((frame.device as { silent: boolean }).silent, true);
  t.same(checkFrame('wsSilent', frame), [], 'matches asyncapi.yaml');
});

t.test('bad client frames get an error frame and the connection stays', async (t) => {
  const { app, url } = await listening(t);
  const client = await WsProbe.open(t, `${url}?snapshot=false`);
  const cases: [unknown, RegExp][] = [
    ['not json', /^frame is not JSON$/],
    ['{"type":"hello"}', /^invalid frame: type must be 'subscribe'$/],
    [{ type: 'subscribe', deviceIds: 'a' }, /^invalid frame: deviceIds must be array,null$/],
    [{ type: 'subscribe', deviceIds: [''] }, /^invalid frame: deviceIds\.0 must NOT have fewer than 1 characters$/],
    [{ type: 'subscribe', states: Array.from({ length: 1001 }, (_, i) => `s${i}`) }, /more than 1000 items/],
    [{ type: 'subscribe', extra: 1 }, /must NOT have additional properties/],
    ['{"type":"subscribe","__proto__":{"x":1}}', /additional properties/],
    ['[]', /^invalid frame: the frame must be object$/],
  ];
  for (const [frame, expected] of cases) {
    client.send(frame);
    const error = await client.next();
    t.same(checkFrame('wsError', error), []);
    t.match(error.message as string, expected, String(typeof frame === 'string' ? frame : JSON.stringify(frame)).slice(0, 60));
  }
  client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
  t.match((await client.next()).message as string, /not binary/);
  await app.devices.accept(record({ deviceId: 'still', timestamp: ts }), Date.now());
  t.equal((await client.next()).type, 'update', 'the connection still works');

  client.socket.send('x'.repeat(64 * 1024 + 1));
  t.equal((await client.closed).code, 1009, 'a frame over 64 KiB closes with 1009');
});

t.test('bad query parameters are refused before the upgrade; plain HTTP gets 426', async (t) => {
  const { app, url } = await listening(t);
  await t.rejects(WsProbe.open(t, `${url}?snapshot=maybe`), /HTTP 400/);
  const many = Array.from({ length: 1001 }, (_, i) => `d${i}`).join(',');
  await t.rejects(WsProbe.open(t, `${url}?deviceId=${many}`), /HTTP 400/);
  const plain = await app.inject('/ws');
  t.equal(plain.statusCode, 426);
  t.equal(plain.json().code, 'BRG_ERR_UPGRADE_REQUIRED');
  const filter = await app.inject(`/ws?deviceId=${'x'.repeat(129)}`);
  t.equal(filter.statusCode, 400);
  t.equal(filter.json().code, 'BRG_ERR_INVALID_FILTER');
});

t.test('pings keep live peers and drop dead ones', async (t) => {
  const clock = new ManualClock();
  const { app, url } = await listening(t, { WS_PING_SECONDS: '30' }, clock);
  /** The server's side of the peer that connected last. */
  const serverSide = async (n: number): Promise<WebSocket> => {
    await until(() => app.liveClients.ws.size === n, () => `${app.liveClients.ws.size} /ws clients on the server, expected ${n}`);
    return [...app.liveClients.ws].at(-1)!.socket;
  };
  const live = await WsProbe.open(t, `${url}?snapshot=false`);
  const liveOnServer = await serverSide(1);
  const dead = await WsProbe.open(t, `${url}?snapshot=false`, { autoPong: false });
  const deadOnServer = await serverSide(2);
  const deadGone = once(deadOnServer, 'close');
  /** One period of WS_PING_SECONDS; resolves once the live peer's pong is back at the server. */
  const period = async (): Promise<void> => {
    const pinged = once(live.socket, 'ping');
    const ponged = once(liveOnServer, 'pong');
    clock.advance(30_000);
    await Promise.all([pinged, ponged]);
  };
  await period();
  t.equal(dead.socket.readyState, WebSocket.OPEN, 'one unanswered ping is no reason to drop a peer');
  await period();
  const { code } = await dead.closed;
  t.equal(code, 1006, 'a peer that never answered the previous ping is terminated');
  await deadGone;
  await period();
  t.equal(live.socket.readyState, WebSocket.OPEN, 'a peer that answers stays');
  t.equal(app.liveClients.ws.size, 1, 'the dead one is gone from the server');
});

t.test('a client that never reads: conflated, then closed and cut; the others are not slowed', async (t) => {
  const clock = new ManualClock();
  const { app, url } = await listening(t, { WS_MAX_BUFFERED_BYTES: '262144', WS_SLOW_CLOSE_SECONDS: '30' }, clock);
  const slow = await WsProbe.open(t, `${url}?snapshot=false`);
  const fast = await WsProbe.open(t, `${url}?snapshot=false`);
  // stop reading: the kernel buffers fill, then the server's
  (slow.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  const received: number[] = [];
  fast.socket.on('message', (data) => received.push((JSON.parse(data.toString()) as { seq: number }).seq));

  const devices = 100;
  const total = 50_000;
  const pad = 'x'.repeat(500);
  let maxPending = 0;
  let maxBuffered = 0;
  const server = (): { pending: Map<string, unknown> | null; socket: WebSocket } =>
    [...app.liveClients.ws].find((c) => c.behindSince !== null) ?? { pending: null, socket: { bufferedAmount: 0 } as WebSocket };
  for (let i = 0; i < total; i++) {
    await app.devices.accept(record({ deviceId: `d${i % devices}`, timestamp: ts + Math.floor(i / devices) + 1, state: i % 3 ? 'open' : 'close', attributes: { pad } }), Date.now());
    if (i % 50 === 49) {
      const c = server();
      maxPending = Math.max(maxPending, c.pending?.size ?? 0);
      maxBuffered = Math.max(maxBuffered, c.socket.bufferedAmount);
      // let the sockets move, as between MQTT messages: the fast client reads, the slow one does not
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  t.ok(maxPending > 0, 'the slow client was conflated');
  t.ok(maxPending <= devices, `at most one waiting update per device (${maxPending})`);
  t.ok(maxBuffered < 262_144 + 64 * 1024, `the server buffers a bounded amount for it (${maxBuffered} bytes)`);

  // closed once behind for WS_SLOW_CLOSE_SECONDS (the sweep sees it: src/live/clients.ts)
  const slowOnServer = [...app.liveClients.ws].find((c) => c.behindSince !== null)!.socket;
  clock.advance(30_000);
  t.equal(slowOnServer.readyState, WebSocket.OPEN, 'behind for WS_SLOW_CLOSE_SECONDS, not longer: still open');
  clock.advance(1000);
  t.equal(slowOnServer.readyState, WebSocket.CLOSING, 'behind for longer: closed');
  // a peer that read nothing since is cut (a second later, on the process's timers), so the 1013
  // queued behind its unread bytes never reaches it: it sees 1006 (asyncapi.yaml says so)
  await until(() => app.liveClients.ws.size === 1, () => `${app.liveClients.ws.size} /ws clients on the server, expected 1`);
  t.pass('the slow client is gone from the server, its buffer with it');
  (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
  const { code } = await slow.closed;
  t.equal(code, 1006, 'a peer that read nothing after the close frame was cut');
  const last = app.devices.events.lastSeq;
  await fast.next((f) => f.seq === last, 'the last update at the fast client', 30_000);
  t.equal(received.length, total, 'the fast client got every update');
  t.ok(received.every((seq, i) => i === 0 || seq === received[i - 1]! + 1), 'in seq order, none twice');
});

t.test('app.close() closes the clients with 1001', async (t) => {
  const { app, url } = await listening(t);
  const client = await WsProbe.open(t, `${url}?snapshot=false`);
  await app.close();
  t.equal((await client.closed).code, 1001);
});

t.test('a big snapshot, then updates: none is stuck behind it', async (t) => {
  const { app, url } = await listening(t, { WS_MAX_BUFFERED_BYTES: '4096' });
  const pad = 'x'.repeat(1000);
  for (let i = 0; i < 3000; i++) await app.devices.accept(record({ deviceId: `big${i}`, timestamp: ts, attributes: { pad } }), Date.now());
  const client = await WsProbe.open(t, url);
  const snapshot = await client.next((f) => f.type === 'snapshot', 'the snapshot');
  t.equal((snapshot.devices as unknown[]).length, 3000);
  await app.devices.accept(record({ deviceId: 'after', timestamp: ts + 1 }), Date.now());
  const update = await client.next((f) => f.type === 'update', 'the update after the snapshot');
  t.equal((update.device as { deviceId: string }).deviceId, 'after');
});

t.test('a snapshot of several states over many pages comes whole, in deviceId order', async (t) => {
  const { app, url } = await listening(t);
  const states = ['open', 'close', 'offline'];
  for (let i = 0; i < 450; i++) await app.devices.accept(record({ deviceId: `s${String(i).padStart(3, '0')}`, state: states[i % 3]!, timestamp: ts }), Date.now());
  const client = await WsProbe.open(t, `${url}?state=open,close`);
  const snapshot = await client.next((f) => f.type === 'snapshot', 'the snapshot');
  const ids = (snapshot.devices as { deviceId: string; state: string }[]).map((d) => d.deviceId);
  t.equal(ids.length, 300, 'every open and close device');
  t.equal(snapshot.total, 300);
  t.same(ids, [...ids].sort(), 'merged in deviceId order');
  t.equal(new Set(ids).size, 300, 'none twice');
  const limited = await WsProbe.open(t, `${url}?state=offline,open`);
  const part = await limited.next((f) => f.type === 'snapshot', 'the second snapshot');
  t.equal((part.devices as unknown[]).length, 300);
});

t.test('subscribe frames racing each other: the last filter wins, and updates keep coming', async (t) => {
  const { app, url } = await listening(t);
  for (let i = 0; i < 200; i++) await app.devices.accept(record({ deviceId: `r${i}`, timestamp: ts }), Date.now());
  const client = await WsProbe.open(t, `${url}?snapshot=false`);
  client.send({ type: 'subscribe', deviceIds: Array.from({ length: 1000 }, (_, i) => `r${i}`), states: null });
  client.send({ type: 'subscribe', deviceIds: ['r7'], states: null });
  const last = await client.next((f) => f.type === 'snapshot' && (f.devices as unknown[]).length === 1, 'the snapshot of the last filter');
  t.same((last.devices as { deviceId: string }[]).map((d) => d.deviceId), ['r7']);
  await app.devices.accept(record({ deviceId: 'r3', timestamp: ts + 1 }), Date.now());
  await app.devices.accept(record({ deviceId: 'r7', timestamp: ts + 1 }), Date.now());
  const update = await client.next((f) => f.type === 'update', 'an update after the subscribes');
  t.equal((update.device as { deviceId: string }).deviceId, 'r7', 'only the last filter holds');
  t.ok(client.frames.filter((f) => f.type === 'snapshot').length <= 2, 'at most one snapshot per subscribe');
});

t.test('a client that floods subscribe frames and never reads is closed, not buffered for', async (t) => {
  const { app, url } = await listening(t, { WS_MAX_BUFFERED_BYTES: '65536' });
  const pad = 'x'.repeat(1000);
  for (let i = 0; i < 500; i++) await app.devices.accept(record({ deviceId: `f${i}`, timestamp: ts, attributes: { pad } }), Date.now());
  const client = await WsProbe.open(t, `${url}?snapshot=false`);
  (client.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  let maxBuffered = 0;
  for (let i = 0; i < 300 && client.socket.readyState === WebSocket.OPEN; i++) {
    client.send({ type: 'subscribe', deviceIds: null, states: null });
    await new Promise((resolve) => setImmediate(resolve));
    for (const c of app.liveClients.ws) maxBuffered = Math.max(maxBuffered, c.socket.bufferedAmount);
  }
  t.ok(maxBuffered < 2 * 1024 * 1024, `the server buffered at most ${maxBuffered} bytes for it`);
  (client.socket as unknown as { _socket: { resume(): void } })._socket.resume();
  t.equal((await client.closed).code, 1013);
});

t.test('app.close() does not wait for a peer that does not read', async (t) => {
  const { app, url } = await listening(t);
  const client = await WsProbe.open(t, `${url}?snapshot=false`);
  (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
  const started = Date.now();
  await withTimeout(app.close(), 5000, () => 'app.close()');
  t.ok(Date.now() - started < 5000);
});

t.test('an upgrade to a path that is no WebSocket route gets 404, and its socket does not linger', async (t) => {
  const { app, url } = await listening(t);
  await t.rejects(WsProbe.open(t, url.replace('/ws', '/nope')), /HTTP 404/);
  await t.rejects(WsProbe.open(t, url.replace('/ws', '/devices')), /HTTP 404|HTTP 200/);
  await withTimeout(app.close(), 5000, () => 'app.close() with refused upgrades behind');
  t.pass('closed');
});
