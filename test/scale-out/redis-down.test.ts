import t from 'tap';
import { createClient } from 'redis';
import { startMosquitto } from '../helpers/mosquitto.js';
import { startRedis } from '../helpers/redis.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { getJson, spawnBridge, type BridgeProcess } from '../helpers/process.js';
import { SeqRecorder } from './recorders.js';

// SPEC §8: Redis killed (-9) and restarted in the middle of a run, with appendfsync always: the
// replicas answer 503 on /readyz meanwhile, acknowledge nothing, keep their live clients, and
// recover by themselves; no acknowledged message is lost, and every client of every replica
// gets every event once, in order.

const DEVICES = 200;
const MESSAGES = 2000;
const ts = Math.floor(Date.now() / 1000) - 100_000;

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value).slice(0, 300)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const readiness = async (r: BridgeProcess) => {
  const res = await fetch(`${r.base}/readyz`);
  return { status: res.status, body: (await res.json()) as { reasons: string[] } };
};

t.test('Redis killed with -9 and restarted mid-run (appendfsync always): 503 meanwhile, then nothing lost', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const redis = await startRedis(t, { appendonly: true, appendfsync: 'always' });
  if (!redis) return;
  const env = (i: number) => ({
    ...brokerEnv(broker, { REDIS_URL: redis.url, REPLICA_ID: `k${i}`, MQTT_SHARED_GROUP: 'down', ALARMS_ENABLED: 'false' }),
    WS_MAX_BUFFERED_BYTES: String(256 * 1024 * 1024),
  });
  const replicas = await Promise.all([spawnBridge(t, env(0)), spawnBridge(t, env(1))]);
  t.match(replicas[0]!.lines.map((l) => l.msg).join('\n'), /appendfsync always: every acknowledged message is on Redis's disk/, 'the guarantee is said at start');
  const recorders = await Promise.all(replicas.flatMap((r, i) => [SeqRecorder.ws(t, r.base, `k${i} /ws`), SeqRecorder.sse(t, r.base, `k${i} /events`)]));
  const pub = await publisher(t, broker, { clientId: 'publisher-down' });
  const publish = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) await pub.publishAsync(TOPIC, message(`k${i % DEVICES}`, Math.floor(i / DEVICES) % 2 === 0 ? 'open' : 'close', ts + i), { qos: 1 });
  };

  await publish(0, MESSAGES / 2);
  await redis.kill();
  for (const r of replicas) {
    const down = await until(() => readiness(r), (x) => x.status === 503, '/readyz 503');
    t.match(down.body.reasons.join('; '), /redis: not connected/, 'and it says why');
    t.match(await (await fetch(`${r.base}/metrics`)).text(), /^wiihey_bridge_store_up 0$/m, 'and /metrics');
  }
  const read = await fetch(`${replicas[0]!.base}/devices/k0`);
  t.equal(read.status, 503, 'a read while Redis is away: 503');
  t.equal(((await read.json()) as { code: string }).code, 'BRG_ERR_STORE_UNAVAILABLE', 'with a code that says so');
  const query = await fetch(`${replicas[0]!.base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ device(deviceId: "k0") { state } }' }) });
  const answer = (await query.json()) as { errors?: { extensions?: { code?: string } }[] };
  t.equal(answer.errors?.[0]?.extensions?.code, 'BRG_ERR_STORE_UNAVAILABLE', 'GraphQL says the same');
  await publish(MESSAGES / 2, MESSAGES); // the broker keeps what is not acknowledged
  t.ok(recorders.every((r) => r.ended === null), 'the live clients stay connected');
  await redis.start();
  for (const r of replicas) await until(() => readiness(r), (x) => x.status === 200, '/readyz 200 again');

  const sum = async () => {
    const stats = await Promise.all(replicas.map((r) => getJson<{ messages: { accepted: number; late: number; duplicate: number } }>(`${r.base}/stats`)));
    return stats.reduce((n, s) => n + s.messages.accepted + s.messages.late + s.messages.duplicate, 0);
  };
  await until(sum, (n) => n >= MESSAGES, 'every message taken', 60_000);

  // from Redis itself: every message of every device is in its history, once; the last state is the last message
  const client = createClient({ url: redis.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const missing: string[] = [];
  const twice: string[] = [];
  for (let d = 0; d < DEVICES; d++) {
    const entries = (await client.sendCommand(['LRANGE', `wiihey-bridge:${APP_ID}:h:k${d}`, '0', '-1'])) as string[];
    const stamps = entries.map((e) => (JSON.parse(e) as { timestamp: number }).timestamp);
    for (let i = d; i < MESSAGES; i += DEVICES) if (!stamps.includes(ts + i)) missing.push(`k${d}@${i}`);
    if (new Set(stamps).size !== stamps.length) twice.push(`k${d}`);
  }
  t.same(missing.slice(0, 5), [], 'no acknowledged message lost');
  t.same(twice, [], 'none stored twice');
  const device = await getJson<{ timestamp: number }>(`${replicas[1]!.base}/devices/k0`);
  t.equal(device.timestamp, ts + MESSAGES - DEVICES, 'the last state is the last message');

  const events = Number(await client.sendCommand(['GET', `wiihey-bridge:${APP_ID}:seq`]));
  await Promise.all(recorders.map((r) => r.until(events, 30_000)));
  for (const r of recorders) t.same(r.problems(events), [], `${r.name}: every event once, in order, across the outage`);
});
