import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { WebhooksConfig } from '../config.js';
import { WebhookDelivery } from './delivery.js';
import { webhookType } from '../devices/outbox.js';

// SPEC §5 webhooks: the store enqueues (with the event, in one write); this delivers.

declare module 'fastify' {
  interface FastifyInstance {
    /** Null without WEBHOOK_URLS. */
    webhooks: WebhookDelivery | null;
  }
}

async function webhooksPlugin(app: FastifyInstance, opts: { config: WebhooksConfig | null }): Promise<void> {
  const config = opts.config;
  if (config === null) {
    app.decorate('webhooks', null);
    return;
  }
  const store = app.devices.store;
  const delivery = new WebhookDelivery({
    urls: config.urls,
    secret: config.secret,
    storeId: store.storeId,
    outbox: store,
    timeoutMs: config.timeoutMs,
    retryScheduleMs: config.retryScheduleMs,
    log: app.log.child({ module: 'webhooks' }),
    clock: app.devices.clock,
  });
  app.decorate('webhooks', delivery);
  // the event is stored, its deliveries with it: wake the senders
  const unsubscribe = app.devices.events.subscribeBatches((events) => {
    if (events.some((event) => webhookType(event) !== null)) delivery.wake();
  });
  app.addHook('onReady', async () => delivery.start()); // what a previous run left pending goes first
  app.addHook('preClose', async () => {
    unsubscribe();
    await delivery.close();
  });
}

export default fp(webhooksPlugin, { name: 'webhooks', dependencies: ['devices'] });
