import { createServer, type Server } from 'node:net';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Aedes } from 'aedes';
import type { Config } from '../config.js';
import { Simulator } from './simulator.js';
import { demoRegistry } from './fleet.js';

// SPEC §6: with no MQTT_URL, an embedded aedes broker on 127.0.0.1 and a simulator of
// DEMO_DEVICES sensors, so that the service shows something with no configuration at all.

export interface DemoPluginOptions {
  config: Config;
}

async function demoPlugin(app: FastifyInstance, opts: DemoPluginOptions): Promise<void> {
  const { config } = opts;
  const demo = config.demo;
  if (demo === null) return;
  const log = app.log.child({ module: 'demo' });
  let broker: Aedes | undefined;
  let server: Server | undefined;
  let simulator: Simulator | undefined;

  // registered before ingest: the broker listens before the bridge connects to it
  app.addHook('onReady', async () => {
    broker = await Aedes.createBroker();
    const b = broker;
    server = createServer((socket) => b.handle(socket));
    await new Promise<void>((resolve, reject) => {
      server!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`embedded MQTT broker: cannot listen on 127.0.0.1:${demo.port} (${err.code}); set EMBEDDED_MQTT_PORT`)),
      );
      server!.listen(demo.port, '127.0.0.1', resolve);
    });
    const port = (server.address() as { port: number }).port;
    // EMBEDDED_MQTT_PORT=0 takes a free port: ingest reads the URL when it starts, after this hook
    config.mqtt.url = `mqtt://127.0.0.1:${port}`;
    log.warn(
      `DEMO MODE: MQTT_URL is not set, so wiihey-bridge runs an embedded MQTT broker on mqtt://127.0.0.1:${port}` +
        (demo.devices > 0 ? ` and simulates ${demo.devices} manhole sensors` : ' (no simulator: DEMO_DEVICES=0)') +
        `. Publish your own with: mosquitto_pub -p ${port} -t '${config.mqtt.topics[0]}' -m '{"DeviceID":"42","State":"open"}'. ` +
        'Set MQTT_URL, WIIHEY_APP_ID and WIIHEY_APP_KEY to connect to the WiiHey platform.',
    );
    if (demo.devices === 0) return;
    simulator = new Simulator({
      url: config.mqtt.url,
      appId: config.mqtt.username ?? 'demo',
      appKey: config.mqtt.password,
      topic: config.mqtt.topics[0]!,
      devices: demo.devices,
      rate: demo.rate,
      qos: 1,
      log: log.child({ module: 'simulator' }),
    });
    const sim = simulator;
    // start once the bridge listens, so that the first round of messages reaches it
    app.ingest.subscribedOnce.then(
      async () => {
        // SPEC §11: the fleet comes with names, addresses and coordinates, so the map is full on
        // first start; entries already there (an operator's edits, kept in DATA_DIR) stay as they are
        const registered = await app.devices.importEntries(demoRegistry(sim.deviceIds), { keepExisting: true });
        log.info({ entries: sim.deviceIds.length, ...registered }, 'demo fleet registered');
        await sim.start();
      },
      () => {},
    ).catch((err: unknown) => log.error({ err }, 'simulator failed'));
  });

  app.addHook('onClose', async () => {
    await simulator?.stop();
    // the broker first: it ends its clients' connections, which server.close() would wait for
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });
}

export default fp(demoPlugin, { name: 'demo' });
