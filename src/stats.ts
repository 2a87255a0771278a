import type { FastifyInstance } from 'fastify';

// SPEC §5: the counters GET /stats and GraphQL's `stats` serve, one object for both. It reads the
// stations through the app's decorators only (devices, ingest, webhooks): no station is imported.

/** GET /stats, and the GraphQL `stats` query: the same object. */
export async function collectStats(app: FastifyInstance) {
  const summary = await app.devices.store.summary();
  const { accepted, duplicate, late } = app.devices.counts;
  const { received, invalid } = app.ingest.totals;
  return {
    ...summary,
    messages: { received, accepted, duplicate, late, invalid },
    mqtt: app.ingest.status(),
    webhooks: app.webhooks === null ? null : { pending: await app.devices.store.pendingDeliveries(), ...app.webhooks.counts },
    uptimeSeconds: Math.floor((app.devices.clock.now() - app.devices.startedAt) / 1000),
  };
}
