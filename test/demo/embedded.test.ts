import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import mqtt from 'mqtt';
import { buildTestApp, nextEvent, testConfig } from '../helpers/app.js';

// SPEC §6: with no MQTT_URL, an embedded aedes broker and a simulator; the demo shows devices
// within seconds, and anything published to the embedded broker shows up too.

t.test('no configuration: the demo devices appear, and a message from any MQTT client too', async (t) => {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '5', DEMO_RATE: '20' }));
  const seen = new Set<string>();
  const allSeen = new Promise<void>((resolve) =>
    app.devices.events.subscribe((e) => {
      if (e.kind !== 'update') return; // the fleet's registry entries come first, as meta events
      seen.add(e.deviceId);
      if (seen.size === 5) resolve();
    }),
  );
  await app.ready();
  await allSeen;
  const list = (await app.inject('/devices')).json();
  t.equal(list.total, 5, 'the simulated sensors');
  t.ok(list.items.every((d: { state: string }) => ['open', 'close'].includes(d.state)));
  t.ok(
    list.items.every((d: { meta: { name: string; latitude: number } | null }) => d.meta !== null && d.meta.name !== null && typeof d.meta.latitude === 'number'),
    'SPEC §11: the demo fleet is registered, located and named',
  );

  const client = await mqtt.connectAsync(app.ingest.url, { reconnectPeriod: 0 });
  t.teardown(() => client.endAsync(true));
  const mine = nextEvent(app, (e) => e.deviceId === '42', 'my own message');
  await client.publishAsync('iot/demo/inbox', '{"DeviceID":"42","State":"open"}', { qos: 1 });
  await mine;
  t.equal((await app.inject('/devices/42')).json().state, 'open');
  t.equal((await app.inject('/readyz')).statusCode, 200);
});

t.test('the demo raises and clears alarms by itself, within a minute of start (SPEC §12)', async (t) => {
  // at 20 messages a second the fourth cover closes 2 s in (DEMO_OPEN_FOR_MESSAGES: 20 s at the default 2)
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '20', DEMO_RATE: '20' }));
  const cleared = nextEvent(app, (e) => e.kind === 'alarm' && e.transition === 'cleared' && e.deviceId === '5da60003', 'the open cover closing, its alarm cleared', 60_000);
  const raised = nextEvent(app, (e) => e.kind === 'alarm' && e.transition === 'raised' && e.alarm.type === 'cover_open' && e.deviceId === '5da60003', 'the open cover alarm', 60_000);
  const battery = nextEvent(app, (e) => e.kind === 'alarm' && e.alarm.type === 'battery_low' && e.deviceId === '5da60006', 'the low battery alarm', 60_000);
  await app.ready();
  const open = await raised;
  t.equal(open.kind === 'alarm' && open.alarm.meta?.name !== null, true, 'with the cover registry entry');
  await battery;
  const done = await cleared;
  t.equal(done.kind === 'alarm' && done.alarm.status, 'cleared');
});

t.test('DEMO_DEVICES=0: the embedded broker without the simulator', async (t) => {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0' }));
  await app.ready();
  await app.ingest.subscribedOnce;
  const client = await mqtt.connectAsync(app.ingest.url, { reconnectPeriod: 0 });
  t.teardown(() => client.endAsync(true));
  const mine = nextEvent(app, (e) => e.deviceId === 'only', 'my message');
  await client.publishAsync('iot/demo/inbox', '{"DeviceID":"only","State":"close"}', { qos: 1 });
  await mine;
  t.equal((await app.inject('/devices')).json().total, 1, 'no simulated devices');
});

t.test('npm start with no configuration: a loud demo, devices over HTTP, a clean exit on SIGTERM', async (t) => {
  const main = new URL('../../src/main.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), main], {
    env: { PATH: process.env.PATH, PORT: '0', EMBEDDED_MQTT_PORT: '0' },
    cwd: mkdtempSync(join(tmpdir(), 'wiihey-demo-')), // no .env there: no configuration at all
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines: { level: number; msg: string }[] = [];
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line: ${JSON.stringify(lines)}`)), 30_000);
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as { level: number; msg: string };
      lines.push(line);
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line.msg);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  const base = await listening;
  t.ok(lines.some((l) => l.level === 40 && /^DEMO MODE/.test(l.msg)), 'the demo is announced at warn level');
  // the devices arrive over MQTT within seconds; HTTP is the only window into that process
  let total = 0;
  for (const deadline = Date.now() + 15_000; total < 20 && Date.now() < deadline;) {
    total = ((await (await fetch(`${base}/devices`)).json()) as { total: number }).total;
    if (total < 20) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(total, 20, 'DEMO_DEVICES defaults to 20');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM closes gracefully');
});
