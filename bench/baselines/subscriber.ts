import mqtt from 'mqtt';

// The ingest limit of the stack: a bare MQTT.js subscriber that parses each message and keeps
// it in a Map. Prints "ready" once subscribed, then "done <received>" at `count` messages.
// node --import tsx bench/baselines/subscriber.ts URL TOPIC QOS COUNT

const [url, topic, qos, count] = process.argv.slice(2) as [string, string, string, string];
const target = Number(count);
const devices = new Map<string, unknown>();
let received = 0;
const client = await mqtt.connectAsync(url, { clientId: `bench-bare-${process.pid}`, clean: true });
client.on('message', (_topic, payload) => {
  const message = JSON.parse(payload.toString()) as { DeviceID: string };
  devices.set(message.DeviceID, message);
  if (++received === target) process.stdout.write(`done ${received}\n`);
});
await client.subscribeAsync(topic, { qos: Number(qos) as 0 | 1 });
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void client.endAsync(true).then(() => process.exit(0));
});
