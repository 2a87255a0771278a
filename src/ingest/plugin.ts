import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import type { Clock } from '../devices/service.js';
import { MqttIngest } from './mqtt.js';

declare module 'fastify' {
  interface FastifyInstance {
    ingest: MqttIngest;
  }
}

export interface IngestPluginOptions {
  config: Config;
  clock: Clock;
  connect: boolean;
}

async function ingestPlugin(app: FastifyInstance, opts: IngestPluginOptions): Promise<void> {
  const { config } = opts;
  const ingest = new MqttIngest({
    config: config.mqtt,
    limits: { maxMessageBytes: config.maxMessageBytes, maxClockSkewSeconds: config.maxClockSkewSeconds },
    devices: app.devices,
    clock: opts.clock,
    log: app.log.child({ module: 'mqtt' }),
  });
  app.decorate('ingest', ingest);
  // consume only once every consumer of the event stream is ready
  if (opts.connect) app.addHook('onReady', async () => ingest.start());
  app.addHook('preClose', async () => ingest.close());
}

export default fp(ingestPlugin, { name: 'ingest', dependencies: ['devices'] });
