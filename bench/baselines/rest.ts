import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

// The REST limit of the stack: bare Fastify 5 routes answering with the bridge's own bytes (one
// device and one list page, taken from the bridge and handed over as a JSON file). No response
// schema: Fastify falls back to JSON.stringify, where the bridge serializes with
// fast-json-stringify, so this is the plain stack without the bridge's routing, hooks and store.
// Prints "port <n>", then "ready", and keeps running until SIGTERM.
// node --import tsx bench/baselines/rest.ts FILE   (FILE: {"device": {...}, "list": {...}})

const [file] = process.argv.slice(2) as [string];
const { device, list } = JSON.parse(readFileSync(file, 'utf8')) as { device: { deviceId: string }; list: unknown };
const devices = new Map<string, unknown>([[device.deviceId, device]]);

const app = Fastify({ logger: false });
// plain (not async) handlers: the fewest steps Fastify takes from request to reply
app.get<{ Params: { deviceId: string } }>('/devices/:deviceId', (request) => devices.get(request.params.deviceId));
app.get('/devices', () => list);

await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as { port: number };
process.stdout.write(`port ${port}\nready\n`);
process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
