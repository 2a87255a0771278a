import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { DeviceService, type Clock } from './service.js';
import type { DeviceStore } from './store.js';

declare module 'fastify' {
  interface FastifyInstance {
    devices: DeviceService;
  }
}

export interface DevicesPluginOptions {
  store: DeviceStore;
  clock: Clock;
  silenceAfterSeconds: number;
  silenceCheckSeconds: number;
  eventBuffer: number;
}

async function devicesPlugin(app: FastifyInstance, opts: DevicesPluginOptions): Promise<void> {
  const service = new DeviceService({
    store: opts.store,
    clock: opts.clock,
    log: app.log.child({ module: 'devices' }),
    silenceAfterSeconds: opts.silenceAfterSeconds,
    eventBuffer: opts.eventBuffer,
  });
  await service.open();
  app.decorate('devices', service);

  const sweep = (): void => {
    service.sweepSilence().catch((err: unknown) => app.log.error({ err }, 'silence check failed'));
  };
  let timer: NodeJS.Timeout | undefined;
  app.addHook('onReady', async () => {
    timer = setInterval(sweep, opts.silenceCheckSeconds * 1000);
    timer.unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await opts.store.close();
  });
}

export default fp(devicesPlugin, { name: 'devices' });
