import { join } from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { spawnBridge, type BridgeProcess } from '../helpers/process.js';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { ManualClock } from '../helpers/clock.js';
import { record } from '../helpers/records.js';
import { DEFAULT_ALARM_SETTINGS, NO_ALARMS, applyChanges, onMessage, type Alarm, type AlarmSettings, type DeviceAlarms } from '../../src/devices/alarms.js';
import { apply } from '../../src/devices/rules.js';
import type { Device, DeviceRecord } from '../../src/devices/types.js';

// SPEC §12: alarms are decided in the write that stores their cause, so they survive kill -9
// like the devices: afterwards the alarms are exactly what the messages imply, none twice, none
// lost. Real processes, a real Mosquitto, a real SQLite file; the expected alarms come from the
// pure rules run over the same messages.

const DEVICES = 500;
const MESSAGES = 5000;
const ts = Math.floor(Date.now() / 1000) - 100_000;
// no escalation: the sweep runs on the bridge's real clock, at moments this test does not choose
const SETTINGS: AlarmSettings = { ...DEFAULT_ALARM_SETTINGS, openCriticalSeconds: 1_000_000_000 };

/** The message of step i: opens, closes and low batteries, each device's in timestamp order. */
function step(i: number): DeviceRecord & { battery: number } {
  const deviceId = `d${i % DEVICES}`;
  const timestamp = ts + Math.floor(i / DEVICES);
  const state = (i * 7919) % 3 === 0 ? 'open' : 'close';
  const battery = (i * 104_729) % 5 === 0 ? 1500 : 9000;
  return { ...record({ deviceId, state, timestamp, batteryLevel: battery }), battery };
}

/** What a cause implies: the alarms, by (device, type, raisedAt), with their status and clearedAt. */
function implied(messages: DeviceRecord[]): Map<string, string> {
  const devices = new Map<string, Device>();
  const alarms = new Map<string, DeviceAlarms>();
  const all = new Map<string, Alarm>();
  let n = 0;
  for (const rec of messages) {
    const before = devices.get(rec.deviceId);
    const outcome = apply(before, rec, 'x');
    if (outcome.kind !== 'update') continue;
    devices.set(rec.deviceId, outcome.device);
    const changes = onMessage(before, outcome.device, alarms.get(rec.deviceId) ?? NO_ALARMS, SETTINGS);
    const done = applyChanges(rec.deviceId, alarms.get(rec.deviceId) ?? NO_ALARMS, changes, null, 'x', () => `x${++n}`);
    alarms.set(rec.deviceId, done.after);
    for (const { alarm } of done.applied) all.set(alarm.alarmId, alarm);
  }
  return new Map([...all.values()].map((a) => [key(a), `${a.status}:${a.clearedAt}`]));
}

const key = (a: Pick<Alarm, 'deviceId' | 'type' | 'raisedAt'>): string => `${a.deviceId}/${a.type}@${a.raisedAt}`;

t.test('kill -9 while 5,000 messages raise and clear alarms: the alarms are what the messages imply, none twice', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const dataDir = t.testdir();
  const env = {
    ...brokerEnv(broker, { MQTT_CLIENT_ID: 'bridge-kill9-alarms', DATA_DIR: dataDir, ALARM_OPEN_CRITICAL_SECONDS: String(SETTINGS.openCriticalSeconds) }),
    EMBEDDED_MQTT_PORT: '0',
  };
  let bridge: BridgeProcess = await spawnBridge(t, env, dataDir);
  const pub = await publisher(t, broker, { clientId: 'publisher-kill9-alarms' });
  const sent: DeviceRecord[] = [];
  const kills = new Set([900, 2300, 3700]);
  for (let i = 0; i < MESSAGES; i++) {
    const rec = step(i);
    sent.push(rec);
    await pub.publishAsync(TOPIC, message(rec.deviceId, rec.state, rec.timestamp, { BatteryLevel: rec.battery }), { qos: 1 });
    if (i % 1000 === 999) {
      // a redelivery of an old message in the middle: a duplicate touches no alarm
      const old = step(i - 600);
      await pub.publishAsync(TOPIC, message(old.deviceId, old.state, old.timestamp, { BatteryLevel: old.battery }), { qos: 1 });
      sent.push(old);
    }
    if (kills.has(i)) {
      bridge.child.kill('SIGKILL');
      await bridge.exited;
      bridge = await spawnBridge(t, env, dataDir);
    }
  }
  const sentinel = record({ deviceId: 'sentinel', state: 'open', timestamp: ts + 100 });
  sent.push(sentinel);
  await pub.publishAsync(TOPIC, message(sentinel.deviceId, sentinel.state, sentinel.timestamp), { qos: 1 });
  const deadline = Date.now() + 60_000;
  while ((await fetch(`${bridge.base}/devices/sentinel`)).status !== 200) {
    if (Date.now() > deadline) throw new Error('the sentinel never arrived');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  bridge.child.kill('SIGTERM');
  t.equal(await bridge.exited, 0, 'a clean stop');

  const db = new Database(join(dataDir, 'wiihey-bridge.db'), { readonly: true });
  t.teardown(() => db.close());
  const stored = (db.prepare('SELECT json FROM alarms').all() as { json: string }[]).map((r) => JSON.parse(r.json) as Alarm);
  const expected = implied(sent);
  const got = new Map<string, string>();
  const twice: string[] = [];
  for (const a of stored) {
    if (got.has(key(a))) twice.push(key(a));
    got.set(key(a), `${a.status}:${a.clearedAt}`);
  }
  t.same(twice, [], 'no alarm twice');
  t.ok(expected.size > 500, `the messages raise many alarms (${expected.size})`);
  t.same([...expected].filter(([k, v]) => got.get(k) !== v).slice(0, 5), [], 'every alarm the messages imply, in its state');
  t.same([...got.keys()].filter((k) => !expected.has(k)).slice(0, 5), [], 'and no other');
  const active = db.prepare("SELECT device_id, type, count(*) AS k FROM alarms WHERE status = 'active' GROUP BY device_id, type HAVING k > 1").all();
  t.same(active, [], 'at most one active alarm per device and type');
  const seqs = db.prepare("SELECT count(*) AS n, count(DISTINCT seq) AS d FROM events WHERE kind = 'alarm'").get() as { n: number; d: number };
  t.equal(seqs.n, seqs.d, 'each kept alarm event has a seq of its own');
});

t.test('a timed alarm that fell due while the bridge was down is raised at start, at its true time', async (t) => {
  const dir = t.testdir();
  const T = 1_800_000_000;
  const env = { DATA_DIR: dir, ALARM_OPEN_AFTER_SECONDS: '600' };
  const clock = new ManualClock(T * 1000);
  const first = await buildTestApp(t, testConfig(env), { connectMqtt: false, clock });
  await first.ready();
  const opened = await first.devices.accept(record({ deviceId: 'mh', state: 'open', timestamp: T - 100 }), clock.now());
  t.same(opened.kind === 'update' && opened.alarms, [], 'not due yet: open 100 s of 600');
  await first.close();

  const later = new ManualClock((T + 3600) * 1000); // an hour later: due at T + 500
  const second = await buildTestApp(t, testConfig(env), { connectMqtt: false, clock: later });
  await second.ready(); // the first sweep runs at start
  const page = await second.devices.store.listAlarms({ deviceId: 'mh', limit: 10 });
  t.same(page.items.map((a) => [a.type, a.severity, a.raisedAt]), [['cover_open', 'critical', new Date((T + 500) * 1000).toISOString()]], 'raised at open + delay, and escalated (open over an hour)');
  t.equal(page.items[0]!.raisedReceivedAt, new Date((T + 3600) * 1000).toISOString(), 'the bridge time beside it says when it was noticed');
});
