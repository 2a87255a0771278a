import t, { type Test } from 'tap';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startRedis, type Redis } from '../helpers/redis.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { getJson, spawnBridge, type BridgeProcess } from '../helpers/process.js';
import { SeqRecorder } from './recorders.js';

// SPEC §8 (issue 18): several bridge processes on one Redis and one Mosquitto. Every device ends
// in its last state, each change has one event and one seq, and every live subscriber on every
// replica gets every event once, in seq order, with and without a shared group.

const DEVICES = Number(process.env.REPLICAS_DEVICES ?? 2000);
const MESSAGES = Number(process.env.REPLICAS_MESSAGES ?? 20_000);
const ts = Math.floor(Date.now() / 1000) - 100_000;

interface Cluster {
  broker: Mosquitto;
  redis: Redis;
  replicas: BridgeProcess[];
  env: (i: number) => Record<string, string>;
}

async function cluster(t: Test, count: number, overrides: Record<string, string> = {}): Promise<Cluster | undefined> {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return undefined;
  const redis = await startRedis(t, { appendonly: true, appendfsync: 'everysec' });
  if (!redis) return undefined;
  const env = (i: number): Record<string, string> => ({
    ...brokerEnv(broker, { REDIS_URL: redis.url, REPLICA_ID: `r${i}`, ALARMS_ENABLED: 'false', EVENT_BUFFER: '1000', ...overrides }),
    // every event to every client: the live layer's slow-client policy is not the subject here
    WS_MAX_BUFFERED_BYTES: String(512 * 1024 * 1024),
    MAX_STREAMS_PER_ADDRESS: '0',
    RATE_LIMIT_PER_MINUTE: '0',
  });
  const replicas = await Promise.all(Array.from({ length: count }, (_, i) => spawnBridge(t, env(i))));
  return { broker, redis, replicas, env };
}

/** Publishes MESSAGES QoS 1 messages over DEVICES devices, each a newer timestamp; the last state of each. */
async function publishAll(t: Test, broker: Mosquitto): Promise<Map<string, { state: string; timestamp: number }>> {
  const pub = await publisher(t, broker, { clientId: 'publisher-replicas' });
  const last = new Map<string, { state: string; timestamp: number }>();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const deviceId = `d${i % DEVICES}`;
    const timestamp = ts + Math.floor(i / DEVICES);
    const state = (i * 7919) % 3 === 0 ? 'open' : 'close';
    last.set(deviceId, { state, timestamp });
    pending.push(pub.publishAsync(TOPIC, message(deviceId, state, timestamp), { qos: 1 }));
    if (pending.length === 100) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  return last;
}

async function checkDevices(t: Test, replica: BridgeProcess, last: Map<string, { state: string; timestamp: number }>, name: string): Promise<void> {
  const seen = new Map<string, { state: string; timestamp: number }>();
  for (let cursor: string | null = ''; cursor !== null;) {
    const page: { items: { deviceId: string; state: string; timestamp: number }[]; nextCursor: string | null } = await getJson(
      `${replica.base}/devices?limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
    );
    for (const d of page.items) seen.set(d.deviceId, d);
    cursor = page.nextCursor;
  }
  t.equal(seen.size, DEVICES, `${name}: every device`);
  const wrong = [...last].filter(([id, want]) => seen.get(id)?.state !== want.state || seen.get(id)?.timestamp !== want.timestamp);
  t.same(wrong.slice(0, 5), [], `${name}: every device in its last state`);
}

for (const [count, group] of [
  [2, null],
  [2, 'bridges'],
  [3, 'bridges'],
] as const) {
  t.test(`${count} replicas ${group === null ? 'without a shared group (each gets every message)' : 'with a shared group'}: ${MESSAGES} QoS 1 messages over ${DEVICES} devices`, async (t) => {
    const c = await cluster(t, count, group === null ? {} : { MQTT_SHARED_GROUP: group });
    if (!c) return;
    const recorders = await Promise.all(c.replicas.flatMap((r, i) => [SeqRecorder.ws(t, r.base, `r${i} /ws`), SeqRecorder.sse(t, r.base, `r${i} /events`), SeqRecorder.graphql(t, r.base, `r${i} graphql-ws`)]));
    const last = await publishAll(t, c.broker);
    const counts = async () => {
      const stats = await Promise.all(c.replicas.map((r) => getJson<{ messages: { received: number; accepted: number; duplicate: number; late: number } }>(`${r.base}/stats`)));
      const sum = (k: 'received' | 'accepted' | 'duplicate' | 'late') => stats.reduce((n, s) => n + s.messages[k], 0);
      return { stats, received: sum('received'), accepted: sum('accepted'), duplicate: sum('duplicate'), late: sum('late') };
    };
    const expected = group === null ? MESSAGES * count : MESSAGES;
    let seen = await counts();
    for (const deadline = Date.now() + 120_000; seen.accepted + seen.duplicate + seen.late < expected; seen = await counts()) {
      if (Date.now() > deadline) throw new Error(`the replicas took ${seen.accepted + seen.duplicate + seen.late} of ${expected} messages`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (group === null) {
      // each replica takes every message in order: one stores it, the others find it a duplicate
      t.same([seen.accepted, seen.duplicate, seen.late], [MESSAGES, MESSAGES * (count - 1), 0], 'each message stored once, by one replica');
    } else {
      // the broker splits the stream: a device's messages may be stored by two replicas out of
      // order, and an older one stored after a newer one is late (history, no event: SPEC §4)
      t.equal(seen.accepted + seen.late, MESSAGES, 'each message stored once, as an update or a late one');
      t.equal(seen.duplicate, 0, 'no message twice');
      t.ok(seen.stats.every((s) => s.messages.received > 0), 'every replica takes a share');
    }
    // one update event per accepted message (alarms off), seqs 1..accepted, on every client of every replica
    await Promise.all(recorders.map((r) => r.until(seen.accepted, 60_000)));
    for (const r of recorders) t.same(r.problems(seen.accepted), [], `${r.name}: every seq once, in order`);
    for (const [i, r] of c.replicas.entries()) await checkDevices(t, r, last, `r${i}`);
  });
}

t.test('two replicas with one client id: the second is refused at start', async (t) => {
  const c = await cluster(t, 1);
  if (!c) return;
  const second = spawnBridge(t, c.env(0));
  await t.rejects(second, /MQTT client id wiihey-bridge-a6157a33-r0 is in use by another replica on this Redis: give each replica its own REPLICA_ID/);
  const ready = await fetch(`${c.replicas[0]!.base}/readyz`);
  t.equal(ready.status, 200, 'the first goes on');
});

t.test('kill -9 of one replica mid-run (shared group): its waiting share is processed when it returns with its id', async (t) => {
  const c = await cluster(t, 2, { MQTT_SHARED_GROUP: 'bridges', HISTORY_LIMIT: '50' });
  if (!c) return;
  const pub = await publisher(t, c.broker, { clientId: 'publisher-kill9' });
  const total = 6000;
  const last = new Map<string, { state: string; timestamp: number }>();
  for (let i = 0; i < total; i++) {
    const deviceId = `d${i % 600}`;
    const timestamp = ts + i;
    const state = Math.floor(i / 600) % 2 === 0 ? 'open' : 'close';
    last.set(deviceId, { state, timestamp });
    await pub.publishAsync(TOPIC, message(deviceId, state, timestamp), { qos: 1 });
    if (i === 2000) {
      c.replicas[1]!.child.kill('SIGKILL');
      await c.replicas[1]!.exited;
    }
  }
  // the broker kept the dead replica's share in its session (SPEC §8): it comes back for it
  c.replicas[1] = await spawnBridge(t, c.env(1));
  // the counters of the killed process died with it: wait on the devices themselves
  const wrong = async (): Promise<string[]> => {
    const ids: string[] = [];
    for (let cursor: string | null = ''; cursor !== null;) {
      const page: { items: { deviceId: string; state: string; timestamp: number }[]; nextCursor: string | null } = await getJson(
        `${c.replicas[0]!.base}/devices?limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
      );
      for (const d of page.items) if (last.get(d.deviceId)?.timestamp !== d.timestamp || last.get(d.deviceId)?.state !== d.state) ids.push(d.deviceId);
      cursor = page.nextCursor;
    }
    return ids;
  };
  let left = await wrong();
  for (const deadline = Date.now() + 60_000; left.length > 0; left = await wrong()) {
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.same(left.slice(0, 5), [], 'every device in its last state');
  const back = await getJson<{ messages: { received: number } }>(`${c.replicas[1]!.base}/stats`);
  t.ok(back.messages.received > 0, `the returning replica took its waiting share (${back.messages.received} messages)`);
});
