import t from 'tap';
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import { buildTestApp, mqttStatus, testConfig, withTimeout } from '../helpers/app.js';

// Issue 7: a clean DISCONNECT on close, but never a close that waits forever for the broker.

t.test('close() ends within its bound when the broker never answers the SUBSCRIBE', async (t) => {
  const broker = await Aedes.createBroker();
  broker.authorizeSubscribe = () => {}; // never calls back: no SUBACK, ever
  const server = createServer((socket) => broker.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as { port: number };
  const app = await buildTestApp(t, testConfig({ MQTT_URL: `mqtt://127.0.0.1:${port}`, WIIHEY_APP_ID: 'close-test' }));
  const connected = mqttStatus(app, (s) => s.connected, 'connected');
  await app.ready();
  await connected;
  t.equal(app.ingest.status().subscribed, false, 'the SUBSCRIBE is still unanswered');
  const started = Date.now();
  await withTimeout(app.close(), 6000, () => 'app.close() with a SUBSCRIBE in flight');
  t.ok(Date.now() - started < 5000, `closed in ${Date.now() - started} ms`);
});

t.test('close() while the broker is unreachable ends at once', async (t) => {
  const server = createServer((socket) => socket.destroy()); // refuses every MQTT connection
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const app = await buildTestApp(t, testConfig({ MQTT_URL: `mqtt://127.0.0.1:${port}`, WIIHEY_APP_ID: 'close-test' }));
  await app.ready();
  await withTimeout(app.close(), 4000, () => 'app.close() without a broker');
  t.equal(app.ingest.status().connected, false);
});
