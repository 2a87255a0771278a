import t from 'tap';
import { createClient } from 'redis';
import { DEFAULT_ALARM_SETTINGS } from '../../../src/devices/alarms.js';
import { webhookType } from '../../../src/devices/outbox.js';
import type { BatchItem, DeviceStore, StoreOutcome } from '../../../src/devices/store.js';
import { MemoryStore } from '../../../src/devices/stores/memory.js';
import { RedisStore, type RedisStoreOptions } from '../../../src/devices/stores/redis.js';
import { record } from '../../helpers/records.js';
import { startRedis } from '../../helpers/redis.js';
import { storeContract } from '../store.contract.js';

// SPEC §8: the Redis store answers to the same contract as the memory and SQLite stores, on a
// real redis-server of its own. Each store of the contract gets a key prefix of its own in it;
// a reopen is a new store on the same prefix (what survives a bridge's restart).

const AT = '2026-01-01T00:00:00.000Z';

const redis = await startRedis(t);
if (redis !== undefined) {
  const client = createClient({ url: redis.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {}); // a lost connection fails the command that needed it
  await client.connect();
  t.teardown(() => client.destroy());

  let stores = 0;
  const opened = new WeakMap<DeviceStore, RedisStoreOptions>();
  const open = async (options: RedisStoreOptions): Promise<RedisStore> => {
    const store = await RedisStore.open(options);
    opened.set(store, options);
    return store;
  };
  storeContract(
    t,
    'redis',
    async (_t, { historyLimit, webhookUrls, alarms }) => open({ client, prefix: `c${++stores}:`, historyLimit, eventBuffer: 1000, webhookUrls, alarms }),
    {
      reopen: async (_t, store) => {
        await store.close();
        return open(opened.get(store)!);
      },
    },
  );
}

t.test('two replicas applying the same messages at once store each once: one event, one seq', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const connect = async () => {
    const c = createClient({ url: server.url, socket: { reconnectStrategy: false } });
    c.on('error', () => {});
    await c.connect();
    t.teardown(() => c.destroy());
    return c;
  };
  const options = { prefix: 'race:', historyLimit: 50, eventBuffer: 100_000, alarms: DEFAULT_ALARM_SETTINGS, webhookUrls: ['http://hook.example/'] };
  const one = await RedisStore.open({ client: await connect(), ...options });
  const two = await RedisStore.open({ client: await connect(), ...options });

  // 3,000 messages over 100 devices, some of them late
  const random = seeded(7);
  const messages: BatchItem[] = [];
  for (let i = 0; i < 3000; i++) {
    const deviceId = `d${Math.floor(random() * 100)}`;
    const timestamp = 1_700_000_000 + i - (random() < 0.05 ? 50 : 0);
    messages.push({ record: record({ deviceId, timestamp, state: random() < 0.3 ? 'open' : 'close', batteryLevel: random() < 0.1 ? 900 : 9000 }), receivedAt: AT });
  }
  // as a broker without a shared group: both get every message at about the same time, each
  // in batches of its own size (a replica's batches are what arrived in one turn)
  const a: StoreOutcome[] = [];
  const b: StoreOutcome[] = [];
  for (let i = 0; i < messages.length;) {
    const size = 1 + Math.floor(random() * 200);
    const cut = Math.floor(random() * size);
    const batch = messages.slice(i, i + size);
    const [x, y] = await Promise.all([
      one.applyBatch(batch),
      (async () => [...(await two.applyBatch(batch.slice(0, cut))), ...(await two.applyBatch(batch.slice(cut)))])(),
    ]);
    a.push(...x);
    b.push(...y);
    i += size;
  }
  // what one store alone makes of the same messages
  const alone = new MemoryStore({ historyLimit: 50, alarms: DEFAULT_ALARM_SETTINGS });
  const expected = await alone.applyBatch(messages);
  const events = (o: StoreOutcome[]) => o.flatMap((x) => (x.kind === 'update' ? [x.event, ...x.alarms] : []));
  const seqs = [...events(a), ...events(b)].map((e) => e.seq).sort((x, y) => x - y);
  const count = events(expected).length;
  t.equal(seqs.length, count, 'as many events between the two as one store alone emits');
  t.same(seqs, Array.from({ length: count }, (_, i) => i + 1), 'each seq once, none missing');
  t.equal(await one.lastSeq(), count);
  for (let i = 0; i < messages.length; i++) {
    const kinds = [a[i]!.kind, b[i]!.kind].sort();
    const once = expected[i]!.kind;
    // the message is stored by one replica; the other finds it a duplicate (or both find what one store finds)
    if (once === 'update' || once === 'late') t.ok(kinds.includes(once) && kinds.includes('duplicate'), `message ${i}: ${kinds.join(', ')} for ${once}`);
    else t.same(kinds, ['duplicate', 'duplicate'], `message ${i}`);
  }
  t.same(await one.summary(), await alone.summary(), 'the same devices, states and alarms');
  t.same((await two.list({ limit: 1000 })).items, (await alone.list({ limit: 1000 })).items);
  for (const id of ['d0', 'd50', 'd99']) t.same(await two.history(id, 10), await alone.history(id, 10), `history of ${id}`);
  const recent = await one.recentEvents(count);
  t.same(recent.map((e) => e.seq), seqs, 'the stream holds every event once, in seq order');
  t.equal(await one.pendingDeliveries(), events(expected).filter((e) => webhookType(e) !== null).length, 'one webhook delivery per event that is one');
});

t.test('the script is loaded again when Redis forgot it', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const store = await RedisStore.open({ client, prefix: 'flush:', historyLimit: 5, eventBuffer: 10 });
  await store.apply(record({ deviceId: 'a', timestamp: 10 }), AT);
  await client.sendCommand(['SCRIPT', 'FLUSH']);
  const outcome = await store.apply(record({ deviceId: 'a', timestamp: 20 }), AT);
  t.equal(outcome.kind === 'update' && outcome.event.seq, 2);
  await server.stop();
  await t.rejects(store.apply(record({ deviceId: 'a', timestamp: 30 }), AT), 'Redis gone: the write fails, it is not taken as stored');
});

/** A small deterministic generator (mulberry32), so a failure can be run again. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('lists, searches and totals across many chunks of an index, as the memory store', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const store = await RedisStore.open({ client, prefix: 'many:', historyLimit: 5, eventBuffer: 10, alarms: DEFAULT_ALARM_SETTINGS });
  const alone = new MemoryStore({ historyLimit: 5, alarms: DEFAULT_ALARM_SETTINGS });
  const batch: BatchItem[] = [];
  for (let i = 0; i < 1300; i++) {
    batch.push({ record: record({ deviceId: `m${i}`, state: i % 3 === 0 ? 'open' : 'close', batteryLevel: i % 2 === 0 ? 900 : 9000, timestamp: 1_700_000_000 + i }), receivedAt: AT });
  }
  await store.applyBatch(batch);
  await alone.applyBatch(batch);
  for (const query of [{ limit: 1000 }, { state: 'open', q: 'm1', limit: 100 }, { q: '99', limit: 7, after: 'm1' }, { silent: false, limit: 3 }]) {
    const [got, want] = [await store.list(query), await alone.list(query)];
    t.same([got.items.map((d) => d.deviceId), got.total, got.lastId], [want.items.map((d) => d.deviceId), want.total, want.lastId], JSON.stringify(query));
  }
  for (const query of [{ limit: 900 }, { type: 'battery_low' as const, limit: 50 }, { status: 'active' as const, severity: 'major' as const, limit: 700 }]) {
    const [got, want] = [await store.listAlarms(query), await alone.listAlarms(query)];
    t.same([got.items.map((a) => a.alarmId), got.total, got.last?.alarmId], [want.items.map((a) => a.alarmId), want.total, want.last?.alarmId], JSON.stringify(query));
  }
});

t.test("alarm timers follow the alarm settings: changed between runs, or another replica's", async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const T = 1_700_000_000;
  const settings = (openAfterSeconds: number) => ({ ...DEFAULT_ALARM_SETTINGS, openAfterSeconds });
  const base = { client, prefix: 'timers:', historyLimit: 5, eventBuffer: 10 };
  const first = await RedisStore.open({ ...base, alarms: settings(600) });
  await first.apply(record({ deviceId: 'c', state: 'open', timestamp: T }), AT);
  t.same(await first.sweepAlarms(T + 599, 10, AT), [], 'not open long enough');

  // a replica with a longer delay finds the timer early: nothing to raise, the timer moves on
  const other = await RedisStore.open({ ...base, alarms: settings(1200) });
  t.same(await other.sweepAlarms(T + 700, 10, AT), [], 'its delay has not passed');
  t.same(await first.sweepAlarms(T + 700, 10, AT), [], 'and the timer was put at its time');
  t.same((await other.sweepAlarms(T + 1200, 10, AT)).map((e) => [e.transition, e.alarm.raisedAt]), [['raised', new Date((T + 1200) * 1000).toISOString()]]);

  // alarms off, then on again with a delay already passed: raised at the next sweep, at its true time
  await first.close();
  const off = await RedisStore.open({ ...base, prefix: 'timers2:', alarms: null });
  await off.apply(record({ deviceId: 'c', state: 'open', timestamp: T }), AT);
  t.same(await off.sweepAlarms(T + 10_000, 10, AT), [], 'alarms off: nothing');
  const on = await RedisStore.open({ ...base, prefix: 'timers2:', alarms: settings(600) });
  t.same((await on.sweepAlarms(T + 10_000, 10, AT)).map((e) => [e.transition, e.alarm.type, e.alarm.raisedAt]), [['raised', 'cover_open', new Date((T + 600) * 1000).toISOString()], ['escalated', 'cover_open', new Date((T + 600) * 1000).toISOString()]]);
});

t.test('webhook deliveries are claimed by one replica at a time, and taken over when its lease ends', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const url = 'http://hook.example/';
  const options = { client, prefix: 'claims:', historyLimit: 5, eventBuffer: 10, webhookUrls: [url], alarms: null };
  const one = await RedisStore.open(options);
  const two = await RedisStore.open(options);
  for (const deviceId of ['a', 'b', 'c']) await one.apply(record({ deviceId }), AT);
  const now = 1_000_000;
  const mine = await one.claimDeliveries(url, now, 2, 60_000);
  t.same(mine.map((d) => [d.seq, d.attempts, d.nextAttemptAt]), [[1, 0, 0], [2, 0, 0]], 'the oldest two, as they were');
  t.same((await two.claimDeliveries(url, now, 10, 60_000)).map((d) => d.seq), [3], 'the other replica gets only the one not claimed');
  t.same(await two.claimDeliveries(url, now + 59_999, 10, 60_000), [], 'nothing while the leases run');
  t.same(seqsOf(await one.dueDeliveries(url, now, 10)), [], 'claimed ones are not due');
  await one.deliveryDone(mine[0]!.id); // delivered
  t.equal(await one.pendingDeliveries(), 2);
  // the first replica dies with the second delivery in flight: it is taken over when its lease ends
  const taken = await two.claimDeliveries(url, now + 60_000, 10, 60_000);
  t.same(taken.map((d) => [d.seq, d.id, d.attempts]), [[2, mine[1]!.id, 0], [3, taken[1]!.id, 0]], 'same id, same attempts: the same delivery');
  // the first replica was only slow: its late settlement of what the other holds now changes nothing
  await one.deliveryRetry(mine[1]!.id, 5, now + 1);
  await one.deliveryDone(taken[1]!.id);
  t.equal(await one.pendingDeliveries(), 2, 'a replica whose claim ran out settles nothing the other holds');
  t.equal(await two.nextDueAt(url), now + 120_000, 'the leases of the other stand');
  await two.deliveryRetry(taken[0]!.id, 1, now + 300_000);
  t.equal(await two.nextDueAt(url), now + 120_000, 'the next due: the lease of the third');
  t.same((await two.dueDeliveries(url, now + 300_000, 10)).map((d) => [d.seq, d.attempts]), [[3, 0], [2, 1]], 'the holder settled its attempt');
  t.same(seqsOf(await one.claimDeliveries(url, now + 300_000, 10, 60_000)), [3, 2], 'both due: in the order they fell due (the lease ended first)');
});

function seqsOf(ds: { seq: number }[]): number[] {
  return ds.map((d) => d.seq);
}

t.test('two replicas sweeping at the same moment: each silence and each timed alarm once', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const connect = async () => {
    const c = createClient({ url: server.url, socket: { reconnectStrategy: false } });
    c.on('error', () => {});
    await c.connect();
    t.teardown(() => c.destroy());
    return c;
  };
  const T = 1_700_000_000;
  const alarms = { ...DEFAULT_ALARM_SETTINGS, openAfterSeconds: 600 };
  const options = { prefix: 'sweep:', historyLimit: 5, eventBuffer: 10, alarms, webhookUrls: ['http://hook.example/'] };
  const one = await RedisStore.open({ client: await connect(), ...options });
  const two = await RedisStore.open({ client: await connect(), ...options });
  const batch: BatchItem[] = [];
  for (let i = 0; i < 300; i++) batch.push({ record: record({ deviceId: `s${i}`, state: i % 2 === 0 ? 'open' : 'close', timestamp: T }), receivedAt: AT });
  await one.applyBatch(batch);

  const [a, b] = await Promise.all([one.sweepAlarms(T + 600, 1000, AT), two.sweepAlarms(T + 600, 1000, AT)]);
  const raised = [...a, ...b].map((e) => e.deviceId).sort();
  t.equal(raised.length, 150, 'one cover_open per open cover');
  t.equal(new Set(raised).size, 150, 'none twice');

  const [x, y] = await Promise.all([one.markSilent(T + 1, 1000, AT), two.markSilent(T + 1, 1000, AT)]);
  const silent = [...x, ...y].filter((e) => e.kind === 'silent').map((e) => e.deviceId);
  t.equal(silent.length, 300, 'one silent event per device');
  t.equal(new Set(silent).size, 300, 'none twice');
  t.equal((await one.summary()).silent, 300);
  const raisedSilent = [...x, ...y].filter((e) => e.kind === 'alarm' && e.alarm.type === 'silent').length;
  t.equal(raisedSilent, 300, 'and one silent alarm each');
  t.equal(await one.pendingDeliveries(), 300 + 150 + 300 + 300, 'a webhook per change, per alarm raised, per silence, per silent alarm');
});

t.test('a command failing inside the commit script does not wedge the store (Redis undoes nothing)', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const store = await RedisStore.open({ client, prefix: 'wedge:', historyLimit: 5, eventBuffer: 10, alarms: null });
  await store.apply(record({ deviceId: 'a', timestamp: 10 }), AT);
  // a key of the wrong type under the device's history: its LPUSH fails in the middle of the script
  await client.sendCommand(['SET', 'wedge:h:broken', 'not a list']);
  await t.rejects(store.apply(record({ deviceId: 'broken', timestamp: 10 }), AT), /WRONGTYPE/);
  const next = await store.apply(record({ deviceId: 'b', timestamp: 10 }), AT);
  t.equal(next.kind, 'update', 'the next write works');
  t.ok(next.kind === 'update' && next.event.seq > 1, 'with a seq after every one handed out');
  t.same((await store.recentEvents(10)).map((e) => e.deviceId), ['a', 'b'], 'and the log goes on');
});

t.test('a batch that raises and clears several alarms of a device keeps the newest raised, as the memory store', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const store = await RedisStore.open({ client, prefix: 'trim:', historyLimit: 1, eventBuffer: 10, alarms: DEFAULT_ALARM_SETTINGS });
  const alone = new MemoryStore({ historyLimit: 1, alarms: DEFAULT_ALARM_SETTINGS });
  const batch: BatchItem[] = [
    { record: record({ deviceId: 'x', state: 'offline', timestamp: 100, batteryLevel: 9000 }), receivedAt: AT }, // silent raised
    { record: record({ deviceId: 'x', state: 'offline', timestamp: 101, batteryLevel: 1500 }), receivedAt: AT }, // battery_low raised
    { record: record({ deviceId: 'x', state: 'close', timestamp: 102, batteryLevel: 9000 }), receivedAt: AT }, // both cleared
  ];
  await store.applyBatch(batch);
  await alone.applyBatch(batch);
  const kept = async (s: MemoryStore | RedisStore) => (await s.listAlarms({ deviceId: 'x', limit: 10 })).items.map((a) => [a.type, a.status]);
  t.same(await kept(store), await kept(alone));
  t.same(await kept(store), [['battery_low', 'cleared']]);
});

t.test('a late message to a device with a history of thousands is stored (the rewrite goes in chunks)', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const store = await RedisStore.open({ client, prefix: 'long:', historyLimit: 10_000, eventBuffer: 10, alarms: null });
  for (let i = 0; i < 9; i++) await store.applyBatch(Array.from({ length: 1000 }, (_, j) => ({ record: record({ deviceId: 'l', timestamp: 1000 + i * 1000 + j }), receivedAt: AT })));
  const late = await store.apply(record({ deviceId: 'l', timestamp: 500, state: 'open' }), AT);
  t.equal(late.kind, 'late');
  const history = await store.history('l', 10_000);
  t.equal(history?.length, 9001);
  t.same(history?.at(-1), { timestamp: 500, state: 'open', batteryLevel: 9000, csq: 20, receivedAt: AT, kind: 'late' }, 'in its place, the oldest');
});

t.test('Redis lost its data under a running store: it writes nothing more and says to restart', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const connect = async () => {
    const c = createClient({ url: server.url, socket: { reconnectStrategy: false } });
    c.on('error', () => {});
    await c.connect();
    t.teardown(() => c.destroy());
    return c;
  };
  const options = { prefix: 'lost:', historyLimit: 5, eventBuffer: 10, alarms: null, webhookUrls: ['http://hook.example/'] };
  const client = await connect();
  const store = await RedisStore.open({ ...options, client, reader: await connect() });
  await store.apply(record({ deviceId: 'a', timestamp: 10 }), AT);
  t.same(store.sharedLog!.problems(), []);
  await client.sendCommand(['FLUSHALL']); // as a Redis without persistence that restarted
  // the seqs would start over, and with them the webhook ids (msg_<storeId>_<seq>) receivers deduplicate by
  await t.rejects(store.apply(record({ deviceId: 'a', timestamp: 20 }), AT), /WB_STORE_GONE/);
  await t.rejects(store.sharedLog!.readAfter(1, 10, 10), { name: 'StoreUnavailableError', message: /no longer in Redis/ });
  t.match(store.sharedLog!.problems().join(), /restart every replica/, '/readyz says what to do');
  t.equal(await client.sendCommand(['EXISTS', 'lost:seq']), 0, 'nothing was written');
  const restarted = await RedisStore.open({ ...options, client: await connect() });
  t.not(restarted.storeId, store.storeId, 'a restart opens a new store: webhook ids never repeat');
  t.equal((await restarted.apply(record({ deviceId: 'a', timestamp: 20 }), AT)).kind, 'update');
});
