import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Simulator } from './simulator.js';

// npm run simulate -- --url mqtt://127.0.0.1:1884 --app-id demo --devices 100 --rate 50

const USAGE = `usage: npm run simulate -- [options]
  --url URL          broker (default mqtt://127.0.0.1:1884, the demo's embedded broker)
  --app-id ID        APP-ID: MQTT username and {APP_ID} of the topic (default demo)
  --app-key KEY      APP-KEY: MQTT password (default: env WIIHEY_APP_KEY)
  --topic T          topic template (default iot/{APP_ID}/inbox)
  --devices N        sensors (default 20)
  --rate R           messages per second after each sensor's first (default 2)
  --qos Q            0, 1 or 2 (default 1)
  --count N          stop after N messages
  --ca FILE          CA certificate for mqtts:// and wss://
  --cert FILE --key FILE   client certificate
  --insecure         do not verify the broker's certificate`;

const log = pino({ level: process.env.LOG_LEVEL ?? 'info' });

function fail(message: string): never {
  process.stderr.write(`simulate: ${message}\n${USAGE}\n`);
  process.exit(1);
}

function positive(name: string, value: string | undefined, fallback: number, integer = true): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) fail(`--${name} must be a ${integer ? 'whole ' : ''}number`);
  return n;
}

let args;
try {
  args = parseArgs({
    options: {
      url: { type: 'string', default: 'mqtt://127.0.0.1:1884' },
      'app-id': { type: 'string', default: 'demo' },
      'app-key': { type: 'string' },
      topic: { type: 'string', default: 'iot/{APP_ID}/inbox' },
      devices: { type: 'string' },
      rate: { type: 'string' },
      qos: { type: 'string' },
      count: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      insecure: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const qos = positive('qos', args.qos, 1);
if (qos > 2) fail('--qos must be 0, 1 or 2');
const read = (file: string | undefined): Buffer | undefined => (file === undefined ? undefined : readFileSync(file));

const simulator = new Simulator({
  url: args.url,
  appId: args['app-id'],
  appKey: args['app-key'] ?? process.env.WIIHEY_APP_KEY ?? (args['app-id'] === 'demo' ? 'demo' : undefined),
  topic: args.topic,
  devices: positive('devices', args.devices, 20),
  rate: positive('rate', args.rate, 2, false),
  qos: qos as 0 | 1 | 2,
  count: args.count === undefined ? undefined : positive('count', args.count, 0),
  mqtt: { ca: read(args.ca), cert: read(args.cert), key: read(args.key), rejectUnauthorized: !args.insecure },
  log,
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void simulator.stop().then(() => process.exit(0));
  });
}
try {
  await simulator.start();
} catch (err) {
  fail(`cannot connect to ${args.url}: ${(err as Error).message}`);
}
await simulator.finished();
log.info({ sent: simulator.sent }, 'simulator done');
process.exit(0);
