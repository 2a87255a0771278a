import t, { type Test } from 'tap';
import { startMosquitto } from '../helpers/mosquitto.js';
import { startRedis } from '../helpers/redis.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { spawnBridge, type BridgeProcess } from '../helpers/process.js';
import { Receiver, SECRET } from '../helpers/receiver.js';

// SPEC §8: webhooks across replicas. Each delivery is claimed by one replica at a time: a
// receiver sees each state change once while replicas come and go, and a delivery whose replica
// was killed during its attempt is sent by another once the claim ends.

const ts = Math.floor(Date.now() / 1000) - 100_000;

async function setup(t: Test, group: string | null) {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return undefined;
  const redis = await startRedis(t, { appendonly: true, appendfsync: 'everysec' });
  if (!redis) return undefined;
  const receiver = await Receiver.start(t);
  const env = (i: number) => ({
    ...brokerEnv(broker, { REDIS_URL: redis.url, REPLICA_ID: `w${i}`, ALARMS_ENABLED: 'false', ...(group === null ? {} : { MQTT_SHARED_GROUP: group }) }),
    WEBHOOK_URLS: receiver.url,
    WEBHOOK_SECRET: SECRET,
    // a claim lasts twice the timeout and 5 s: a killed replica's attempt is taken over after 7 s
    WEBHOOK_TIMEOUT_SECONDS: '1',
    WEBHOOK_RETRY_SECONDS: '0.2,0.2,0.2,0.2,0.2',
  });
  const replicas: BridgeProcess[] = await Promise.all([spawnBridge(t, env(0)), spawnBridge(t, env(1))]);
  const pub = await publisher(t, broker, { clientId: 'publisher-hooks' });
  // message i: device h<i % 100>, a change of state each (a webhook each)
  const publish = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) await pub.publishAsync(TOPIC, message(`h${i % 100}`, Math.floor(i / 100) % 2 === 0 ? 'open' : 'close', ts + i), { qos: 1 });
  };
  return { receiver, replicas, env, publish };
}

t.test('two replicas and a shared group, one of them restarted meanwhile: the receiver gets each state change once', async (t) => {
  const c = await setup(t, 'hooks');
  if (!c) return;
  const { receiver, replicas, env, publish } = c;
  await publish(0, 300);
  // a replica goes and comes back with its id: its share waited in its session (SPEC §8)
  await stop(replicas[1]!);
  await publish(300, 450);
  replicas[1] = await spawnBridge(t, env(1));
  await publish(450, 600);
  const ids = (): Map<string, number> => {
    const seen = new Map<string, number>();
    for (const r of receiver.accepted) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
    return seen;
  };
  await receiver.until(() => ids().size === 600, '600 distinct webhooks', 60_000);
  t.equal(new Set(receiver.accepted.map((r) => r.body.data.seq)).size, 600, 'one per state change, each its own seq');
  t.same([...ids()].filter(([, n]) => n > 1), [], 'none sent twice');
  t.ok(receiver.accepted.every((r) => r.verified), 'every signature verifies');
});

t.test('a replica killed during a webhook attempt: another sends the delivery once its claim ends', async (t) => {
  // without a shared group, so that the one replica up takes the message
  const c = await setup(t, null);
  if (!c) return;
  const { receiver, replicas, env, publish } = c;
  await stop(replicas[1]!);
  let held: string | null = null;
  receiver.behaviour = (req) => {
    if (held === null) {
      held = String(req.headers['webhook-id']);
      return { status: 204, hold: true }; // no answer: the attempt is under way when its sender dies
    }
    return { status: 204 };
  };
  await publish(0, 1);
  await receiver.until((r) => r.received.length > 0, 'the attempt', 10_000);
  replicas[0]!.child.kill('SIGKILL');
  await replicas[0]!.exited;
  replicas[1] = await spawnBridge(t, env(1));
  await receiver.until((r) => r.accepted.some((a) => a.id === held), 'the same delivery from the other replica', 30_000);
  t.equal(receiver.accepted.length, 1, 'delivered once');
  t.equal(receiver.accepted[0]!.id, held, 'with the same webhook-id');
});

async function stop(replica: BridgeProcess): Promise<void> {
  replica.child.kill('SIGTERM');
  await replica.exited;
}
