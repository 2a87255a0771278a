import { createRequire } from 'node:module';
import t from 'tap';
import type { MqttClient, Packet } from 'mqtt';
import { APP_ID, APP_KEY, TOPIC, message } from '../helpers/bridge.js';
import { buildTestApp, testConfig, until } from '../helpers/app.js';
import { startScriptedBroker } from '../helpers/scripted-broker.js';

// SPEC §7: the PUBACK hold fails closed. Should an MQTT.js upgrade write a PUBACK some other way
// than the hold expects, the bridge acknowledges nothing more (the broker keeps the messages for a
// bridge that works), cuts the connection, and /readyz says why. Simulated here by swapping MQTT.js's
// own PUBLISH handler for one that writes the PUBACK straight to the wire.

const require = createRequire(import.meta.url);
type Handler = (client: MqttClient, packet: Packet, done: () => void) => void;
const publishModule = require('mqtt/lib/handlers/publish') as { default: Handler };

t.test('a PUBACK written past the hold: nothing is acknowledged, the connection is cut, /readyz says why', async (t) => {
  const original = publishModule.default;
  publishModule.default = (client, packet, done) => {
    if (packet.cmd === 'publish' && packet.qos === 1) {
      // a changed MQTT.js: acknowledges before handing the message over
      (client as unknown as { _writePacket: (p: Packet) => void })._writePacket({ cmd: 'puback', messageId: packet.messageId });
    }
    original(client, packet, done);
  };
  t.teardown(() => {
    publishModule.default = original;
  });

  const broker = await startScriptedBroker(t);
  const app = await buildTestApp(
    t,
    testConfig({ MQTT_URL: broker.url, WIIHEY_APP_ID: APP_ID, WIIHEY_APP_KEY: APP_KEY, MQTT_RECONNECT_MIN_MS: '100', MQTT_RECONNECT_MAX_MS: '500' }),
  );
  await app.ready();
  await broker.waitForSubscribe(1);
  broker.sendPublishes(1, [{ topic: TOPIC, payload: message('held', 'open', 1_700_000_000), qos: 1, messageId: 1 }]);
  await broker.waitForClose(1);
  t.same(broker.pubacks(1), [], 'no PUBACK reached the wire');
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 503);
  const reasons = ready.json().reasons as string[];
  t.ok(reasons.some((r) => r.startsWith('mqtt: acknowledgements stopped: MQTT.js tried to write a PUBACK (id 1) past the hold')), reasons.join('; '));

  // after the reconnect the broker redelivers; the bridge takes nothing and acknowledges nothing
  await broker.waitForSubscribe(2);
  broker.sendPublishes(2, [{ topic: TOPIC, payload: message('held', 'open', 1_700_000_000), qos: 1, messageId: 1, dup: true }]);
  await until(() => app.ingest.totals.received === 2, () => `received ${app.ingest.totals.received}`);
  for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve)); // a batch would be written by now
  t.equal((await app.inject('/readyz')).statusCode, 503, 'still not ready');
  t.same(broker.pubacks(2), [], 'nothing acknowledged on the new connection');
  t.equal(app.devices.counts.accepted, 0, 'neither was taken');
});
