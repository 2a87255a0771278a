import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import t from 'tap';
import mqtt, { type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
import { MQTT_VERSION_CHECKED, PubackHold, installedMqttVersion } from '../../src/ingest/puback-hold.js';

// SPEC §7 batches: the PUBACK hold relies on MQTT.js internals (handlers/publish.js calls
// handleMessage, then _sendPacket with the PUBACK; client.js writes through _writePacket). These
// tests fail loudly when an upgrade changes any of it; test/ingest/batch-wire.test.ts checks the
// wire. Packets go through MQTT.js's own packet dispatcher, so its real code path is what is held.

const require = createRequire(import.meta.url);
type Dispatch = (client: MqttClient, packet: Packet, done: () => void) => void;
const dispatch = (require('mqtt/lib/handlers/index') as { default: Dispatch }).default;

function publish(messageId: number, qos: 0 | 1): IPublishPacket {
  return { cmd: 'publish', qos, messageId, topic: 'iot/a/inbox', payload: Buffer.from('{}'), retain: false, dup: false };
}

/** A client that never connects, with the hold installed and handleMessage taking through it. */
function heldClient(): { client: MqttClient; hold: PubackHold; broken: string[]; taken: boolean[] } {
  const client = mqtt.connect('mqtt://127.0.0.1:1', { manualConnect: true });
  const broken: string[] = [];
  const hold = new PubackHold(client, (reason) => broken.push(reason));
  const taken: boolean[] = [];
  client.handleMessage = (packet, done) => {
    taken.push(hold.take(packet, done));
  };
  return { client, hold, broken, taken };
}

t.test('mqtt is pinned to the version the hold was checked against', async (t) => {
  t.equal(installedMqttVersion(), MQTT_VERSION_CHECKED, 'the installed MQTT.js: read src/ingest/puback-hold.ts against the new version before changing this');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
  t.equal(pkg.dependencies.mqtt, MQTT_VERSION_CHECKED, 'package.json pins it exactly (no range)');
});

t.test('QoS 1: MQTT.js hands over the next packet at once, and its PUBACK is held', async (t) => {
  const { client, broken, taken } = heldClient();
  const written: Packet[] = [];
  client.on('packetsend', (packet: Packet) => written.push(packet));
  let next = 0;
  for (const id of [7, 8, 9]) dispatch(client, publish(id, 1), () => next++);
  t.equal(next, 3, 'each message called back synchronously: MQTT.js goes on');
  t.same(taken, [true, true, true], 'each produced exactly its one PUBACK, held');
  t.same(written, [], 'nothing written');
  t.same(broken, []);
});

t.test('take is re-entrant: a callback that makes MQTT.js hand over the next message at once', async (t) => {
  // what happens when a held-back callback is released and the socket's next chunk is parsed in it
  const { client, broken, taken } = heldClient();
  let next = 0;
  dispatch(client, publish(1, 1), () => {
    next++;
    dispatch(client, publish(2, 1), () => {
      next++;
      dispatch(client, publish(3, 0), () => next++);
    });
  });
  t.equal(next, 3);
  t.same(taken, [true, true, true], 'each take saw its own PUBACK (or none), nested or not');
  t.same(broken, []);
});

t.test('QoS 0: no PUBACK is expected or produced', async (t) => {
  const { client, broken, taken } = heldClient();
  let next = 0;
  dispatch(client, publish(0, 0), () => next++);
  t.equal(next, 1);
  t.same(taken, [true]);
  t.same(broken, []);
});

t.test('a PUBACK that reaches _writePacket without release is refused, and the hold reports itself broken', async (t) => {
  const { client, hold, broken } = heldClient();
  const written: Packet[] = [];
  client.on('packetsend', (packet: Packet) => written.push(packet));
  (client as unknown as { _writePacket: (packet: Packet) => void })._writePacket({ cmd: 'puback', messageId: 3 });
  t.same(written, [], 'not written');
  t.equal(broken.length, 1);
  t.match(hold.broken, /PUBACK \(id 3\) past the hold/);
  // and from then on nothing is taken
  t.notOk(hold.take(publish(4, 1), () => {}));
});

t.test('a PUBACK more or less than the QoS calls for breaks the hold', async (t) => {
  const { hold, broken } = heldClient();
  t.notOk(hold.take(publish(5, 1), () => {}), 'a QoS 1 callback that sent no PUBACK');
  t.match(broken[0], /QoS 1 message with PUBACKs \[\], expected \[5\]/);
});

t.test('release writes nothing on a client that is not connected', async (t) => {
  const { client, hold, broken } = heldClient();
  const written: Packet[] = [];
  client.on('packetsend', (packet: Packet) => written.push(packet));
  t.notOk(hold.release(7, client.stream));
  t.same(written, []);
  t.same(broken, []);
});
