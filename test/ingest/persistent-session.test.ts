import t from 'tap';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { mqttStatus, nextEvent, withTimeout } from '../helpers/app.js';

// SPEC §6/§7: QoS 1 and a persistent session under a fixed client id, so the broker keeps what
// arrives while the bridge is away; and the bridge comes back by itself when the broker does.

const ts = Math.floor(Date.now() / 1000);

t.test('messages published while the bridge is stopped arrive when it starts again', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } });
  if (!broker) return;
  const first = await startBridge(t, broker, { MQTT_CLIENT_ID: 'bridge-persistent' });
  await first.app.ready();
  await first.app.ingest.subscribedOnce;
  await first.app.close();

  const pub = await publisher(t, broker);
  const count = 200;
  for (let i = 0; i < count; i++) await pub.publishAsync(TOPIC, message(`offline-${i}`, 'open', ts), { qos: 1 });

  const second = await startBridge(t, broker, { MQTT_CLIENT_ID: 'bridge-persistent' });
  const seen = new Set<string>();
  const all = new Promise<void>((resolve) => {
    second.app.devices.events.subscribe((e) => {
      seen.add(e.deviceId);
      if (seen.size === count) resolve();
    });
  });
  await second.app.ready();
  await withTimeout(all, 20_000, () => `only ${seen.size} of ${count} arrived`);
  t.equal(seen.size, count, 'every message queued by the broker arrived');
  t.ok(second.log.lines.some((l) => l.msg === 'MQTT connected' && l.sessionPresent === true), 'the broker kept the session');
  t.equal((await second.app.inject('/devices')).json().total, count);
});

t.test('Mosquitto killed and restarted while publishing: the bridge reconnects and subscribes again', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } }); // no persistence: the session dies with it
  if (!broker) return;
  const { app, log } = await startBridge(t, broker);
  await app.ready();
  await app.ingest.subscribedOnce;
  const pub = await publisher(t, broker);
  let n = 0;
  const publishing = setInterval(() => {
    n++;
    pub.publish(TOPIC, message('busy', n % 2 ? 'open' : 'close', ts + n), { qos: 1 }, () => {});
  }, 10);
  t.teardown(() => clearInterval(publishing));
  await nextEvent(app, (e) => e.deviceId === 'busy', 'traffic before the restart');

  await broker.kill();
  await mqttStatus(app, (s) => !s.connected, 'the disconnect');
  t.equal((await app.inject('/readyz')).statusCode, 503, 'not ready while the broker is gone');
  await broker.start();
  const status = await mqttStatus(app, (s) => s.connected && s.subscribed, 'the re-subscription', 20_000);
  t.ok(status.reconnects >= 1);
  t.equal((await app.inject('/readyz')).statusCode, 200);
  t.ok(log.lines.some((l) => l.msg === 'MQTT connected' && l.sessionPresent === false), 'a new session on the new broker');

  const before = n;
  await nextEvent(app, (e) => e.deviceId === 'busy' && (e.device?.timestamp ?? 0) > ts + before, 'traffic after the restart', 20_000);
  clearInterval(publishing);
  t.pass('messages published after the restart arrive');
});
