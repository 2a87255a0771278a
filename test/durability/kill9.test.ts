import { join } from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { getJson, spawnBridge, type BridgeProcess } from '../helpers/process.js';
import { withTimeout } from '../helpers/app.js';
import { Receiver, SECRET } from '../helpers/receiver.js';

// SPEC §7: acknowledged only once durable, a persistent session, and the duplicate rule: kill -9
// at any moment loses nothing and gives no message two seqs. Real processes, a real Mosquitto.

const DEVICES = 1000;
const MESSAGES = 10_000;
const ts = Math.floor(Date.now() / 1000) - 100_000;

interface Device {
  deviceId: string;
  state: string;
  timestamp: number;
}

t.test('kill -9 of the bridge (and a Mosquitto restart) while 10,000 QoS 1 messages flow', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false, persistence: true });
  if (!broker) return;
  const dataDir = t.testdir();
  const receiver = await Receiver.start(t);
  const env = {
    // one seq per message: alarms off here (test/durability/kill9-alarms.test.ts has them on)
    ...brokerEnv(broker, { MQTT_CLIENT_ID: 'bridge-kill9', DATA_DIR: dataDir, HISTORY_LIMIT: '50', ALARMS_ENABLED: 'false' }),
    EMBEDDED_MQTT_PORT: '0',
    WEBHOOK_URLS: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_RETRY_SECONDS: '0.1,0.2,0.5,1,1,1,1,1,1,1',
  };
  let bridge: BridgeProcess = await spawnBridge(t, env, dataDir);
  const pub = await publisher(t, broker, { clientId: 'publisher-kill9' });

  const last = new Map<string, { state: string; timestamp: number }>();
  // three kills at random moments (SPEC §7: any moment); KILL9_SEED=n repeats a run's moments
  const seed = Number(process.env.KILL9_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const kills = killMoments(seed, 3);
  t.comment(`kill -9 after messages ${[...kills].join(', ')} (KILL9_SEED=${seed})`);
  for (let i = 0; i < MESSAGES; i++) {
    const deviceId = `d${i % DEVICES}`;
    const timestamp = ts + Math.floor(i / DEVICES);
    const state = (i * 7919) % 3 === 0 ? 'open' : 'close';
    last.set(deviceId, { state, timestamp });
    await pub.publishAsync(TOPIC, message(deviceId, state, timestamp), { qos: 1 });
    if (kills.has(i)) {
      bridge.child.kill('SIGKILL');
      await bridge.exited;
      bridge = await spawnBridge(t, env, dataDir);
    }
    if (i === 5500) {
      // the broker goes down and comes back: sessions and queued messages persist (SIGTERM saves them)
      await broker.stop();
      await broker.start();
      await withTimeout(new Promise<void>((resolve) => (pub.connected ? resolve() : pub.once('connect', () => resolve()))), 10_000, () => 'publisher reconnect');
    }
  }
  await pub.publishAsync(TOPIC, message('sentinel', 'open', ts + 100), { qos: 1 });

  // the broker delivers one session's messages in order: once the sentinel is in, all are
  const deadline = Date.now() + 60_000;
  while ((await fetch(`${bridge.base}/devices/sentinel`)).status !== 200) {
    if (Date.now() > deadline) throw new Error('the sentinel never arrived');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const seen = new Map<string, Device>();
  for (let cursor: string | null = ''; cursor !== null;) {
    const page: { items: Device[]; nextCursor: string | null } = await getJson(`${bridge.base}/devices?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    for (const d of page.items) seen.set(d.deviceId, d);
    cursor = page.nextCursor;
  }
  t.equal(seen.size, DEVICES + 1, 'every device is there');
  const wrong = [...last].filter(([id, want]) => seen.get(id)?.state !== want.state || seen.get(id)?.timestamp !== want.timestamp);
  t.same(wrong.slice(0, 5), [], 'every device holds the last message published for it');

  // every state change reaches the webhook receiver (its own minute: a busy machine is slower)
  const webhookDeadline = Date.now() + 60_000;
  while ((await getJson<{ webhooks: { pending: number } }>(`${bridge.base}/stats`)).webhooks.pending > 0) {
    if (Date.now() > webhookDeadline) throw new Error('webhooks still pending');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  bridge.child.kill('SIGTERM');
  t.equal(await bridge.exited, 0, 'a clean stop');
  const db = new Database(join(dataDir, 'wiihey-bridge.db'), { readonly: true });
  t.teardown(() => db.close());
  const doubled = db.prepare('SELECT device_id, timestamp, count(*) AS n FROM history GROUP BY device_id, timestamp HAVING n > 1').all();
  t.same(doubled, [], 'no message is in a history twice');
  const lastSeq = (db.prepare('SELECT max(seq) AS seq FROM events').get() as { seq: number }).seq;
  t.equal(lastSeq, MESSAGES + 1, 'one seq per message: none lost, none given two');

  // the state changes, from the stored histories (each device has all of its 10 messages there)
  const rows = db.prepare("SELECT device_id, timestamp, state FROM history WHERE kind = 'update' ORDER BY device_id, timestamp").all() as { device_id: string; timestamp: number; state: string }[];
  const changes = new Set<string>();
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const before = rows[i - 1];
    if (before === undefined || before.device_id !== r.device_id || before.state !== r.state) changes.add(`${r.device_id}@${r.timestamp}`);
  }
  const ids = new Map<string, Set<string>>();
  for (const r of receiver.accepted) {
    const key = `${r.body.data.device.deviceId}@${(r.body.data.device as unknown as { timestamp: number }).timestamp}`;
    ids.set(key, (ids.get(key) ?? new Set()).add(r.id));
  }
  t.same([...changes].filter((k) => !ids.has(k)).slice(0, 5), [], 'every state change reached the receiver');
  t.same([...ids.keys()].filter((k) => !changes.has(k)).slice(0, 5), [], 'and nothing else');
  t.same([...ids].filter(([, set]) => set.size > 1).slice(0, 5), [], 'a repeat only ever with the same webhook-id');
  t.ok(receiver.accepted.every((r) => r.verified), 'every signature verifies');
});

/** `n` distinct message indexes in 500..9,499, from a seed (mulberry32). */
function killMoments(seed: number, n: number): Set<number> {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
  const moments = new Set<number>();
  while (moments.size < n) moments.add(500 + Math.floor(next() * (MESSAGES - 1000)));
  return moments;
}
