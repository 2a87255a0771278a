import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import mercurius from 'mercurius';
import { GraphQLError, execute, getOperationAST, parse, type ExecutionResult } from 'graphql';
import type { WebSocket } from 'ws';
import type { GraphqlConfig, StreamsConfig } from '../config.js';
import { ApiKeys } from '../http/auth.js';
import { route, type OpenApiDocument } from '../http/openapi.js';
import { WsClose } from '../streams/close-codes.js';
import { pingLoop, trackPongs, type Peer } from '../streams/keepalive.js';
import { graphiqlRoutes } from './graphiql.js';
import { costRule, depthRule } from './limits.js';
import { GqlConnection } from './protocol.js';
import { SDL, resolvers } from './schema.js';
import { SubscriptionHub } from './subscriptions.js';

// SPEC §5 GraphQL: mercurius builds the executable schema and runs HTTP queries; the transport
// is ours: POST/GET /graphql, graphql-ws subscriptions on the same path fed by the one event
// stream (subscriptions.ts), and GraphiQL served from local files (no CDN).

export interface GraphqlPluginOptions {
  doc: OpenApiDocument;
  config: GraphqlConfig;
  streams: StreamsConfig;
  apiKeys: ApiKeys;
}

/** Tokens one document may have: GraphiQL's introspection query has about 700. */
const MAX_TOKENS = 5000;

interface GraphqlBody {
  query?: string;
  variables?: Record<string, unknown> | string | null;
  operationName?: string | null;
}

/** The transport of GET /graphql, registered with the WebSocket routes (streams/plugin.ts socketRoutes). */
export interface GraphqlTransport {
  /** A query over plain HTTP GET. */
  get(query: GraphqlBody, reply: FastifyReply): Promise<unknown>;
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
  const rules = [depthRule(config.maxDepth), costRule(config.maxItems)];
  await app.register(mercurius, {
    schema: SDL,
    resolvers: resolvers(app) as never,
    routes: false,
    graphiql: false,
    allowBatchedQueries: false,
    validationRules: rules,
    graphql: { parseOptions: { maxTokens: MAX_TOKENS } },
  });
  const schema = app.graphql.schema;
  const log = app.log.child({ module: 'graphql' });
  const hub = new SubscriptionHub(schema, (err) => log.error({ err }, 'subscription execution failed'));
  app.decorate('subscriptions', hub);
  const unsubscribe = app.devices.events.subscribe((event) => hub.publish(event));

  /** A query over HTTP: 400 with `errors` for a document that does not validate. */
  async function runHttp(body: GraphqlBody, reply: FastifyReply, method: 'GET' | 'POST'): Promise<unknown> {
    if (typeof body.query !== 'string' || body.query === '') return graphqlErrors(reply, 400, 'a query is required');
    let variables: Record<string, unknown> | undefined;
    if (typeof body.variables === 'string') {
      try {
        variables = JSON.parse(body.variables) as Record<string, unknown>;
      } catch {
        return graphqlErrors(reply, 400, 'variables must be JSON');
      }
    } else {
      variables = body.variables ?? undefined;
    }
    const operationName = body.operationName ?? undefined;
    try {
      const operation = getOperationAST(parse(body.query, { maxTokens: MAX_TOKENS }), operationName);
      if (operation?.operation === 'subscription') {
        return graphqlErrors(reply, 400, 'subscriptions run over WebSocket at /graphql (graphql-ws protocol)');
      }
      if (method === 'GET' && operation && operation.operation !== 'query') {
        return graphqlErrors(reply, 405, 'only queries can be sent with GET');
      }
    } catch {
      // a syntax error: mercurius reports it below, in its own words
    }
    try {
      return publicResult(await app.graphql(body.query, {}, variables, operationName));
    } catch (err) {
      const e = err as { errors?: readonly GraphQLError[]; statusCode?: number };
      if (!Array.isArray(e.errors)) throw err;
      reply.code(e.statusCode ?? 400);
      return { data: null, errors: e.errors.map((x) => ({ message: x.message, ...(x.locations ? { locations: x.locations } : {}) })) };
    }
  }

  app.route<{ Body: GraphqlBody }>({
    ...route(opts.doc, 'postGraphql'),
    handler: async (request, reply) => runHttp(request.body, reply, 'POST'),
  });

  const sockets = app.liveClients.graphql;
  const open = (socket: WebSocket, request: FastifyRequest): void => {
    const peer = { socket, alive: true };
    sockets.add(peer);
    request.log.debug({ client: request.ip, open: sockets.size }, 'graphql-ws client connected');
    const connection = new GqlConnection(
      {
        protocol: socket.protocol,
        send: (data) => {
          // a bounded buffer per client (SPEC §5): a consumer this far behind is told to come back
          if (socket.bufferedAmount > opts.streams.wsMaxBufferedBytes) {
            connection.close(WsClose.TryAgainLater, 'too slow: reconnect and subscribe again');
            return;
          }
          socket.send(data);
        },
        close: (code, reason) => socket.close(code, reason),
      },
      {
        schema,
        hub,
        rules,
        maxTokens: MAX_TOKENS,
        initTimeoutMs: config.initTimeoutMs,
        // SPEC §5/§9: the key in connection_init's payload ({"apiKey": …}), or on the upgrade request
        onConnect: (payload) =>
          !opts.apiKeys.enabled || opts.apiKeys.valid(payload?.apiKey) || opts.apiKeys.valid(ApiKeys.of(request)),
        executeQuery: async (request) =>
          publicResult(
            (await execute({
              schema,
              document: request.document,
              variableValues: request.variables,
              operationName: request.operationName,
              contextValue: {},
            })) as ExecutionResult,
          ),
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
    trackPongs(peer);
    socket.on('close', (code: number) => {
      sockets.delete(peer);
      connection.closed();
      request.log.debug({ client: request.ip, code, open: sockets.size }, 'graphql-ws client disconnected');
    });
  };
  app.decorate('graphqlTransport', { get: (query: GraphqlBody, reply: FastifyReply) => runHttp(query, reply, 'GET'), open });

  const pingTimer = pingLoop(sockets, opts.streams.wsPingMs);
  app.addHook('preClose', async () => {
    clearInterval(pingTimer);
    unsubscribe();
  });

  await app.register(graphiqlRoutes);
}

/** GET /graphql: a query over HTTP, or a graphql-ws WebSocket (see socketRoutes). */
export async function graphqlSocketRoute(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  app.route<{ Querystring: GraphqlBody }>({
    ...route(opts.doc, 'getGraphql'),
    preHandler: async (request) => {
      if (request.headers.upgrade !== undefined) app.streamSlots.take(request, request.raw.socket);
    },
    handler: async (request, reply) => app.graphqlTransport.get(request.query, reply),
    wsHandler: (socket, request) => app.graphqlTransport.open(socket, request),
  });
}

function graphqlErrors(reply: FastifyReply, status: number, message: string): unknown {
  reply.code(status);
  return { data: null, errors: [{ message }] };
}

/**
 * SPEC §9: no internal detail leaves the service. An error a resolver threw on purpose (a 4xx,
 * such as an invalid cursor) keeps its message; any other says only "internal error".
 */
function publicResult(result: ExecutionResult): ExecutionResult {
  if (!result.errors) return result;
  return {
    ...result,
    errors: result.errors.map((error) => {
      const status = (error.originalError as { statusCode?: number } | undefined)?.statusCode;
      if (error.originalError && !(status !== undefined && status >= 400 && status < 500)) {
        return new GraphQLError('internal error', { nodes: error.nodes, path: error.path });
      }
      return error;
    }),
  };
}

export default fp(graphqlPlugin, { name: 'graphql', dependencies: ['devices', 'ingest', 'http', 'streams'] });
