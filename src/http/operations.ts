import type { FastifyInstance } from 'fastify';
import { webhookStats } from '../webhooks/plugin.js';
import { route, type OpenApiDocument } from './openapi.js';

// SPEC §5: health, readiness, counters and rejected messages; /openapi.json serves the document.

/** GET /stats, and the GraphQL `stats` query: the same object. */
export async function collectStats(app: FastifyInstance) {
  const summary = await app.devices.store.summary();
  const { accepted, duplicate, late } = app.devices.counts;
  const { received, invalid } = app.ingest.totals;
  return {
    ...summary,
    messages: { received, accepted, duplicate, late, invalid },
    mqtt: app.ingest.status(),
    webhooks: await webhookStats(app),
    uptimeSeconds: Math.floor((Date.now() - app.devices.startedAt) / 1000),
  };
}

export async function operationRoutes(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  app.route({ ...route(opts.doc, 'getHealth'), handler: async () => ({ status: 'ok' }) });

  app.route({
    ...route(opts.doc, 'getReadiness'),
    handler: async (_request, reply) => {
      const reasons = app.ingest.problems();
      if (reasons.length > 0) reply.code(503);
      return { status: reasons.length === 0 ? 'ready' : 'unavailable', reasons };
    },
  });

  app.route({ ...route(opts.doc, 'getStats'), handler: async () => collectStats(app) });

  app.route({
    ...route(opts.doc, 'listRejections'),
    handler: async () => ({ items: app.ingest.rejections.items(), counts: app.ingest.rejections.counts() }),
  });

  app.route({ ...route(opts.doc, 'getOpenApi'), handler: async () => opts.doc });
}
