import type { FastifyInstance } from 'fastify';
import { route, type OpenApiDocument } from '../http/openapi.js';

// SPEC §5: the live dashboard at GET /. (A first stub: the page comes with issue 8.)

export interface DashboardOptions {
  doc: OpenApiDocument;
}

export default async function dashboard(app: FastifyInstance, opts: DashboardOptions): Promise<void> {
  app.route({
    ...route(opts.doc, 'getDashboard'),
    handler: async (_request, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><title>wiihey-bridge</title><p>wiihey-bridge</p>\n'),
  });
}
