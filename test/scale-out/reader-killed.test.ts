import t from 'tap';
import { createClient } from 'redis';
import { startMosquitto } from '../helpers/mosquitto.js';
import { startRedis } from '../helpers/redis.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { spawnBridge } from '../helpers/process.js';
import { SeqRecorder } from './recorders.js';

// SPEC §8: a replica whose event log connection drops resumes from its last id with no gap. The
// readers' connections are killed on the Redis side (CLIENT KILL) in the middle of a 5,000-event
// burst, twice: every client of every replica ends with every event once, in order. (Where the
// log no longer reaches back, the clients are reset: test/scale-out/log-gap.test.ts.)

const EVENTS = 5000;
const ts = Math.floor(Date.now() / 1000) - 100_000;

t.test('CLIENT KILL of the replicas’ log readers during a 5,000-event burst', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const env = (i: number) => ({
    ...brokerEnv(broker, { REDIS_URL: redis.url, REPLICA_ID: `c${i}`, MQTT_SHARED_GROUP: 'kill', ALARMS_ENABLED: 'false', EVENT_BUFFER: '20000' }),
    WS_MAX_BUFFERED_BYTES: String(256 * 1024 * 1024),
  });
  const replicas = await Promise.all([spawnBridge(t, env(0)), spawnBridge(t, env(1))]);
  const recorders = await Promise.all(replicas.flatMap((r, i) => [SeqRecorder.ws(t, r.base, `c${i} /ws`), SeqRecorder.sse(t, r.base, `c${i} /events`), SeqRecorder.graphql(t, r.base, `c${i} graphql-ws`)]));
  const admin = createClient({ url: redis.url, socket: { reconnectStrategy: false } });
  admin.on('error', () => {});
  await admin.connect();
  t.teardown(() => admin.destroy());
  const killReaders = async (): Promise<number> => {
    const list = String(await admin.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']));
    const ids = list.split('\n').filter((l) => / name=wiihey-bridge:reader:/.test(l)).map((l) => /(?:^| )id=(\d+)/.exec(l)![1]!);
    for (const id of ids) await admin.sendCommand(['CLIENT', 'KILL', 'ID', id]);
    return ids.length;
  };

  const pub = await publisher(t, broker, { clientId: 'publisher-kill' });
  let killed = 0;
  for (let i = 0; i < EVENTS; i++) {
    await pub.publishAsync(TOPIC, message(`c${i % 500}`, 'close', ts + i), { qos: 1 });
    if (i === 1500 || i === 3500) killed += await killReaders();
  }
  t.equal(killed, 4, 'both readers of both replicas were killed, twice');
  const seq = async () => Number(await admin.sendCommand(['GET', `wiihey-bridge:${APP_ID}:seq`]));
  for (const deadline = Date.now() + 60_000; (await seq()) < EVENTS;) {
    if (Date.now() > deadline) throw new Error(`${await seq()} of ${EVENTS} events stored`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // the log keeps more than the burst (EVENT_BUFFER): each reader resumes from its last id
  await Promise.all(recorders.map((r) => r.until(EVENTS, 30_000)));
  for (const r of recorders) t.same(r.problems(EVENTS), [], `${r.name}: every event once, in order`);
});
