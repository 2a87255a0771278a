import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { buildTestApp, testConfig, until, withTimeout } from '../helpers/app.js';
import { LogCapture } from '../helpers/log.js';
import { record } from '../helpers/records.js';

// SPEC §5/§9, issue 13 finding 3: every byte a live client has not read counts against its bound,
// a replay's and a snapshot's included; a client that stays behind is closed, and so are the
// slowest when all of them together hold too much. The peers here read the response head and
// then nothing, as an attacker's would.

const BOUND = 65_536;
const ts = Math.floor(Date.now() / 1000);
/** One event or snapshot fragment may go out past the bound before the writer stops. */
const SLACK = 80 * 1024;

interface Clocked {
  app: FastifyInstance;
  port: number;
  log: LogCapture;
  advance(ms: number): void;
}

async function listening(t: Test, env: Record<string, string> = {}): Promise<Clocked> {
  let now = Date.now();
  const log = new LogCapture();
  const app = await buildTestApp(
    t,
    testConfig({ WS_MAX_BUFFERED_BYTES: String(BOUND), MAX_STREAMS_PER_ADDRESS: '0', LOG_LEVEL: 'info', EVENT_BUFFER: '2000', ...env }),
    { connectMqtt: false, clock: { now: () => now }, logStream: log },
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const advance = (ms: number): void => {
    now += ms;
  };
  return { app, port: (app.server.address() as AddressInfo).port, log, advance };
}

/** A peer that sends its request, reads the response head, then reads nothing more. */
async function stalled(t: Test, port: number, request: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  socket.write(request);
  const [head] = (await withTimeout(once(socket, 'data'), 10_000, () => 'the response head')) as [Buffer];
  socket.pause();
  t.match(head.toString('latin1'), /^HTTP\/1\.1 (200|101) /, 'the stream opened');
  return socket;
}

const sseReplay = (from: number): string => `GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${from}\r\n\r\n`;
const wsUpgrade =
  'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/** 1,000 devices of about 4 KB each: a 4 MB snapshot, and 4 MB of events to replay. */
async function bigFleet(app: FastifyInstance): Promise<number> {
  const from = app.devices.events.lastSeq;
  const pad = 'p'.repeat(4000);
  for (let i = 0; i < 1000; i++) await app.devices.accept(record({ deviceId: `big${i}`, timestamp: ts, attributes: { pad } }), Date.now());
  return from;
}

function unsent(app: FastifyInstance): number[] {
  return [...app.liveClients.ws, ...app.liveClients.sse].map((c) => c.unsentBytes());
}

t.test('stalled replays and snapshots hold one bound each, and are closed once behind too long', async (t) => {
  const { app, port, advance } = await listening(t, { WS_SLOW_CLOSE_SECONDS: '30' });
  const from = await bigFleet(app);
  const peers: net.Socket[] = [];
  for (let i = 0; i < 10; i++) peers.push(await stalled(t, port, sseReplay(from)));
  for (let i = 0; i < 10; i++) peers.push(await stalled(t, port, wsUpgrade));
  // every stream has written what its socket takes, and waits: their buffers reach the bound
  await until(
    () => app.liveClients.sse.size + app.liveClients.ws.size === 20 && unsent(app).every((n) => n > BOUND / 2),
    () => `20 stalled clients over half their bound: ${unsent(app).join(', ')}`,
    20_000,
  );
  const held = unsent(app);
  t.ok(
    held.every((n) => n <= BOUND + SLACK),
    `each holds at most its bound and one fragment (${Math.max(...held)} bytes of a 4 MB replay or snapshot)`,
  );
  t.ok(
    [...app.liveClients.sse, ...app.liveClients.ws].every((c) => c.behindSince !== null),
    'all of them are behind',
  );

  advance(30_001);
  await until(
    () => app.liveClients.sse.size + app.liveClients.ws.size === 0,
    () => `${app.liveClients.sse.size} SSE and ${app.liveClients.ws.size} /ws clients still open`,
    10_000,
  );
  t.pass('closed once behind for WS_SLOW_CLOSE_SECONDS, memory with them');
  await Promise.all(peers.map((p) => withTimeout(once(p.resume(), 'close'), 10_000, () => 'a stalled peer to see its connection end')));
  t.pass('every stalled peer sees its connection end');
});

t.test('the sum over all clients is bounded: the ones holding the most are closed first', async (t) => {
  const total = 6 * BOUND;
  const { app, port, log } = await listening(t, { STREAMS_MAX_TOTAL_BUFFERED_BYTES: String(total), WS_SLOW_CLOSE_SECONDS: '600' });
  const from = await bigFleet(app);
  for (let i = 0; i < 12; i++) await stalled(t, port, i % 2 ? wsUpgrade : sseReplay(from));
  const line = await log.waitFor((l) => /STREAMS_MAX_TOTAL_BUFFERED_BYTES/.test(l.msg), 'the warning of the total bound');
  t.equal(line.level, 40, 'a warn line');
  t.ok((line.closed as number) > 0, `closed ${String(line.closed)} of 12`);
  await until(
    () => unsent(app).reduce((a, b) => a + b, 0) <= total,
    () => `the sum ${unsent(app).reduce((a, b) => a + b, 0)} under ${total}`,
    10_000,
  );
  t.ok(app.liveClients.sse.size + app.liveClients.ws.size < 12, 'fewer clients hold the rest');
});

t.test('a stalled SSE stream whose place leaves the event buffer is dropped, and resumes into a reset', async (t) => {
  const { app, port, log } = await listening(t, { EVENT_BUFFER: '100', WS_SLOW_CLOSE_SECONDS: '600' });
  await stalled(t, port, sseReplay(app.devices.events.lastSeq));
  const pad = 'q'.repeat(4000);
  for (let i = 0; !log.lines.some((l) => /SSE client too slow/.test(l.msg)); i++) {
    if (i > 10_000) throw new Error('never dropped');
    await app.devices.accept(record({ deviceId: `b${i % 10}`, timestamp: ts + i + 1, attributes: { pad } }), Date.now());
    // a turn of the event loop, as between MQTT messages: the batch of events is delivered
    if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
  }
  t.equal(app.liveClients.sse.size, 0, 'dropped');
  t.ok(app.devices.events.next(0) === null, 'its place is gone from the buffer: a reconnect with its id gets a reset');
});
