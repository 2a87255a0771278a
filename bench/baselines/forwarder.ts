import { once } from 'node:events';
import mqtt from 'mqtt';
import { WebSocketServer } from 'ws';

// The live-stream limit of the stack: a bare MQTT.js subscriber and a `ws` server that sends each
// MQTT payload as it came, one text frame, to every WebSocket client: no parsing, no state.
// Prints "port <n>", then "ready" once subscribed.
// node --import tsx bench/baselines/forwarder.ts URL TOPIC

const [url, topic] = process.argv.slice(2) as [string, string];
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * 1024 });
await once(wss, 'listening');
const client = await mqtt.connectAsync(url, { clientId: `bench-forwarder-${process.pid}`, clean: true });
client.on('message', (_topic, payload) => {
  for (const socket of wss.clients) socket.send(payload, { binary: false });
});
await client.subscribeAsync(topic, { qos: 0 });
process.stdout.write(`port ${(wss.address() as { port: number }).port}\nready\n`);
process.once('SIGTERM', () => {
  for (const socket of wss.clients) socket.terminate();
  wss.close();
  void client.endAsync(true).then(() => process.exit(0));
});
