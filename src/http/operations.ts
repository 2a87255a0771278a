import type { FastifyInstance } from 'fastify';
import { collectStats } from '../stats.js';
import { route, type OpenApiDocument } from '../openapi.js';

// SPEC §5: health, readiness, counters and rejected messages; /openapi.json serves the document.

export async function operationRoutes(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  app.route({ ...route(opts.doc, 'getHealth'), handler: async () => ({ status: 'ok' }) });

  app.route({
    ...route(opts.doc, 'getReadiness'),
    handler: async (_request, reply) => {
      // SPEC §8: a shared store that cannot be reached is no ready replica either
      const reasons = [...app.ingest.problems(), ...app.devices.problems()];
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
