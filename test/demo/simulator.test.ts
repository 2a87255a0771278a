import { spawn } from 'node:child_process';
import t from 'tap';
import pino from 'pino';
import { Simulator } from '../../src/demo/simulator.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { nextEvent } from '../helpers/app.js';

// The simulator publishes what real sensors do (SPEC §2): changes, heartbeats, a draining battery,
// and now and then a redelivered duplicate and a late retry, in both vendor formats.

/** mulberry32: a seeded generator, so the run is the same every time. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('simulated traffic: every kind of message the rules know', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const { app } = await startBridge(t, broker);
  await app.ready();
  await app.ingest.subscribedOnce;
  const simulator = new Simulator({
    url: broker.url,
    appId: APP_ID,
    appKey: APP_KEY,
    topic: 'iot/{APP_ID}/inbox',
    devices: 5,
    rate: 2000,
    qos: 1,
    count: 400,
    log: pino({ level: 'silent' }),
    random: seeded(1),
  });
  await simulator.start();
  await simulator.finished();
  t.equal(simulator.sent, 400);
  // published after the simulator's last PUBACK, so delivered after all of its messages
  const pub = await publisher(t, broker);
  const sentinel = nextEvent(app, (e) => e.device.deviceId === 'sentinel', 'the sentinel');
  await pub.publishAsync(TOPIC, message('sentinel', 'open', 1), { qos: 1 });
  await sentinel;

  const stats = (await app.inject('/stats')).json();
  t.equal(stats.devices, 6);
  t.equal(stats.messages.received, 401);
  t.equal(stats.messages.invalid, 0, 'every simulated message is valid');
  t.ok(stats.messages.duplicate > 0, `duplicates: ${stats.messages.duplicate}`);
  t.ok(stats.messages.late > 0, `late: ${stats.messages.late}`);
  const device = (await app.inject('/devices/5da60000')).json();
  t.equal(device.appId === null || device.appId === APP_ID, true);
  const history = (await app.inject('/devices/5da60000/history?limit=50')).json().items as { kind: string; batteryLevel: number; state: string }[];
  const updates = history.filter((e) => e.kind === 'update');
  t.ok(updates.length > 10);
  t.ok(updates[0]!.batteryLevel < updates[updates.length - 1]!.batteryLevel, 'the battery drains');
  t.ok(new Set(updates.map((e) => e.state)).size === 2, 'it opens and closes');
});

t.test('npm run simulate publishes to any broker', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY } });
  if (!broker) return;
  const { app } = await startBridge(t, broker);
  await app.ready();
  await app.ingest.subscribedOnce;
  const seen = new Set<string>();
  const three = new Promise<void>((resolve) =>
    app.devices.events.subscribe((e) => {
      seen.add(e.device.deviceId);
      if (seen.size === 3) resolve();
    }),
  );
  const cli = new URL('../../src/demo/cli.ts', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), cli, '--url', broker.url, '--app-id', APP_ID, '--ca', broker.certs!.ca, '--devices', '3', '--rate', '50', '--count', '20'],
    { env: { PATH: process.env.PATH, WIIHEY_APP_KEY: APP_KEY, LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 0, stderr);
  await three;
  t.same([...seen].sort(), ['5da60000', '5da60001', '5da60002']);
});

t.test('npm run simulate refuses bad arguments with usage', async (t) => {
  const cli = new URL('../../src/demo/cli.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), cli, '--devices', 'many'], {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 1);
  t.match(stderr, /^simulate: --devices must be a whole number\nusage: npm run simulate/);
});
