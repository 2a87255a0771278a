import t from 'tap';
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import { alarmEvent, metaEvent, updateEvent, type DeviceEvent } from '../../src/devices/events.js';
import { makeAlarm } from '../../src/devices/alarms.js';
import { apply } from '../../src/devices/rules.js';
import { MemoryStore } from '../../src/devices/stores/memory.js';
import { WsClient } from '../../src/streams/ws.js';
import { MATCH_ALL } from '../../src/streams/filter.js';
import { record } from '../helpers/records.js';

// WsClient, the /ws live client, against a fake socket (as graphql-ws tests its state machine):
// the test sets how much the peer has not read, and sees every frame and fragment sent.

const OPEN = 1;
const CLOSING = 2;

interface Sent {
  data: string;
  fin: boolean;
}

class FakeSocket extends EventEmitter {
  readonly OPEN = OPEN;
  readyState = OPEN;
  bufferedAmount = 0;
  readonly sent: Sent[] = [];
  closed: { code: number; reason: string } | null = null;
  /** Send callbacks held back until the peer "reads" (drain()). */
  #held: (() => void)[] = [];
  holdCallbacks = false;

  send(data: string, options?: { fin?: boolean } | (() => void), cb?: () => void): void {
    const callback = typeof options === 'function' ? options : cb;
    const fin = typeof options === 'object' ? options.fin !== false : true;
    this.sent.push({ data, fin });
    this.bufferedAmount += data.length; // until the peer reads it
    if (callback === undefined) return;
    if (this.holdCallbacks) this.#held.push(callback);
    else callback();
  }

  /** The peer read everything: the buffer empties and held send callbacks run. */
  drain(): void {
    this.bufferedAmount = 0;
    const held = this.#held;
    this.#held = [];
    for (const callback of held) callback();
  }

  close(code: number, reason: string): void {
    this.closed = { code, reason };
    this.readyState = CLOSING;
  }

  terminate(): void {
    this.readyState = 3;
    this.emit('close', 1006);
  }
}

const BOUND = 10_000;
let seq = 0;
function event(deviceId: string, state = 'open', pad = ''): DeviceEvent {
  const outcome = apply(undefined, record({ deviceId, state, attributes: { pad } }), '2026-01-01T00:00:00.000Z');
  if (outcome.kind !== 'update') throw new Error('expected an update');
  return updateEvent(++seq, outcome.device, null, true);
}

function client(socket: FakeSocket, now = () => 0): WsClient {
  return new WsClient(socket as unknown as WebSocket, '10.0.0.1', MATCH_ALL, { maxBufferedBytes: BOUND, snapshotLimit: 10_000 }, now);
}

t.test('within the bound every event is a frame; past it, the newest per device waits and goes out as the peer reads', async (t) => {
  const socket = new FakeSocket();
  const now = 1000;
  const ws = client(socket, () => now);
  ws.offer(event('a'));
  t.equal(socket.sent.length, 1, 'sent at once');
  socket.bufferedAmount = BOUND + 1; // the peer stopped reading
  const a2 = event('a', 'close');
  const b1 = event('b');
  const a3 = event('a', 'open');
  for (const e of [a2, b1, a3]) ws.offer(e);
  t.equal(socket.sent.length, 1, 'nothing more sent');
  t.equal(ws.behindSince, 1000, 'behind since the first event it could not take');
  t.same([...ws.pending!.values()].map((e) => e.deviceId), ['a', 'b'], 'conflated: one waiting event per device');
  t.ok(ws.unsentBytes() > BOUND, 'what waits counts against the client');
  t.equal(ws.flush(), false, 'the socket is still full: nothing goes');
  socket.drain();
  t.equal(ws.flush(), true, 'caught up once the peer read');
  t.same(socket.sent.slice(1).map((s) => (JSON.parse(s.data) as { seq: number }).seq), [b1.seq, a3.seq], 'oldest seq first, the newest of each device');
  t.equal(ws.behindSince, null);
  t.equal(ws.unsentBytes(), socket.bufferedAmount, 'nothing waits in the client: what is unsent is in the socket');
});

t.test('while behind, a meta or alarm frame never pushes out the newest update of its device', async (t) => {
  const socket = new FakeSocket();
  const ws = client(socket);
  socket.bufferedAmount = BOUND + 1;
  const update = event('a');
  ws.offer(update);
  const meta = metaEvent(++seq, 'a', update.device, null);
  const raised = alarmEvent(++seq, update.device, 'raised', makeAlarm('a1', 'a', 'cover_open', 'major', '2026-01-01T00:00:00.000Z', null, '2026-01-01T00:00:00.000Z'));
  const other = alarmEvent(++seq, update.device, 'raised', makeAlarm('a2', 'a', 'battery_low', 'warning', '2026-01-01T00:00:00.000Z', null, '2026-01-01T00:00:00.000Z'));
  const cleared = alarmEvent(++seq, update.device, 'cleared', { ...raised.alarm, status: 'cleared' });
  for (const e of [meta, raised, other, cleared]) ws.offer(e);
  t.same([...ws.pending!.values()].map((e) => e.seq).sort((x, y) => x - y), [update.seq, meta.seq, other.seq, cleared.seq], 'an alarm conflates with itself only');
});

t.test('conflated updates past the bound close the client with 1013 at once', async (t) => {
  const socket = new FakeSocket();
  const ws = client(socket);
  socket.bufferedAmount = BOUND + 1;
  const pad = 'x'.repeat(1000);
  for (let i = 0; i < 20 && socket.closed === null; i++) ws.offer(event(`dev${i}`, 'open', pad));
  t.same(socket.closed, { code: 1013, reason: 'too slow: reconnect and resubscribe' });
  t.equal(ws.pending, null, 'what waited is let go');
  const sent = socket.sent.length;
  ws.offer(event('late'));
  t.equal(socket.sent.length, sent, 'a closing client is offered nothing');
});

t.test('a snapshot goes out in fragments of one message, each once the peer has room; events meanwhile follow it in order', async (t) => {
  const store = new MemoryStore({ historyLimit: 5, webhookUrls: [] });
  const pad = 'p'.repeat(2000);
  for (let i = 0; i < 200; i++) await store.apply(record({ deviceId: `s${String(i).padStart(3, '0')}`, attributes: { pad } }), '2026-01-01T00:00:00.000Z');
  const socket = new FakeSocket();
  socket.holdCallbacks = true;
  const ws = client(socket);
  // the fake peer reads nothing: its buffer passes the bound with the first fragment
  const done = ws.sendSnapshot(store);
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  t.equal(socket.sent.length, 1, 'one fragment, then it waits for the peer');
  t.equal(socket.sent[0]!.fin, false);
  t.ok(socket.sent[0]!.data.length < 80 * 1024, `a fragment of ${socket.sent[0]!.data.length} characters`);
  const during = event('s000', 'close');
  ws.offer(during);
  ws.error('a bad frame meanwhile');
  t.equal(socket.sent.length, 1, 'no frame between the fragments of the snapshot');
  for (let i = 0; i < 20 && socket.sent.at(-1)?.fin !== true; i++) {
    socket.drain();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await done;
  const fragments = socket.sent.slice(0, socket.sent.findIndex((s) => s.fin) + 1);
  const text = fragments.map((s) => s.data).join('');
  const snapshot = JSON.parse(text) as { type: string; devices: unknown[]; total: number; truncated: boolean };
  t.ok(fragments.length > 2, `${fragments.length} fragments`);
  t.same([snapshot.type, snapshot.devices.length, snapshot.total, snapshot.truncated], ['snapshot', 200, 200, false], 'whole once put together');
  const after = socket.sent.slice(socket.sent.findIndex((s) => s.fin) + 1).map((s) => JSON.parse(s.data) as { type: string; seq?: number });
  t.same(after.map((f) => f.type), ['error', 'update'], 'then the error frame and the event that came meanwhile');
  t.equal(after[1]!.seq, during.seq);
});
