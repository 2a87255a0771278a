import t from 'tap';
import type { DeviceRecord } from '../../src/devices/types.js';
import { MemoryStore } from '../../src/devices/stores/memory.js';
import type { StoreOutcome } from '../../src/devices/store.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { buildTestApp, nextEvent, testConfig } from '../helpers/app.js';
import { LogCapture } from '../helpers/log.js';

// SPEC §7: a message is acknowledged to the broker only after its effect is stored; a failed
// write is retried (never passed on as lost), and /readyz says 503 while the store fails.

class FlakyStore extends MemoryStore {
  failing = true;
  attempts = 0;
  override async apply(record: DeviceRecord, receivedAt: string): Promise<StoreOutcome> {
    this.attempts++;
    if (this.failing) throw new Error('disk full');
    return super.apply(record, receivedAt);
  }
}

const ts = Math.floor(Date.now() / 1000);

t.test('a failing store: retried until it works, /readyz 503 meanwhile, nothing lost', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const store = new FlakyStore({ historyLimit: 50 });
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'info', ...brokerEnv(broker) }), { store, logStream: log });
  await app.ready();
  await app.ingest.subscribedOnce;
  const pub = await publisher(t, broker);
  await pub.publishAsync(TOPIC, message('kept', 'open', ts), { qos: 1 });
  await log.waitFor((l) => l.msg === 'store write failed; retrying', 'the failure');
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 503);
  t.same(ready.json().reasons, ['store: disk full']);

  const arrived = nextEvent(app, (e) => e.deviceId === 'kept', 'the message, once stored');
  store.failing = false;
  await arrived;
  t.ok(store.attempts >= 2, `retried (${store.attempts} attempts)`);
  t.equal((await app.inject('/readyz')).statusCode, 200);
  await log.waitFor((l) => l.msg === 'store writes work again', 'the recovery');
});

t.test('no PUBACK before the write: a message that was never stored is redelivered to the next bridge', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const env = { LOG_LEVEL: 'info', ...brokerEnv(broker, { MQTT_CLIENT_ID: 'bridge-puback' }) };
  const broken = new FlakyStore({ historyLimit: 50 });
  const log = new LogCapture();
  const first = await buildTestApp(t, testConfig(env), { store: broken, logStream: log });
  await first.ready();
  await first.ingest.subscribedOnce;
  const pub = await publisher(t, broker);
  await pub.publishAsync(TOPIC, message('unacked', 'open', ts), { qos: 1 });
  await log.waitFor((l) => l.msg === 'store write failed; retrying', 'the failure');
  await first.close(); // a crash, as far as the broker is concerned: the message is still unacknowledged

  const second = await buildTestApp(t, testConfig(env));
  const redelivered = nextEvent(second, (e) => e.deviceId === 'unacked', 'the redelivery');
  await second.ready();
  await redelivered;
  t.equal((await second.inject('/devices/unacked')).json().state, 'open');
});
