import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { MemoryStore } from '../../src/devices/stores/memory.js';
import type { BatchItem, StoreOutcome } from '../../src/devices/store.js';
import type { DeviceEvent } from '../../src/devices/events.js';
import type { DeviceRecord } from '../../src/devices/types.js';
import { APP_ID, APP_KEY, TOPIC, message } from '../helpers/bridge.js';
import { buildTestApp, testConfig, until, withTimeout } from '../helpers/app.js';
import { startScriptedBroker, type Received, type ScriptedBroker, type ScriptedBrokerOptions, type ScriptedPublish } from '../helpers/scripted-broker.js';

// SPEC §7 (issue 17), on the wire: the QoS 1 messages of one event-loop turn are written with ONE
// store call (applyBatch), and only then are their PUBACKs written, in the order the PUBLISHes
// arrived (MQTT 3.1.1 §4.6), on the connection they came on, one per message. The scripted broker
// decides what arrives in which TCP chunk and records every packet the bridge sends.

/** One applyBatch call: what it held, and how many packets the broker had received once it was written. */
interface BatchCall {
  items: BatchItem[];
  /** broker.received.length when the write completed; null while held, or when it threw. */
  writtenAt: number | null;
}

/** A memory store whose batch writes are recorded, and can be held on a gate or made to fail. */
class WireStore extends MemoryStore {
  readonly calls: BatchCall[] = [];
  /** apply() calls made one by one, outside applyBatch: a bridge that does not batch (yet). */
  singleApplies = 0;
  failing = false;
  #gate: Promise<void> = Promise.resolve();
  #openGate: () => void = () => {};
  #inBatch = 0;

  constructor(private readonly mark: () => number) {
    super({ historyLimit: 50, alarms: null });
  }

  /** From now on, batch writes wait until release(). */
  hold(): void {
    this.#gate = new Promise<void>((resolve) => {
      this.#openGate = resolve;
    });
  }

  release(): void {
    this.#openGate();
    this.#gate = Promise.resolve();
  }

  override async apply(record: DeviceRecord, receivedAt: string): Promise<StoreOutcome> {
    if (this.#inBatch === 0) this.singleApplies++;
    return super.apply(record, receivedAt);
  }

  override async applyBatch(items: readonly BatchItem[]): Promise<StoreOutcome[]> {
    const call: BatchCall = { items: [...items], writtenAt: null };
    this.calls.push(call);
    await this.#gate;
    if (this.failing) throw new Error('disk full');
    this.#inBatch++;
    try {
      const outcomes = await super.applyBatch(items);
      call.writtenAt = this.mark();
      return outcomes;
    } finally {
      this.#inBatch--;
    }
  }

  /** The deviceIds of each call, for assertions and failure messages. */
  batches(): string[][] {
    return this.calls.map((c) => c.items.map((i) => i.record.deviceId));
  }

  /** What the store saw so far, for failure messages. */
  describe(): string {
    const calls = `applyBatch calls: ${JSON.stringify(this.batches())}`;
    return this.singleApplies > 0 ? `${calls}; apply() called one by one ${this.singleApplies} times (not batched yet?)` : calls;
  }
}

interface Wire {
  broker: ScriptedBroker;
  store: WireStore;
  app: FastifyInstance;
}

/** A bridge subscribed through connection 1 of a scripted broker, with a WireStore. */
async function bridge(t: Test, options: ScriptedBrokerOptions = {}): Promise<Wire> {
  const broker = await startScriptedBroker(t, options);
  const store = new WireStore(() => broker.received.length);
  const config = testConfig({
    MQTT_URL: broker.url,
    WIIHEY_APP_ID: APP_ID,
    WIIHEY_APP_KEY: APP_KEY,
    MQTT_RECONNECT_MIN_MS: '100',
    MQTT_RECONNECT_MAX_MS: '500',
    ALARMS_ENABLED: 'false',
  });
  const app = await buildTestApp(t, config, { store });
  // teardowns run last first: a test that failed while holding the store must not hang app.close()
  t.teardown(() => {
    store.failing = false;
    store.release();
  });
  await app.ready();
  await broker.waitForSubscribe(1);
  await withTimeout(app.ingest.subscribedOnce, 5000, () => 'the bridge to see its SUBACK');
  return { broker, store, app };
}

const ts = Math.floor(Date.now() / 1000);

/** A QoS 1 PUBLISH of a valid message on the configured topic. */
function pub(deviceId: string, state: string, timestamp: number, messageId: number, extra: Partial<ScriptedPublish> = {}): ScriptedPublish {
  return { topic: TOPIC, payload: message(deviceId, state, timestamp), qos: 1, messageId, ...extra };
}

/** Matches the PUBACK of `messageId` on connection `conn`. */
function pubackOf(conn: number, messageId: number): (r: Received) => boolean {
  return (r) => r.conn === conn && r.packet.cmd === 'puback' && r.packet.messageId === messageId;
}

/** Resolves once the store saw `n` applyBatch calls. */
function batchCalls(store: WireStore, n: number, what: string, timeoutMs = 5000): Promise<void> {
  return until(() => store.calls.length >= n, () => `${what}; ${store.describe()}`, timeoutMs);
}

/**
 * A bounded number of event-loop turns (no timer): on loopback, a packet the bridge has written
 * reaches the broker's socket within a turn or two, so a PUBACK sent too early would be recorded
 * by now. Used only to check that something did NOT happen.
 */
async function turns(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

t.test('a. five QoS 1 messages in one chunk: one applyBatch, PUBACKs only after it, in order', async (t) => {
  const { broker, store } = await bridge(t);
  store.hold();
  broker.sendPublishes(1, [1, 2, 3, 4, 5].map((i) => pub(`a${i}`, 'open', ts, i)));
  await batchCalls(store, 1, 'the batch write');
  t.same(store.batches()[0], ['a1', 'a2', 'a3', 'a4', 'a5'], 'ONE applyBatch call holds all five, in order');
  await turns();
  t.same(broker.pubacks(1), [], 'no PUBACK on the wire while the write is held');

  store.release();
  await broker.waitFor(pubackOf(1, 5), 'the PUBACK of 5');
  t.same(broker.pubacks(1), [1, 2, 3, 4, 5], 'PUBACKs 1..5, in the order the PUBLISHes arrived');
  t.equal(store.calls.length, 1, `one write for the chunk; ${store.describe()}`);
  const firstAck = broker.received.find(pubackOf(1, 1))!;
  t.ok(store.calls[0]!.writtenAt !== null && firstAck.index >= store.calls[0]!.writtenAt, 'the first PUBACK arrived after the write');
});

t.test('b. messages the bridge rejects get their PUBACK in their place; the batch holds the valid ones', async (t) => {
  const { broker, store, app } = await bridge(t);
  store.hold();
  broker.sendPublishes(1, [
    pub('b1', 'open', ts, 1),
    { topic: TOPIC, payload: '{"DeviceID": "b2", "State": ', qos: 1, messageId: 2 }, // invalid JSON
    pub('b3', 'open', ts, 3),
    { topic: 'iot/other/inbox', payload: message('b4', 'open', ts), qos: 1, messageId: 4 }, // a topic not configured
    pub('b5', 'open', ts, 5),
  ]);
  await batchCalls(store, 1, 'the batch write');
  t.same(store.batches()[0], ['b1', 'b3', 'b5'], 'the batch holds only the valid messages, in order');
  await turns();
  t.same(broker.pubacks(1), [], 'no PUBACK while the write of the first message is held, not even for the rejected ones after it');

  store.release();
  await broker.waitFor(pubackOf(1, 5), 'the PUBACK of 5');
  t.same(broker.pubacks(1), [1, 2, 3, 4, 5], 'every message acknowledged once, rejected ones in their place');
  t.equal(app.ingest.totals.invalid, 2, 'both rejected');
  t.equal(await store.get('b4'), undefined, 'the message on the other topic was not stored');
});

t.test('c. a failing write: no PUBACK and /readyz 503 while it fails; then all PUBACKs in order and the devices stored', async (t) => {
  const { broker, store, app } = await bridge(t);
  store.failing = true;
  broker.sendPublishes(1, [1, 2, 3].map((i) => pub(`c${i}`, 'open', ts, i)));
  await batchCalls(store, 2, 'a failed write and its retry');
  t.same(store.batches().slice(0, 2), [['c1', 'c2', 'c3'], ['c1', 'c2', 'c3']], 'the same batch, retried');
  t.same(broker.pubacks(1), [], 'no PUBACK of the batch while its write fails');
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 503, '/readyz 503 while the store fails');
  t.ok((ready.json().reasons as string[]).includes('store: disk full'), `the store named as the reason: ${ready.body}`);

  store.failing = false;
  await broker.waitFor(pubackOf(1, 3), 'the PUBACK of 3 once the store works', 10_000);
  t.same(broker.pubacks(1), [1, 2, 3], 'all PUBACKs, in order, once written');
  const writtenAt = store.calls.find((c) => c.writtenAt !== null)?.writtenAt;
  const firstAck = broker.received.find(pubackOf(1, 1))!;
  t.ok(writtenAt != null && firstAck.index >= writtenAt, `the first PUBACK after the successful write; ${store.describe()}`);
  for (const id of ['c1', 'c2', 'c3']) t.equal((await app.inject(`/devices/${id}`)).json().state, 'open', `${id} stored`);
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready again');
});

t.test('d. a batch spanning a reconnect: no PUBACK of connection 1 goes out on connection 2', async (t) => {
  const { broker, store, app } = await bridge(t, { sessionPresent: true });
  store.hold();
  broker.sendPublishes(1, [1, 2, 3].map((i) => pub(`d${i}`, 'open', ts, i)));
  await batchCalls(store, 1, 'the batch of connection 1');
  t.same(store.batches()[0], ['d1', 'd2', 'd3'], 'connection 1 delivered three messages in one batch');
  broker.drop(1);
  await broker.waitForSubscribe(2, 10_000);
  // a different message under an id connection 1 used: only its own PUBACK may answer it
  broker.sendPublishes(2, [pub('d-new', 'close', ts, 1)]);
  await until(
    () => app.ingest.totals.received >= 4,
    () => `the bridge to take connection 2's message (received ${app.ingest.totals.received})`,
  );
  store.release();

  const ack = await broker.waitFor(pubackOf(2, 1), "the PUBACK of connection 2's message");
  const call = store.calls.find((c) => c.items.some((i) => i.record.deviceId === 'd-new'));
  t.ok(call?.writtenAt != null, `connection 2's message was written; ${store.describe()}`);
  t.ok(call?.writtenAt != null && ack.index >= call.writtenAt, "the PUBACK of id 1 on connection 2 came after the write of connection 2's message");
  t.notOk(
    call?.items.some((i) => i.record.deviceId.startsWith('d') && i.record.deviceId !== 'd-new'),
    'a batch holds the messages of one connection only',
  );

  // a later message as a barrier: PUBACKs go out in arrival order, so any stray one is in by its PUBACK
  broker.sendPublishes(2, [pub('d-next', 'open', ts, 10)]);
  await broker.waitFor(pubackOf(2, 10), 'the PUBACK of the barrier message');
  t.same(broker.pubacks(2), [1, 10], 'exactly one PUBACK per message of connection 2, none of connection 1');
  t.same(broker.pubacks(1), [], 'nothing acknowledged on the dropped connection');
  t.equal((await app.inject('/devices/d-new')).json().state, 'close', "connection 2's message stored");
});

t.test('e. two messages of one device in one chunk: the newer wins, events in seq order; a duplicate is one event, two PUBACKs', async (t) => {
  const { broker, store, app } = await bridge(t);
  const heard: DeviceEvent[] = [];
  app.devices.events.subscribe((e) => heard.push(e));
  broker.sendPublishes(1, [
    pub('e-down', 'open', ts + 10, 1), // newer, then older
    pub('e-down', 'close', ts, 2),
    pub('e-up', 'close', ts, 3), // older, then newer
    pub('e-up', 'open', ts + 10, 4),
    pub('e-dup', 'open', ts, 5), // the same message twice
    pub('e-dup', 'open', ts, 6),
  ]);
  await broker.waitFor(pubackOf(1, 6), 'the PUBACK of 6');
  t.same(broker.pubacks(1), [1, 2, 3, 4, 5, 6], 'every message acknowledged, duplicate and late ones too, in order');
  t.same(store.batches(), [['e-down', 'e-down', 'e-up', 'e-up', 'e-dup', 'e-dup']], 'one write for the chunk, in arrival order');
  app.devices.events.flush();

  const of = (id: string): DeviceEvent[] => heard.filter((e) => e.deviceId === id);
  const states = (id: string): [string, number][] => of(id).map((e) => [e.kind === 'update' ? e.device.state : e.kind, e.kind === 'update' ? e.device.timestamp : 0]);
  t.same(states('e-down'), [['open', ts + 10]], 'newer then older: one update, the older one is late');
  t.same(states('e-up'), [['close', ts], ['open', ts + 10]], 'older then newer: both, in that order');
  t.same(states('e-dup'), [['open', ts]], 'a duplicate in the same chunk: one update event');
  const seqs = heard.map((e) => e.seq);
  t.same(seqs, [...seqs].sort((a, b) => a - b), `events in seq order: ${seqs.join(', ')}`);

  for (const [id, state] of [['e-down', 'open'], ['e-up', 'open'], ['e-dup', 'open']] as const) {
    const device = (await app.inject(`/devices/${id}`)).json();
    t.same([device.state, device.timestamp], [state, ts + 10 * Number(id !== 'e-dup')], `${id}: the newer state`);
  }
});

t.test('f. the same packet id twice pending on one connection: exactly one PUBACK', async (t) => {
  const { broker, store } = await bridge(t);
  store.hold();
  broker.sendPublishes(1, [pub('f1', 'open', ts, 7)]);
  await batchCalls(store, 1, 'the batch write of id 7');
  // the broker resends it before the bridge acknowledged it
  broker.sendPublishes(1, [pub('f1', 'open', ts, 7, { dup: true })]);
  await turns();
  t.same(broker.pubacks(1), [], 'nothing acknowledged while held');
  store.release();

  await broker.waitFor(pubackOf(1, 7), 'the PUBACK of 7');
  broker.sendPublishes(1, [pub('f2', 'open', ts, 8)]); // a barrier: PUBACKs go out in arrival order
  await broker.waitFor(pubackOf(1, 8), 'the PUBACK of the barrier message');
  t.same(broker.pubacks(1), [7, 8], `exactly one PUBACK for id 7; ${store.describe()}`);
});

t.test('g. QoS 0: fifty messages in one chunk are batched and never acknowledged', async (t) => {
  const { broker, store, app } = await bridge(t);
  const count = 50;
  const ids = Array.from({ length: count }, (_, i) => `g${i}`);
  broker.sendPublishes(1, ids.map((id) => ({ topic: TOPIC, payload: message(id, 'open', ts), qos: 0 })));
  const written = (): number => store.calls.filter((c) => c.writtenAt !== null).reduce((n, c) => n + c.items.length, 0);
  await until(() => written() === count, () => `all ${count} written; ${store.describe()}`);
  const calls = store.calls.length;
  t.ok(calls < count, `batched: ${count} messages in ${calls} applyBatch calls (${store.singleApplies} apply() one by one)`);
  t.same(store.batches().flat(), ids, 'every message, in order');

  broker.sendPublishes(1, [pub('g-barrier', 'open', ts, 1)]); // PUBACKs go out in arrival order
  await broker.waitFor(pubackOf(1, 1), 'the PUBACK of the QoS 1 barrier message');
  t.same(broker.pubacks(1), [1], 'no PUBACK for a QoS 0 message');
  t.equal((await app.inject('/devices')).json().total, count + 1, 'all stored');
});

t.test('h. app.close() while a batch is held: its PUBACKs go out before the DISCONNECT', async (t) => {
  const { broker, store, app } = await bridge(t);
  store.hold();
  broker.sendPublishes(1, [1, 2, 3].map((i) => pub(`h${i}`, 'open', ts, i)));
  await batchCalls(store, 1, 'the batch write');
  // the gate opens right after the bridge's close() began (Fastify runs the preClose hook a few
  // turns after app.close()): the close must wait for the write and send its PUBACKs first
  const ingest = app.ingest;
  const ingestClose = ingest.close.bind(ingest);
  let closeBegan = false;
  ingest.close = () => {
    const closing = ingestClose();
    closeBegan = true;
    store.release();
    return closing;
  };
  await withTimeout(app.close(), 5000, () => `app.close(); the broker received: ${broker.describe()}`);
  t.ok(closeBegan, "the gate opened once the bridge's close had begun");

  const disconnect = await broker.waitFor((r) => r.conn === 1 && r.packet.cmd === 'disconnect', 'the DISCONNECT');
  t.same(broker.pubacks(1), [1, 2, 3], 'the held batch acknowledged, in order');
  const acks = broker.received.filter((r) => r.conn === 1 && r.packet.cmd === 'puback');
  t.ok(
    acks.every((r) => r.index < disconnect.index),
    `every PUBACK before the DISCONNECT: ${broker.describe()}`,
  );
  const writtenAt = store.calls[0]!.writtenAt;
  t.ok(writtenAt !== null && acks.every((r) => r.index >= writtenAt), `and after the write; ${store.describe()}`);
});

t.test('i. past the pending cap: MQTT.js is held back, then resumed: every PUBACK in order, the hold intact', async (t) => {
  // 2,500 messages in one burst, more than the bridge takes before it stops handing MQTT.js its
  // callback (2,000); resuming makes MQTT.js parse the buffered rest inside that callback
  const { broker, store, app } = await bridge(t);
  store.hold();
  const ids = Array.from({ length: 2500 }, (_, i) => i + 1);
  // the 2,000th ends a write, so MQTT.js has parsed all it got when its callback is held back,
  // and the rest waits in its socket's buffer
  broker.sendPublishes(1, ids.slice(0, 2000).map((i) => pub(`i${i}`, 'open', ts, i)));
  await until(() => app.ingest.totals.received === 2000, () => `received ${app.ingest.totals.received}`);
  broker.sendPublishes(1, ids.slice(2000).map((i) => pub(`i${i}`, 'open', ts, i)));
  await turns();
  t.equal(app.ingest.totals.received, 2000, 'the bridge takes no more while 2,000 wait for their write');
  store.release();
  await broker.waitFor(pubackOf(1, 2500), 'the PUBACK of the last message', 15_000);
  t.same(broker.pubacks(1), ids, 'each acknowledged once, in the order they arrived');
  t.equal((await app.inject('/readyz')).statusCode, 200, 'the hold never broke');
  t.equal(app.devices.counts.accepted, 2500);
});
