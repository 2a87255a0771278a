import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { BRG_ERR_INTERNAL, BRG_ERR_STORE_UNAVAILABLE, BRG_ERR_ROUTE_NOT_FOUND } from '../errors.js';
import { deviceRoutes } from './devices.js';
import { addComponentSchemas, type OpenApiDocument } from '../openapi.js';
import { operationRoutes } from './operations.js';
import { geoJsonRoutes } from './geojson.js';
import { registryRoutes } from './registry.js';
import { alarmRoutes } from './alarms.js';

async function httpPlugin(app: FastifyInstance, opts: { doc: OpenApiDocument; registry: { importMaxBytes: number } }): Promise<void> {
  const { doc } = opts;
  addComponentSchemas(app, doc);

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if ((error as Error).name === 'StoreUnavailableError') {
      // SPEC §8: Redis away; the message names no internals, the log says what failed
      request.log.warn({ err: error.message }, 'store unavailable');
      const unavailable = new BRG_ERR_STORE_UNAVAILABLE();
      return reply.code(503).send({ statusCode: 503, code: unavailable.code, error: 'Service Unavailable', message: unavailable.message });
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      // SPEC §9: a 5xx never carries an internal message or a stack
      request.log.error({ err: error }, 'request failed');
      const internal = new BRG_ERR_INTERNAL();
      return reply.code(500).send({ statusCode: 500, code: internal.code, error: 'Internal Server Error', message: internal.message });
    }
    // 429s are logged once per client and minute by the rate limit (http/security.ts), not per request
    if (status >= 400 && status !== 429 && error.validation === undefined) request.log.info({ code: error.code }, error.message);
    if (status === 400 && request.routeOptions.url === '/graphql') {
      // a body that is no GraphQL request (not JSON, say): GraphQL's error shape, as its 400 schema says
      return reply.code(400).send({ data: null, errors: [{ message: error.message, extensions: { code: error.code } }] });
    }
    return reply.code(status).send(error);
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(new BRG_ERR_ROUTE_NOT_FOUND(request.method, request.url.split('?')[0]));
  });

  await app.register(swagger, { mode: 'static', specification: { document: doc as never } });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // Swagger UI injects a <style> element: inline styles for /docs only, scripts stay 'self'
    transformStaticCSP: (header: string) => header.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
  });
  await app.register(deviceRoutes, { doc });
  await app.register(operationRoutes, { doc });
  await app.register(registryRoutes, { doc, registry: opts.registry });
  await app.register(alarmRoutes, { doc });
  await app.register(geoJsonRoutes, { doc });
}

export default fp(httpPlugin, { name: 'http', dependencies: ['devices', 'ingest'] });
