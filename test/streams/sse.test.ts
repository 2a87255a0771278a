import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { Deps } from '../../src/app.js';
import type { DeviceEvent } from '../../src/devices/events.js';
import { sseBlock } from '../../src/devices/wire.js';
import { record } from '../helpers/records.js';
import { buildTestApp, testConfig, until, withTimeout } from '../helpers/app.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { LogCapture } from '../helpers/log.js';
import { checkFrame, checkFrameHeaders } from '../helpers/asyncapi.js';
import { SseParser, type SseBlock as Frame } from '../helpers/sse.js';
import { ManualClock } from '../helpers/clock.js';

// SPEC §5, Server-Sent Events: GET /events over real sockets, read by a streaming client.

/** A streaming /events client: every block it received, in order, and waits on what comes. */
class SseClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  readonly #parser = new SseParser();
  readonly #waiters = new Set<() => void>();

  constructor(
    readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.on('data', (chunk: Buffer) => {
      this.frames.push(...this.#parser.push(chunk));
      for (const waiter of this.#waiters) waiter();
    });
    res.on('error', () => {}); // an aborted stream is what some tests wait for: `closed` says it
    this.closed = new Promise((resolve) => res.once('close', resolve));
  }

  /** The frames that are events (update, silent, reset), without the opening and comments. */
  get events(): Frame[] {
    return this.frames.filter((f) => f.event !== null);
  }

  ids(): number[] {
    return this.events.filter((f) => f.event !== 'reset').map((f) => Number(f.id));
  }

  waitFor(match: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (match()) return Promise.resolve();
    let waiter = (): void => {};
    const matched = new Promise<void>((resolve) => {
      waiter = () => {
        if (match()) resolve();
      };
      this.#waiters.add(waiter);
    });
    const got = (): string => {
      const last = this.frames.at(-1);
      return `${what}; got ${this.events.length} events, the last block id ${last?.id ?? '-'} event ${last?.event ?? '-'}`;
    };
    return withTimeout(matched, timeoutMs, got).finally(() => this.#waiters.delete(waiter));
  }

  waitForEvents(n: number, what = `${n} events`): Promise<void> {
    return this.waitFor(() => this.events.length >= n, what);
  }

  close(): void {
    this.req.destroy();
  }
}

function portOf(app: FastifyInstance): number {
  return (app.server.address() as AddressInfo).port;
}

/** Opens /events and resolves once the headers are in: by then the server has subscribed. */
async function connect(t: Test, app: FastifyInstance, path = '/events', headers: Record<string, string> = {}): Promise<SseClient> {
  const req = http.get({ host: '127.0.0.1', port: portOf(app), path, headers, agent: false });
  t.teardown(() => req.destroy());
  const [res] = (await withTimeout(once(req, 'response'), 10_000, () => `the response of ${path}`)) as [IncomingMessage];
  return new SseClient(req, res);
}

async function listening(t: Test, env: Record<string, string> = {}, deps: Partial<Deps> = {}): Promise<FastifyInstance> {
  // these count and replay device events by seq: alarms off (test/streams/meta-events.test.ts has the other kinds)
  const app = await buildTestApp(t, testConfig({ ALARMS_ENABLED: 'false', ...env }), { connectMqtt: false, ...deps });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app;
}

let timestamp = 1_700_000_000;

/** Feeds a record straight into the bridge; its event. */
async function feed(app: FastifyInstance, deviceId: string, state: string, attributes?: Record<string, string>): Promise<DeviceEvent> {
  const rec = record({ deviceId, state, timestamp: ++timestamp });
  if (attributes) rec.attributes = { ...rec.attributes, ...attributes };
  const outcome = await app.devices.accept(rec, Date.now());
  if (outcome.kind !== 'update') throw new Error(`expected an update, got ${outcome.kind}`);
  return outcome.event;
}

type Data = { device: { deviceId: string; state: string; silent: boolean }; previousState?: string | null; changed?: boolean };
const dataOf = (frame: Frame): Data => JSON.parse(frame.data ?? 'null') as Data;

t.test('updates from a real Mosquitto reach /events with id = seq, in order, uncompressed', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const { app } = await startBridge(t, broker, { ALARMS_ENABLED: 'false' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.ingest.subscribedOnce;
  const seen: DeviceEvent[] = [];
  t.teardown(app.devices.events.subscribe((e) => seen.push(e)));

  const client = await connect(t, app, '/events', { 'accept-encoding': 'gzip, deflate, br' });
  t.equal(client.res.statusCode, 200);
  t.match(client.res.headers['content-type'], /^text\/event-stream/);
  t.equal(client.res.headers['cache-control'], 'no-cache');
  t.equal(client.res.headers['x-accel-buffering'], 'no');
  t.equal(client.res.headers['content-encoding'], undefined, 'never compressed');
  await client.waitFor(() => client.frames.length >= 1, 'the opening');
  t.equal(client.frames[0]?.retry, '3000', 'the stream opens at once');

  const pub = await publisher(t, broker);
  const ts = Math.floor(Date.now() / 1000);
  for (const [deviceId, state, at] of [['m1', 'open', ts], ['m1', 'close', ts + 1], ['m2', 'open', ts], ['m1', 'close', ts + 2]] as const) {
    await pub.publishAsync(TOPIC, message(deviceId, state, at), { qos: 1 });
  }
  await client.waitForEvents(4);
  t.same(client.ids(), seen.map((e) => e.seq), 'id is the seq, in seq order');
  t.same(
    client.events.map((f) => {
      const data = dataOf(f);
      return [f.event, data.device.deviceId, data.device.state, data.previousState, data.changed];
    }),
    [
      ['update', 'm1', 'open', null, true],
      ['update', 'm1', 'close', 'open', true],
      ['update', 'm2', 'open', null, true],
      ['update', 'm1', 'close', 'close', false],
    ],
  );
  t.same(dataOf(client.events[3]!).device, (await app.inject('/devices/m1')).json(), 'the device as REST serves it');
  for (const frame of client.events) {
    t.same(checkFrame('sseUpdate', dataOf(frame)), [], `event ${frame.id} is an sseUpdate of asyncapi.yaml`);
    t.same(checkFrameHeaders('sseUpdate', { id: frame.id, event: frame.event }), []);
  }
});

t.test('deviceId and state filters: only matching events', async (t) => {
  const app = await listening(t);
  const both = await connect(t, app, '/events?deviceId=a,b&state=open');
  const ids = await connect(t, app, '/events?deviceId=c');
  for (const [deviceId, state] of [['a', 'open'], ['b', 'close'], ['c', 'open'], ['a', 'close'], ['b', 'open'], ['c', 'close']]) {
    await feed(app, deviceId!, state!);
  }
  await both.waitForEvents(2);
  await ids.waitForEvents(2);
  const show = (c: SseClient): string[] => c.events.map((f) => `${dataOf(f).device.deviceId}:${dataOf(f).device.state}`);
  t.same(show(both), ['a:open', 'b:open']);
  t.same(show(ids), ['c:open', 'c:close']);
  const sentinel = await feed(app, 'a', 'open');
  await both.waitFor(() => both.ids().includes(sentinel.seq), 'the sentinel');
  t.same(show(both), ['a:open', 'b:open', 'a:open'], 'nothing else arrived meanwhile');
  t.equal(ids.events.length, 2);
});

t.test('a keep-alive comment every SSE_KEEPALIVE_SECONDS', async (t) => {
  const clock = new ManualClock();
  const app = await listening(t, { SSE_KEEPALIVE_SECONDS: '15' }, { clock });
  const client = await connect(t, app);
  const keepAlives = (): Frame[] => client.frames.filter((f) => f.comments.includes('keep-alive'));
  clock.advance(14_999);
  // an event written after the clock moved: whatever that move wrote arrives before it
  await feed(app, 'k', 'open');
  await client.waitForEvents(1, 'the event after 14.999 s');
  t.equal(keepAlives().length, 0, 'none before SSE_KEEPALIVE_SECONDS');
  clock.advance(1);
  await client.waitFor(() => keepAlives().length === 1, 'a keep-alive comment at 15 s');
  clock.advance(15_000);
  await client.waitFor(() => keepAlives().length === 2, 'another at 30 s');
  t.ok(keepAlives().every((f) => f.event === null && f.data === null), 'comments are not events');
});

t.test('Last-Event-ID replays exactly what was missed, then live events', async (t) => {
  const app = await listening(t);
  const first = await connect(t, app);
  for (const id of ['r1', 'r2', 'r3']) await feed(app, id, 'open');
  await first.waitForEvents(3);
  const lastSeen = first.events.at(-1)!.id!;
  first.close();
  await first.closed;

  const missed: number[] = [];
  for (const id of ['r4', 'r5', 'r6']) missed.push((await feed(app, id, 'open')).seq);
  const again = await connect(t, app, '/events', { 'last-event-id': lastSeen });
  await again.waitForEvents(3, 'the replay');
  const live = await feed(app, 'r7', 'close');
  await again.waitForEvents(4, 'the live event');
  t.same(again.ids(), [...missed, live.seq], 'each missed event once, then live');
  t.same(again.events.map((f) => dataOf(f).device.deviceId), ['r4', 'r5', 'r6', 'r7']);

  const filtered = await connect(t, app, '/events?deviceId=r5,r7', { 'last-event-id': lastSeen });
  await filtered.waitForEvents(2);
  t.same(filtered.events.map((f) => dataOf(f).device.deviceId), ['r5', 'r7'], 'the replay is filtered too');

  const current = await connect(t, app, '/events', { 'last-event-id': String(app.devices.events.lastSeq) });
  const next = await feed(app, 'r8', 'open');
  await current.waitForEvents(1);
  t.same(current.ids(), [next.seq], 'up to date: nothing replayed');
});

t.test('clients connecting with Last-Event-ID while events flow miss none and get none twice', async (t) => {
  const app = await listening(t);
  const start = (await feed(app, 'flow', 'open')).seq;
  let feeding = true;
  const feeder = (async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- the test turns feeding off below while this loop awaits
    for (let i = 0; feeding; i++) {
      await feed(app, `flow-${i % 7}`, i % 2 ? 'open' : 'close');
      if (i % 5 === 0) await new Promise((resolve) => setImmediate(resolve)); // let connections in
    }
  })();
  const clients: [number, SseClient][] = [];
  for (let i = 0; i < 20; i++) {
    const from = start + i * 3;
    clients.push([from, await connect(t, app, '/events', { 'last-event-id': String(from) })]);
  }
  feeding = false;
  await feeder;
  const last = app.devices.events.lastSeq;
  for (const [from, client] of clients) {
    await client.waitFor(() => client.ids().at(-1) === last, `events ${from + 1} to ${last}`);
    const ids = client.ids();
    t.same(ids, Array.from({ length: last - from }, (_, k) => from + 1 + k), `from ${from}: contiguous, no gap, no repeat`);
  }
  t.ok(last > start + 60, `events flowed during the connections (${last - start})`);
});

t.test('Last-Event-ID older than the buffer, or newer than the newest seq: reset first; not a number: ignored', async (t) => {
  const app = await listening(t, { EVENT_BUFFER: '5' });
  for (let i = 0; i < 10; i++) await feed(app, `b${i}`, 'open');
  const stale: [string, (lastSeq: number) => string][] = [
    ['the first seq', () => '1'],
    ['one below the buffer', (lastSeq) => String(lastSeq - 6)],
    ['above the newest seq', (lastSeq) => String(lastSeq + 1)],
    ['far above it', () => '99999999999999999999'],
  ];
  for (const [what, idFrom] of stale) {
    const lastSeq = app.devices.events.lastSeq;
    const client = await connect(t, app, '/events', { 'last-event-id': idFrom(lastSeq) });
    await client.waitForEvents(1, `the reset for ${what}`);
    const reset = client.events[0]!;
    t.equal(reset.event, 'reset', `${what}: reset`);
    t.same(JSON.parse(reset.data!), { lastSeq }, 'the client learns where the stream stands');
    t.equal(reset.id, null, 'no id line: the client keeps its own');
    t.same(checkFrame('sseReset', JSON.parse(reset.data!)), [], 'an sseReset of asyncapi.yaml');
    t.same(checkFrameHeaders('sseReset', { event: reset.event }), []);
    const live = await feed(app, 'after-reset', what);
    await client.waitForEvents(2);
    t.same(client.ids(), [live.seq], 'then live events, nothing replayed');
  }

  const oldest = await connect(t, app, '/events', { 'last-event-id': String(app.devices.events.lastSeq - 5) });
  await oldest.waitForEvents(5);
  t.equal(oldest.events[0]?.event, 'update', 'the whole buffer is still a replay, not a reset');

  for (const id of ['abc', '-1', '1.5', '0x10', '']) {
    const client = await connect(t, app, '/events', { 'last-event-id': id });
    const live = await feed(app, 'ignored', `x${id}`);
    await client.waitForEvents(1);
    t.same(client.events.map((f) => [f.event, Number(f.id)]), [['update', live.seq]], `id ${JSON.stringify(id)}: ignored, live only`);
  }
  const tooLong = await fetch(`http://127.0.0.1:${portOf(app)}/events`, { headers: { 'last-event-id': '1'.repeat(65) } });
  t.equal(tooLong.status, 400, 'a Last-Event-ID over 64 characters is refused (openapi.yaml)');
  t.equal((await tooLong.json()).code, 'FST_ERR_VALIDATION');
});

t.test('a device falling silent reaches /events as a silent event', async (t) => {
  let now = 1_800_000_000_000;
  const app = await listening(t, { SILENCE_AFTER_SECONDS: '60' }, { clock: { now: () => now } });
  await app.devices.accept(record({ deviceId: 'quiet', timestamp: now / 1000 }), now);
  await app.devices.accept(record({ deviceId: 'other', timestamp: now / 1000 }), now);
  const client = await connect(t, app, '/events?deviceId=quiet');
  now += 61_000;
  t.equal(await app.devices.sweepSilence(), 2);
  await client.waitForEvents(1);
  const frame = client.events[0]!;
  t.equal(frame.event, 'silent');
  t.equal(Number(frame.id), app.devices.events.lastSeq - 1, 'only the filtered device');
  const data = dataOf(frame);
  t.same(Object.keys(data), ['device'], 'a silent event carries only the device');
  t.equal(data.device.deviceId, 'quiet');
  t.equal(data.device.silent, true);
  t.same(checkFrame('sseSilent', data), [], 'an sseSilent of asyncapi.yaml');
  t.same(checkFrameHeaders('sseSilent', { id: frame.id, event: frame.event }), []);
});

t.test('a client that never reads stops at WS_MAX_BUFFERED_BYTES and is dropped when its place leaves the buffer; the others get every event', async (t) => {
  const log = new LogCapture();
  const maxBufferedBytes = 65_536;
  const app = await listening(t, { WS_MAX_BUFFERED_BYTES: String(maxBufferedBytes), LOG_LEVEL: 'info' }, { logStream: log });
  const streams = app.liveClients.sse;

  // The slow client: a raw socket that reads the response head and then nothing more.
  const slow = net.connect(portOf(app), '127.0.0.1');
  t.teardown(() => slow.destroy());
  slow.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const [head] = (await withTimeout(once(slow, 'data'), 10_000, () => 'the response head')) as [Buffer];
  slow.pause();
  t.match(head.toString('latin1'), /^HTTP\/1\.1 200 /);
  const slowClosed = once(slow, 'close');

  const normal = await connect(t, app);
  t.equal(streams.size, 2);

  const blob = 'x'.repeat(2000); // about 2.3 KB a block: 20 blocks stay within the bound for the reader
  const dropped = (): boolean => log.lines.some((l) => /too slow/.test(l.msg));
  let sent = 0;
  let lastSeq = 0;
  let blockBytes = 0;
  while (sent < 20_000 || !dropped()) {
    if (sent > 200_000) break;
    for (let i = 0; i < 20; i++, sent++) {
      const event = await feed(app, `load-${sent % 50}`, sent % 2 ? 'open' : 'close', { blob });
      lastSeq = event.seq;
      blockBytes = Math.max(blockBytes, Buffer.byteLength(sseBlock(event)));
    }
    // the reader keeps up: wait for what it was sent, so only the slow one falls behind
    await normal.waitFor(() => normal.events.at(-1)?.id === String(lastSeq), `event ${lastSeq}`);
  }
  t.ok(dropped(), `the slow client was dropped (after ${sent} events)`);
  const line = log.lines.find((l) => /too slow/.test(l.msg))!;
  t.equal(line.level, 30, 'logged at info');
  t.equal(line.client, '127.0.0.1', 'with the client address');
  t.ok((line.bufferedBytes as number) <= maxBufferedBytes + blockBytes, `its buffer stayed bounded (${String(line.bufferedBytes)} bytes)`);
  t.equal(streams.size, 1, 'it is no longer a live client');
  t.ok(sent > app.devices.events.capacity, `not before its place left the buffer (${sent} events, EVENT_BUFFER ${app.devices.events.capacity})`);

  slow.resume(); // read what the kernel holds: then the end of the connection
  await withTimeout(slowClosed, 10_000, () => 'the slow client to see its connection closed');
  t.pass('the slow client sees its connection end');

  const ids = normal.ids();
  t.equal(ids.length, sent, 'the reader got every event');
  t.ok(
    ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1),
    'in seq order, no gap',
  );
});

t.test('a replay bigger than the bound is not held against the client; the bound is back once it drained', async (t) => {
  const log = new LogCapture();
  const maxBufferedBytes = 65_536;
  const app = await listening(t, { WS_MAX_BUFFERED_BYTES: String(maxBufferedBytes), LOG_LEVEL: 'info' }, { logStream: log });
  const blob = 'z'.repeat(2000);
  const from = app.devices.events.lastSeq;
  for (let i = 0; i < 1000; i++) await feed(app, `replayed-${i % 20}`, i % 2 ? 'open' : 'close', { blob });
  const dropped = (): boolean => log.lines.some((l) => /too slow/.test(l.msg));

  // a client that has not read yet: of its replay of about 2.3 MB, the server holds one bound
  const req = http.get({ host: '127.0.0.1', port: portOf(app), path: '/events', headers: { 'last-event-id': String(from) }, agent: false });
  t.teardown(() => req.destroy());
  const [res] = (await withTimeout(once(req, 'response'), 10_000, () => 'the response')) as [IncomingMessage];
  for (let i = 0; i < 5; i++) await feed(app, `live-${i}`, 'open', { blob });
  t.notOk(dropped(), 'live events behind an undrained replay do not drop the client');
  const [stream] = app.liveClients.sse;
  t.ok(stream!.unsentBytes() <= maxBufferedBytes + 4096, `the replay is written as the socket drains (${stream!.unsentBytes()} bytes held)`);

  const client = new SseClient(req, res);
  const last = app.devices.events.lastSeq;
  await client.waitFor(() => client.ids().at(-1) === last, 'the replay and the live events');
  t.same(client.ids(), Array.from({ length: last - from }, (_, k) => from + 1 + k), 'all of them, in order');

  // drained: the plain bound holds again for this client
  res.pause();
  for (let i = 0; !dropped(); i++) {
    if (i > 100_000) throw new Error('never dropped');
    await feed(app, `after-${i % 20}`, i % 2 ? 'open' : 'close', { blob });
    // a turn of the event loop, as between MQTT messages: the batch of events is delivered
    if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
  }
  const line = log.lines.find((l) => /too slow/.test(l.msg))!;
  t.ok((line.bufferedBytes as number) <= maxBufferedBytes + 4096, `dropped at the plain bound (${String(line.bufferedBytes)} bytes)`);
  res.resume();
  await withTimeout(client.closed, 10_000, () => 'the dropped client to see the end');
});

t.test('bad filters: 400 in the shared error shape; a client that leaves leaves no listener', async (t) => {
  const app = await listening(t);
  const base = `http://127.0.0.1:${portOf(app)}/events`;
  const refused = async (query: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${base}?${query}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const garbage = Buffer.from(Array.from({ length: 7_500 }, (_, i) => (i * 7919) % 256)).toString('base64'); // 10 KB
  for (const [query, code, message] of [
    [`deviceId=${encodeURIComponent(garbage)}`, 'BRG_ERR_INVALID_FILTER', /deviceId longer than 128/],
    [`deviceId=${Array.from({ length: 1001 }, (_, i) => i).join(',')}`, 'BRG_ERR_INVALID_FILTER', /more than 1000 values of deviceId/],
    [`state=${'o'.repeat(65)}`, 'BRG_ERR_INVALID_FILTER', /state longer than 64/],
    [`state=${'o'.repeat(4097)}`, 'FST_ERR_VALIDATION', /querystring\/state/],
    ['deviceId=', 'FST_ERR_VALIDATION', /querystring\/deviceId/],
  ] as const) {
    const { status, body } = await refused(query);
    t.equal(status, 400, query.slice(0, 40));
    t.equal(body.code, code);
    t.match(body.message, message);
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode']);
  }
  // 100 KB of garbage does not fit in Node's 16 KiB request head: refused before routing, in the same shape
  const huge = await refused(`deviceId=${encodeURIComponent(garbage.repeat(10))}`);
  t.equal(huge.status, 431);
  t.same(Object.keys(huge.body).sort(), ['error', 'message', 'statusCode']);

  const client = await connect(t, app);
  t.equal(app.liveClients.sse.size, 1);
  await feed(app, 'leaving', 'open');
  await client.waitForEvents(1);
  client.close();
  await client.closed;
  // the server learns of it a moment later: wait on that, not on a sleep
  await until(() => app.liveClients.sse.size === 0, () => `${app.liveClients.sse.size} SSE clients, expected none`);
  t.pass('the client that left is gone');
});

t.test('HEAD /events: the headers, no stream, and the connection serves the next request', async (t) => {
  const app = await listening(t);
  const socket = net.connect(portOf(app), '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.setEncoding('latin1');
  let received = '';
  const got = (pattern: RegExp): Promise<void> =>
    withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (!pattern.test(received)) return;
          socket.off('data', onData);
          resolve();
        };
        const onData = (chunk: string): void => {
          received += chunk;
          check();
        };
        socket.on('data', onData);
        check();
      }),
      5_000,
      () => `${pattern} in ${JSON.stringify(received)}`,
    );
  socket.write('HEAD /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await got(/\r\n\r\n/);
  t.match(received, /^HTTP\/1\.1 200 [^]*content-type: text\/event-stream/);
  t.equal(app.liveClients.sse.size, 0, 'no live client');
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await got(/\r\n\r\nHTTP\/1\.1 200 [^]*\r\n\r\n/);
  t.pass('the next request on the connection is answered');
});

t.test('a client that leaves while the request is still in a hook is no live client', async (t) => {
  // SPEC §9's API keys and rate limits will run async hooks before the handler: a client can leave meanwhile
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  let reached = (): void => {};
  const inHook = new Promise<void>((resolve) => (reached = resolve));
  let left = (): void => {};
  const hookDone = new Promise<void>((resolve) => (left = resolve));
  app.addHook('preHandler', async (request, reply) => {
    if (request.headers['x-test-hold'] === undefined) return;
    reached();
    await once(reply.raw, 'close');
    left();
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const req = http.get({ host: '127.0.0.1', port: portOf(app), path: '/events', headers: { 'x-test-hold': '1' }, agent: false });
  req.on('error', () => {});
  await inHook;
  req.destroy();
  await hookDone;
  await new Promise((resolve) => setImmediate(resolve)); // the handler runs right after the hook
  t.equal(app.liveClients.sse.size, 0);
  await feed(app, 'nobody', 'open'); // and nothing is written to the closed response
});

t.test('app.close() ends open streams at once, also one whose client does not read', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const responses: ServerResponse[] = [];
  app.server.on('request', (_req: IncomingMessage, res: ServerResponse) => responses.push(res));
  const clients = [await connect(t, app), await connect(t, app, '/events?state=open'), await connect(t, app, '/events', { 'last-event-id': '0' })];

  const stuck = net.connect(portOf(app), '127.0.0.1');
  t.teardown(() => stuck.destroy());
  stuck.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await withTimeout(once(stuck, 'data'), 10_000, () => 'the response head');
  stuck.pause();
  const stuckClosed = once(stuck, 'close');
  const stuckResponse = responses.at(-1)!;
  // fill the kernel's buffers until the server holds bytes for it (within the 1 MiB bound)
  const blob = 'y'.repeat(8_000);
  for (let i = 0; stuckResponse.writableLength === 0; i++) {
    if (i > 20_000) throw new Error('the stuck client never backed up');
    await feed(app, `full-${i % 10}`, i % 2 ? 'open' : 'close', { blob });
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve)); // let the readers read
  }
  t.ok(stuckResponse.writableLength > 0, `the server holds ${stuckResponse.writableLength} bytes for the stuck client`);

  const before = Date.now();
  await withTimeout(app.close(), 5_000, () => 'app.close() with open SSE clients');
  await withTimeout(Promise.all(clients.map((c) => c.closed)), 5_000, () => 'the clients to see the end');
  t.ok(Date.now() - before < 2_000, 'promptly');
  t.ok(clients.every((c) => c.res.complete), 'each reading stream ended cleanly, not aborted');
  stuck.resume();
  await withTimeout(stuckClosed, 5_000, () => 'the stuck client to see its connection end');
  t.equal(app.liveClients.sse.size, 0);
  t.equal(app.devices.events.listenerCount, 0);
});
