import { spawn } from 'node:child_process';
import t from 'tap';
import pino from 'pino';
import { CLOSE_PROBABILITY, OPEN_PROBABILITY, Simulator, nextState, type CoverState } from '../../src/demo/simulator.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, message, publisher, startBridge } from '../helpers/bridge.js';
import { nextEvent } from '../helpers/app.js';

// The simulator publishes what real sensors do (SPEC §2): changes, heartbeats, a draining battery,
// and now and then a redelivered duplicate and a late retry, in both vendor formats. Its covers are
// closed almost all the time, with an occasional open that closes again (issue 15).

/** mulberry32: a seeded generator, so the run is the same every time. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('nextState: a cover is closed almost all the time, and an open one closes again soon', async (t) => {
  const random = seeded(7);
  const covers = 20;
  const messages = 20_000;
  const state: CoverState[] = Array.from({ length: covers }, () => 'close');
  const openedAt: (number | null)[] = Array.from({ length: covers }, () => null); // the cover's own message count
  const count = Array.from({ length: covers }, () => 0);
  const lengths: number[] = [];
  const lateOpen: number[] = [];
  let open = 0;
  let openSum = 0;
  for (let m = 0; m < messages; m++) {
    const i = Math.floor(random() * covers);
    const next = nextState(state[i]!, random);
    count[i]!++;
    if (state[i] === 'close' && next === 'open') {
      openedAt[i] = count[i]!;
      open++;
      if (m >= messages * 0.9) lateOpen.push(i);
    } else if (state[i] === 'open' && next === 'close') {
      lengths.push(count[i]! - openedAt[i]!);
      openedAt[i] = null;
      open--;
    }
    state[i] = next;
    openSum += open / covers;
  }
  const mean = openSum / messages;
  t.ok(mean < 0.2, `mean fraction of the fleet open: ${mean.toFixed(3)}`);
  t.ok(Math.abs(mean - OPEN_PROBABILITY / (OPEN_PROBABILITY + CLOSE_PROBABILITY)) < 0.03, 'near the steady state');
  t.ok(lengths.length > 100, `opens that closed again: ${lengths.length}`);
  t.ok(Math.max(...lengths) <= 40, `the longest open lasted ${Math.max(...lengths)} of its cover's messages`);
  // every open but the ones in the run's last tenth has closed again by its end
  const stillOpen = openedAt.flatMap((at, i) => (at === null ? [] : [i]));
  t.ok(
    stillOpen.every((i) => lateOpen.includes(i)),
    `open at the end: ${stillOpen.join(', ') || 'none'}`,
  );
});

t.test('nextState: at the default demo rate, a handful of 20 covers open in the first two minutes', async (t) => {
  // SPEC §6: DEMO_RATE 2 messages a second, so 20 first messages and 240 more in two minutes
  const runs = 200;
  let opened = 0;
  for (let seed = 1; seed <= runs; seed++) {
    const random = seeded(seed);
    const state: CoverState[] = Array.from({ length: 20 }, () => 'close');
    const ever = new Set<number>();
    for (let m = 0; m < 240; m++) {
      const i = Math.floor(random() * 20);
      state[i] = nextState(state[i]!, random);
      if (state[i] === 'open') ever.add(i);
    }
    opened += ever.size;
  }
  const mean = opened / runs;
  t.ok(mean >= 2 && mean <= 8, `covers opened in two minutes, on average: ${mean.toFixed(2)}`);
});

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
  t.same(simulator.deviceIds, ['5da60000', '5da60001', '5da60002', '5da60003', '5da60004'], 'the sensors, in order');
  // the fleet as the bridge sees it after each accepted update: mostly closed
  const states = new Map<string, string>();
  let accepted = 0;
  let openSum = 0;
  const fleet = new Set(simulator.deviceIds);
  const off = app.devices.events.subscribe((e) => {
    if (e.kind !== 'update' || !fleet.has(e.deviceId)) return;
    states.set(e.deviceId, e.device.state);
    accepted++;
    openSum += [...states.values()].filter((s) => s === 'open').length / 5;
  });
  t.teardown(off);
  await simulator.start();
  await simulator.finished();
  t.equal(simulator.sent, 400);
  // published after the simulator's last PUBACK, so delivered after all of its messages
  const pub = await publisher(t, broker);
  const sentinel = nextEvent(app, (e) => e.deviceId === 'sentinel', 'the sentinel');
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
  let opensAndCloses = 0;
  for (const id of simulator.deviceIds) {
    const items = (await app.inject(`/devices/${id}/history?limit=50`)).json().items as { kind: string; state: string }[];
    // late retries carry the other state too: only the updates say what the cover did
    if (new Set(items.filter((e) => e.kind === 'update').map((e) => e.state)).size === 2) opensAndCloses++;
  }
  t.ok(opensAndCloses > 0, `covers that opened and closed: ${opensAndCloses} of 5`);
  const mean = openSum / accepted;
  t.ok(mean < 0.2, `mean fraction of the fleet open: ${mean.toFixed(3)} over ${accepted} updates`);
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
      seen.add(e.deviceId);
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
