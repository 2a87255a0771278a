import t from 'tap';
import mqtt from 'mqtt';
import { startScriptedBroker } from './scripted-broker.js';
import { withTimeout } from './app.js';

// The scripted broker against a plain MQTT.js client: the handshake, one chunk of PUBLISHes, and
// the PUBACKs recorded in the order the client wrote them.

t.test('connect, subscribe, one chunk of three QoS 1 publishes, PUBACKs in order', async (t) => {
  const broker = await startScriptedBroker(t, { sessionPresent: true });
  const client = mqtt.connect(broker.url, { clientId: 'scripted-self-test', clean: false, protocolVersion: 4, reconnectPeriod: 0 });
  t.teardown(() => client.endAsync(true));
  const connack = await withTimeout(
    new Promise<{ sessionPresent: boolean }>((resolve) => client.once('connect', resolve)),
    5000,
    () => `the CONNACK; the broker received: ${broker.describe()}`,
  );
  t.equal(connack.sessionPresent, true, 'sessionPresent as configured');
  await broker.waitForConnection(1);
  t.equal(broker.connections, 1);

  const granted = await withTimeout(client.subscribeAsync('iot/x/inbox', { qos: 1 }), 5000, () => 'the SUBACK');
  t.same(granted.map((g) => [g.topic, g.qos]), [['iot/x/inbox', 1]], 'the requested QoS granted');
  const subscribe = await broker.waitForSubscribe(1);
  t.same(subscribe.subscriptions.map((s) => s.topic), ['iot/x/inbox']);

  const messages: string[] = [];
  const all = new Promise<void>((resolve) => {
    client.on('message', (_topic, payload) => {
      messages.push(payload.toString());
      if (messages.length === 3) resolve();
    });
  });
  const ids = broker.sendPublishes(1, [
    { topic: 'iot/x/inbox', payload: 'a' },
    { topic: 'iot/x/inbox', payload: 'b' },
    { topic: 'iot/x/inbox', payload: 'c', messageId: 9 },
  ]);
  t.same(ids, [1, 2, 9], 'messageIds: the next ones, or the given one');
  await withTimeout(all, 5000, () => `three messages; got ${messages.length}`);
  t.same(messages, ['a', 'b', 'c'], 'delivered in order');
  await broker.waitFor((r) => r.conn === 1 && r.packet.cmd === 'puback' && r.packet.messageId === 9, 'the PUBACK of 9');
  t.same(broker.pubacks(1), [1, 2, 9], 'PUBACKs recorded in the order they arrived');
  t.same(
    broker.received.map((r) => [r.index, r.conn, r.packet.cmd]),
    [[0, 1, 'connect'], [1, 1, 'subscribe'], [2, 1, 'puback'], [3, 1, 'puback'], [4, 1, 'puback']],
    'every packet, with its connection and place',
  );

  await withTimeout(client.endAsync(), 5000, () => 'the client to end');
  await broker.waitFor((r) => r.packet.cmd === 'disconnect', 'the DISCONNECT');
  await broker.waitForClose(1);
  t.equal(broker.isOpen(1), false, 'closed after the DISCONNECT');
});

t.test('drop: the client reconnects on connection 2; QoS 0 gets no PUBACK', async (t) => {
  const broker = await startScriptedBroker(t);
  const client = mqtt.connect(broker.url, { clientId: 'scripted-self-test-2', protocolVersion: 4, reconnectPeriod: 50 });
  t.teardown(() => client.endAsync(true));
  await broker.waitForConnection(1);
  broker.drop(1);
  await broker.waitForClose(1);
  await broker.waitForConnection(2);
  t.equal(broker.connections, 2);
  const got = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())));
  t.same(broker.sendPublishes(2, [{ topic: 't', payload: 'zero', qos: 0 }, { topic: 't', payload: 'one', qos: 1, messageId: 4 }]), [0, 4]);
  t.equal(await withTimeout(got, 5000, () => 'the QoS 0 message'), 'zero');
  await broker.waitFor((r) => r.packet.cmd === 'puback', 'the PUBACK of the QoS 1 message');
  t.same(broker.pubacks(2), [4], 'only the QoS 1 message acknowledged');
  t.same(broker.pubacks(1), [], 'nothing on the dropped connection');
  await t.rejects(broker.waitFor((r) => r.packet.cmd === 'unsubscribe', 'an UNSUBSCRIBE', 50), /timed out after 50 ms waiting for an UNSUBSCRIBE; the broker received: conn 1 \(closed\)/);
});
