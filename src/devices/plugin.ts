import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Clock, Timer } from '../clock.js';
import { DeviceService } from './service.js';
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

  // SPEC §4: silence is checked at least once a minute; one sweep at a time, and none after close
  const clock = opts.clock;
  let timer: Timer | undefined;
  let sweeping: Promise<void> = Promise.resolve();
  let closed = false;
  const schedule = (): void => {
    if (closed) return;
    timer = clock.setTimeout(() => {
      sweeping = service
        .sweepSilence()
        .then(
          () => {},
          (err: unknown) => app.log.error({ err }, 'silence check failed'),
        )
        .finally(schedule);
    }, opts.silenceCheckSeconds * 1000);
  };
  // SPEC §12: what fell due while the bridge was down (a silence, a timed alarm) is raised at once,
  // with its true time; then every SILENCE_CHECK_SECONDS. Not awaited: after a long outage a large
  // fleet may all be due, and readiness (SPEC §10: a restart with 1,000,000 devices ready in under
  // 10 s) does not wait for it; sweeps called meanwhile run after it (DeviceService)
  app.addHook('onReady', async () => {
    service.follow(); // SPEC §8: a shared store's log, once every consumer listens
    sweeping = service
      .sweepSilence()
      .then(
        () => {},
        (err: unknown) => app.log.error({ err }, 'silence check failed'),
      )
      .finally(schedule);
  });
  // first of the preClose hooks (devices registers before every consumer): what was published is
  // delivered before the streams close their clients
  app.addHook('preClose', async () => service.events.flush());
  app.addHook('onClose', async () => {
    closed = true;
    clock.clearTimeout(timer);
    service.stopSweeps();
    await sweeping;
    const following = service.unfollow();
    await opts.store.close(); // ends the log's read under way
    await following;
  });
}

export default fp(devicesPlugin, { name: 'devices' });
