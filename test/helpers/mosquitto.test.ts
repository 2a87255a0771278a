import type { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import mqtt, { type MqttClient } from 'mqtt';
import t from 'tap';
import { startMosquitto } from './mosquitto.js';

const waitMs = 5_000; // every wait below ends by then, pass or fail

/** The arguments of the client's next `event`; rejects after waitMs. */
function next(client: MqttClient, event: 'message' | 'close' | 'connect' | 'error'): Promise<unknown[]> {
  // Not events.once: it rejects on any 'error', and a reconnecting client's refused attempts are expected.
  // MqttClient is an EventEmitter at runtime; its typed-emitter declaration hides that.
  const emitter = client as unknown as EventEmitter;
  return new Promise((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`no '${event}' within ${waitMs} ms`));
    }, waitMs);
    emitter.once(event, onEvent);
  });
}

t.test('TLS and a password file: the right password round-trips a publish, a wrong one is refused', async (t) => {
  const broker = await startMosquitto(t, { users: { bridge: 's3cret' } });
  if (!broker) return;
  t.match(broker.url, /^mqtts:\/\/localhost:\d+$/);
  if (!broker.certs) throw new Error('a TLS broker comes with certs');
  const ca = await readFile(broker.certs.ca);
  // reconnectPeriod 0 and allowRetries false: a refused connect rejects instead of retrying forever.
  const options = { ca, rejectUnauthorized: true, reconnectPeriod: 0, connectTimeout: waitMs };

  const client = await mqtt.connectAsync(broker.url, { ...options, username: 'bridge', password: 's3cret' }, false);
  t.teardown(() => client.endAsync(true));
  await client.subscribeAsync('wiihey/helpers/echo', { qos: 1 });
  const received = next(client, 'message');
  await client.publishAsync('wiihey/helpers/echo', 'hello', { qos: 1 });
  const [topic, payload] = (await received) as [string, Buffer];
  t.equal(topic, 'wiihey/helpers/echo');
  t.equal(payload.toString(), 'hello');

  await t.rejects(
    mqtt.connectAsync(broker.url, { ...options, username: 'bridge', password: 'wrong' }, false),
    // mosquitto 2.0.11 answers 5 "not authorized" (135 on MQTT 5), not 4 "bad user name or password".
    { code: 5, message: /not authorized/i },
    'a wrong password is refused at CONNACK',
  );
});

t.test('kill, then start: the broker comes back on the same port', async (t) => {
  const broker = await startMosquitto(t, { tls: false });
  if (!broker) return;
  const { port } = broker;
  t.equal(broker.url, `mqtt://127.0.0.1:${port}`);
  t.equal(broker.certs, null);

  // Reconnecting by itself, as the bridge's client does.
  const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 50, connectTimeout: waitMs });
  t.teardown(() => client.endAsync(true));
  // While the broker is down each retry fails with ECONNREFUSED, emitted as 'error': expected here.
  client.on('error', () => {});
  const closed = next(client, 'close');
  await broker.kill();
  await closed;
  const [refused] = await next(client, 'error');
  t.match(refused, { code: 'ECONNREFUSED' }, 'killed means down: a retry meets a closed port');

  const reconnected = next(client, 'connect');
  await broker.start();
  t.equal(broker.port, port, 'same port after start()');
  await reconnected;
  t.ok(client.connected, 'the reconnecting client is back');

  const fresh = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: waitMs }, false);
  t.teardown(() => fresh.endAsync(true));
  t.ok(fresh.connected, 'a new client connects');

  // stop() is the graceful path: mosquitto logs its goodbye, and comes back as well.
  await broker.stop();
  t.match(broker.log(), /terminating/);
  await broker.start();
  const again = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: waitMs }, false);
  t.teardown(() => again.endAsync(true));
  t.ok(again.connected, 'connects after stop() and start()');
});
