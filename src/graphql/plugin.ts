import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import mercurius from 'mercurius';
import type { WebSocket } from 'ws';
import type { GraphqlConfig, StreamsConfig } from '../config.js';
import type { ApiKeys } from '../api-keys.js';
import { route, type OpenApiDocument } from '../openapi.js';
import { WsClose } from '../live/close-codes.js';
import { SocketClient } from '../live/socket-client.js';
import { graphiqlRoutes } from './graphiql.js';
import { costRule, depthRule } from './limits.js';
import { GqlConnection } from './protocol.js';
import { BAD_REQUEST, GraphqlRunner, readRequest, requestErrors } from './run.js';
import { SDL, resolvers, type GraphqlContext } from './schema.js';
import { SubscriptionHub, storeFieldsRule } from './subscriptions.js';

// SPEC §5 GraphQL: mercurius builds the executable schema; the rest is ours: POST/GET /graphql
// and graphql-ws subscribe messages, all taking run.ts's one way (the same bounds on every
// transport, issue 13), subscriptions on the same path fed by the one event stream
// (subscriptions.ts), and GraphiQL served from local files (no CDN).

export interface GraphqlPluginOptions {
  doc: OpenApiDocument;
  config: GraphqlConfig;
  streams: StreamsConfig;
  apiKeys: ApiKeys;
}

/** Tokens one document may have: GraphiQL's introspection query has about 190. */
const MAX_TOKENS = 5000;

/** The transport of GET /graphql, registered with the WebSocket routes (streams/plugin.ts socketRoutes). */
export interface GraphqlTransport {
  /** A query over plain HTTP GET: its query string. */
  get(request: FastifyRequest, reply: FastifyReply): Promise<unknown>;
  /** A graphql-ws connection. */
  open(socket: WebSocket, request: FastifyRequest): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    subscriptions: SubscriptionHub;
    graphqlTransport: GraphqlTransport;
  }
}

async function graphqlPlugin(app: FastifyInstance, opts: GraphqlPluginOptions): Promise<void> {
  const { config } = opts;
  const rules = [depthRule(config.maxDepth), costRule({ maxItems: config.maxItems, maxFields: config.maxFields }), storeFieldsRule()];
  const leaves = new WeakSet<object>();
  await app.register(mercurius, {
    schema: SDL,
    resolvers: resolvers(app, leaves) as never,
    routes: false,
    graphiql: false,
    allowBatchedQueries: false,
    validationRules: rules,
    graphql: { parseOptions: { maxTokens: MAX_TOKENS } },
  });
  const schema = app.graphql.schema;
  const log = app.log.child({ module: 'graphql' });
  const onError = (err: unknown): void => log.error({ err }, 'graphql execution failed');
  const runner = new GraphqlRunner({ schema, rules, maxTokens: MAX_TOKENS, maxResponseBytes: config.maxResponseBytes, leaves, onError });
  const hub = new SubscriptionHub(schema, {
    maxResponseBytes: config.maxResponseBytes,
    leaves,
    onError: (err) => log.error({ err }, 'subscription execution failed'),
  });
  app.decorate('subscriptions', hub);
  const unsubscribe = app.devices.events.subscribe((event) => hub.publish(event));

  /**
   * A query over HTTP. SPEC §5: what is no GraphQL request, or does not parse or validate, or is
   * over a limit, is a 400 in GraphQL's error shape, logged below error level.
   */
  async function runHttp(request: FastifyRequest, body: unknown, reply: FastifyReply, method: 'GET' | 'POST'): Promise<unknown> {
    const read = readRequest(body);
    if (typeof read === 'string') {
      request.log.info({ code: BAD_REQUEST }, read);
      return graphqlErrors(reply, 400, read, BAD_REQUEST);
    }
    const prepared = await runner.prepare(read);
    if (!('document' in prepared)) return reply.code(400).send(requestErrors(prepared));
    if (prepared.operation.operation === 'subscription') {
      return graphqlErrors(reply, 400, 'subscriptions run over WebSocket at /graphql (graphql-ws protocol)');
    }
    if (method === 'GET' && prepared.operation.operation !== 'query') {
      // GraphQL over HTTP: a mutation over GET is 405 (a link or a prefetch must never write)
      reply.header('allow', 'POST');
      return graphqlErrors(reply, 405, 'only queries can be sent with GET: send mutations with POST');
    }
    const context: GraphqlContext = { request };
    const answer = await runner.run(prepared, context);
    if (answer.tooLarge) request.log.info({ code: 'BRG_ERR_GQL_TOO_LARGE' }, 'graphql answer over GRAPHQL_MAX_RESPONSE_BYTES');
    // a string with a JSON type goes out as it is: the answer is serialized once, within its budget
    return reply.code(answer.tooLarge ? 400 : 200).type('application/json; charset=utf-8').send(answer.json);
  }

  app.route({
    ...route(opts.doc, 'postGraphql'),
    handler: async (request, reply) => runHttp(request, request.body, reply, 'POST'),
  });

  const sockets = app.liveClients.graphql;
  const open = (socket: WebSocket, request: FastifyRequest): void => {
    const client = new SocketClient(socket, request.ip, opts.streams.wsMaxBufferedBytes);
    const context: GraphqlContext = { request };
    sockets.add(client);
    request.log.debug({ client: request.ip, open: sockets.size }, 'graphql-ws client connected');
    const connection = new GqlConnection(
      {
        protocol: socket.protocol,
        // the one bounded write (live/): a consumer this far behind is closed with 1013
        send: (data) => {
          client.send(data);
        },
        close: (code, reason) => socket.close(code, reason),
      },
      {
        hub,
        prepare: (request) => runner.prepare(request),
        initTimeoutMs: config.initTimeoutMs,
        clock: app.devices.clock,
        // SPEC §5/§9: the key in connection_init's payload ({"apiKey": …}), or on the upgrade request
        // (request.apiKey, identifyApiKeys). The one accepted becomes the upgrade request's: this
        // connection's key, with which app.checkWrite decides its mutations, as for a POST
        onConnect: (payload) => {
          if (!opts.apiKeys.enabled) return true;
          const given = opts.apiKeys.match(payload?.apiKey);
          if (given >= 0) request.apiKey = given;
          return request.apiKey >= 0;
        },
        executeQuery: async (prepared) => (await runner.run(prepared, context)).json,
        onError: (err) => log.error({ err }, 'graphql-ws operation failed'),
      },
    );
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return connection.close(4400, 'Invalid message received: binary');
      connection.receive(data.toString('utf8')).catch((err: unknown) => {
        log.error({ err }, 'graphql-ws message failed');
        connection.close(WsClose.InternalError, 'internal error');
      });
    });
    socket.on('close', (code: number) => {
      sockets.delete(client);
      connection.closed();
      request.log.debug({ client: request.ip, code, open: sockets.size }, 'graphql-ws client disconnected');
    });
  };
  app.decorate('graphqlTransport', { get: (request: FastifyRequest, reply: FastifyReply) => runHttp(request, request.query, reply, 'GET'), open });

  app.addHook('preClose', async () => {
    unsubscribe();
  });

  await app.register(graphiqlRoutes);
}

/** GET /graphql: a query over HTTP, or a graphql-ws WebSocket (see socketRoutes). */
export async function graphqlSocketRoute(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  app.route({
    ...route(opts.doc, 'getGraphql'),
    preHandler: async (request) => {
      if (request.headers.upgrade !== undefined) app.streamSlots.take(request, request.raw.socket);
    },
    handler: async (request, reply) => app.graphqlTransport.get(request, reply),
    wsHandler: (socket, request) => app.graphqlTransport.open(socket, request),
  });
}

function graphqlErrors(reply: FastifyReply, status: number, message: string, code?: string): unknown {
  reply.code(status);
  return { data: null, errors: [code === undefined ? { message } : { message, extensions: { code } }] };
}

export default fp(graphqlPlugin, { name: 'graphql', dependencies: ['devices', 'ingest', 'http', 'streams'] });
