import t from 'tap';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { mqttStatus, nextEvent } from '../helpers/app.js';

// SPEC §2/§6: the bridge connects over mqtts with APP-ID / APP-KEY, and REST shows what arrives.

const now = (): number => Math.floor(Date.now() / 1000);

t.test('mqtts with APP-ID / APP-KEY: published messages reach REST', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } });
  if (!broker) return;
  const { app } = await startBridge(t, broker);
  await app.ready();
  await app.ingest.subscribedOnce;
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready once subscribed');

  const pub = await publisher(t, broker);
  const ts = now();
  const arrived = nextEvent(app, (e) => e.deviceId === '5da6f03c', 'the vendor sample');
  await pub.publishAsync(TOPIC, '{"CustomerID":"a6157a33","DeviceID":"5da6f03c","Timestamp":"' + ts + '","State":"open","IMEI":"351756051523999","ICCID":"89014103243534707921","CSQ":30}', { qos: 1 });
  await arrived;
  const device = (await app.inject('/devices/5da6f03c')).json();
  t.equal(device.state, 'open');
  t.equal(device.appId, APP_ID);
  t.equal(device.csq, 30);
  t.equal(device.timestamp, ts);

  const change = nextEvent(app, (e) => e.kind === 'update' && e.changed && e.device?.state === 'close', 'the change');
  await pub.publishAsync(TOPIC, message('5da6f03c', 'close', ts + 1), { qos: 1 });
  const event = await change;
  t.equal(event.kind === 'update' && event.previousState, 'open');
  const stats = (await app.inject('/stats')).json();
  t.same(stats.messages, { received: 2, accepted: 2, duplicate: 0, late: 0, invalid: 0 });
  t.equal(stats.mqtt.connected, true);
  t.equal(stats.mqtt.subscribed, true);
});

t.test('a wrong password: a clear error in the log, /readyz 503, no crash', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } });
  if (!broker) return;
  const { app, log } = await startBridge(t, broker, { WIIHEY_APP_KEY: 'wrong-key' });
  await app.ready();
  const line = await log.waitFor((l) => l.level === 50 && /WIIHEY_APP_KEY/.test(l.msg), 'the refusal');
  t.match(line.msg, /Connection refused: (Bad username or password|Not authorized): check WIIHEY_APP_ID and WIIHEY_APP_KEY/);
  t.notMatch(log.text(), /wrong-key/, 'the key is never logged');
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 503);
  t.match(ready.json().reasons[0], /not connected to mqtts:\/\/localhost:\d+: Connection refused/);
  t.notMatch(ready.body, /wrong-key/);
  await mqttStatus(app, (s) => s.reconnects >= 2, 'more attempts');
  t.equal((await app.inject('/healthz')).statusCode, 200, 'the process keeps running and retrying');
});

t.test('a wrong CA: a clear TLS error in the log, /readyz 503, no crash', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } });
  const other = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } }); // its CA signed another server
  if (!broker || !other) return;
  const { app, log } = await startBridge(t, broker, { MQTT_CA_FILE: other.certs!.ca });
  await app.ready();
  const line = await log.waitFor((l) => l.level === 50 && /TLS/.test(l.msg), 'the TLS error');
  t.match(line.msg, /TLS: the broker's certificate is not trusted .*check MQTT_CA_FILE/);
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 503);
  t.match(ready.json().reasons[0], /check MQTT_CA_FILE/);
});

t.test('MQTT_TLS_INSECURE=true connects without checking, and says so', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } });
  if (!broker) return;
  const { app, log } = await startBridge(t, broker, { MQTT_CA_FILE: '', MQTT_TLS_INSECURE: 'true' });
  await app.ready();
  await app.ingest.subscribedOnce;
  t.ok(log.lines.some((l) => l.level === 40 && /NOT verified/.test(l.msg)), 'a warning at start');
});

t.test('wss:// (MQTT over secure WebSocket, as the vendor demo) works too', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, websockets: true });
  if (!broker) return;
  const { app } = await startBridge(t, broker, { MQTT_URL: broker.wsUrl! });
  await app.ready();
  await app.ingest.subscribedOnce;
  const pub = await publisher(t, broker);
  const arrived = nextEvent(app, (e) => e.deviceId === 'over-wss', 'the message');
  await pub.publishAsync(TOPIC, message('over-wss', 'open', now()), { qos: 1 });
  await arrived;
  t.equal((await app.inject('/stats')).json().mqtt.connected, true);
});

t.test('a client certificate: MQTT_CERT_FILE and MQTT_KEY_FILE', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, requireClientCertificate: true });
  if (!broker) return;
  const { app } = await startBridge(t, broker, { MQTT_CERT_FILE: broker.certs!.clientCert, MQTT_KEY_FILE: broker.certs!.clientKey });
  await app.ready();
  await app.ingest.subscribedOnce;
  t.equal((await app.inject('/readyz')).statusCode, 200, 'connected with the certificate');

  const without = await startBridge(t, broker, { MQTT_CLIENT_ID: 'no-cert' });
  await without.app.ready();
  const refusal = await without.log.waitFor((l) => l.level === 50 && /^MQTT: /.test(l.msg), 'the refusal');
  t.equal(refusal.msg, 'MQTT: TLS: the broker requires a client certificate; set MQTT_CERT_FILE and MQTT_KEY_FILE');
  t.equal((await without.app.inject('/readyz')).statusCode, 503, 'refused without one');
});
