import Fastify, { type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { DestinationStream } from 'pino';
import { clockOf, systemClock, type ClockDep } from './clock.js';
import { isLoopback, type Config } from './config.js';
import dashboard from './dashboard/plugin.js';
import demo from './demo/plugin.js';
import devices from './devices/plugin.js';
import type { DeviceStore } from './devices/store.js';
import { MemoryStore } from './devices/stores/memory.js';
import { SqliteStore } from './devices/stores/sqlite.js';
import { connectRedisStore } from './devices/stores/redis-connect.js';
import { ApiKeys, withoutApiKey, writeCheck } from './api-keys.js';
import { refuseForeignUpgrades, security } from './http/security.js';
import metrics from './http/metrics.js';
import { loadOpenApi } from './openapi.js';
import http from './http/plugin.js';
import graphql, { graphqlSocketRoute } from './graphql/plugin.js';
import ingest from './ingest/plugin.js';
import streams, { socketRoutes } from './streams/plugin.js';
import { wsRoutes } from './streams/ws.js';
import webhooks from './webhooks/plugin.js';

export interface Deps {
  store: DeviceStore;
  /** The time and the timers of every behaviour that keeps time (src/clock.ts); tests give a manual one. */
  clock: ClockDep;
  /** Connect to MQTT once ready (default true); REST-only tests turn it off. */
  connectMqtt: boolean;
  /** Where log lines go (default stdout); tests read them. */
  logStream: DestinationStream;
  /** Sees every route as it is added (the test that holds openapi.yaml to the routes). */
  onRoute: (route: RouteOptions) => void;
}

/**
 * SPEC §7, §8: Redis with REDIS_URL, else SQLite in DATA_DIR, or memory only when DATA_DIR is
 * empty. Throws StoreOpenError.
 */
export async function openStore(config: Config, log: FastifyBaseLogger): Promise<DeviceStore> {
  const webhookUrls = config.webhooks?.urls ?? [];
  if (config.redis !== null) {
    return connectRedisStore({
      url: config.redis.url,
      clientId: config.mqtt.clientId,
      // one Redis may keep several fleets: each APP-ID's keys apart
      prefix: `wiihey-bridge:${config.mqtt.username ?? 'demo'}:`,
      historyLimit: config.historyLimit,
      eventBuffer: config.eventBuffer,
      webhookUrls,
      alarms: config.alarms,
      log: log.child({ module: 'redis' }),
    });
  }
  if (config.dataDir === null) return new MemoryStore({ historyLimit: config.historyLimit, webhookUrls, alarms: config.alarms });
  return new SqliteStore({
    dir: config.dataDir,
    historyLimit: config.historyLimit,
    eventBuffer: config.eventBuffer,
    synchronous: config.sqliteSynchronous,
    webhookUrls,
    alarms: config.alarms,
  });
}

/** A request's headers and body arrive within this, or the connection is cut (SPEC §9). */
const REQUEST_TIMEOUT_MS = 30_000;

/** After a request that was in flight, its connection holds close() this long at most. */
const CLOSE_CONNECTIONS_AFTER_MS = 5000;

/**
 * Fastify closes idle connections once, when close() starts. A request in flight then is answered
 * with keep-alive, and its connection would hold server.close() for keepAliveTimeout (72 s); a
 * request whose body never ends, for requestTimeout. Either outlasts the 10 s the process gives
 * itself to stop (main.ts). So: close connections as they go idle, and cut what is left after 5 s.
 * Real timers, not the clock's: they bound close(), which a test's manual clock would leave open.
 */
function closeConnectionsOnClose(app: FastifyInstance): void {
  let idle: NodeJS.Timeout | undefined;
  let cut: NodeJS.Timeout | undefined;
  app.addHook('preClose', (done) => {
    idle = setInterval(() => app.server.closeIdleConnections(), 100);
    cut = setTimeout(() => app.server.closeAllConnections(), CLOSE_CONNECTIONS_AFTER_MS);
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    clearInterval(idle);
    clearTimeout(cut);
    done();
  });
}

/** A Fastify instance with every feature registered, in the order a message flows. No side effects until ready. */
export async function buildApp(config: Config, deps: Partial<Deps> = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      // SPEC §9: keys never in logs, ?apiKey= included
      serializers: {
        req: (req: { method: string; url: string; ip?: string }) => ({ method: req.method, url: withoutApiKey(req.url), remoteAddress: req.ip }),
      },
      ...(deps.logStream ? { stream: deps.logStream } : {}),
    },
    // SPEC §5: device ids of 128 characters, percent-encoded (up to 12 bytes a character)
    routerOptions: { maxParamLength: 2048 },
    // SPEC §9: a client sending its headers or body slowly is cut at 30 s (408). Node checks these
    // bounds every connectionsCheckingInterval (30 s by default: cuts came at up to 60 s): every second.
    requestTimeout: REQUEST_TIMEOUT_MS,
    http: { headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000 },
    // a number of hops works too (lib/request.js), but the types lack it
    trustProxy: config.http.trustProxy as boolean | string[],
    bodyLimit: 1_048_576,
  });
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute);
  closeConnectionsOnClose(app);
  const apiKeys = new ApiKeys(config.apiKeys, config.apiReadKeys);
  app.decorate('checkWrite', writeCheck(apiKeys, config.http.corsOrigins));
  // first: every route registered below is behind it (the rate limit must come before any route)
  await app.register(fp(security), {
    config: config.http,
    apiKeys,
    metricsPublic: config.metricsPublic,
    tileSource: config.map.tileSource,
    loopbackOnly: isLoopback(config.host) && !apiKeys.enabled && config.http.trustProxy === false,
  });
  // An upgrade request answered over HTTP (401, 404, or a route that is no WebSocket) leaves a
  // socket that is no HTTP connection to reuse: close it. @fastify/websocket does this only in
  // its own context (streams/plugin.ts socketRoutes); a synchronous hook is the cheap kind.
  app.addHook('onResponse', (request, _reply, done) => {
    if (request.raw.headers.upgrade !== undefined && !request.ws) request.raw.socket?.destroy();
    done();
  });
  const doc = loadOpenApi();
  await app.register(metrics, { doc }); // early: its timing hook sees every route
  const clock = clockOf(deps.clock ?? systemClock);
  await app.register(devices, {
    store: deps.store ?? (await openStore(config, app.log)),
    clock,
    silenceAfterSeconds: config.silenceAfterSeconds,
    silenceCheckSeconds: config.silenceCheckSeconds,
    eventBuffer: config.eventBuffer,
  });
  await app.register(demo, { config }); // before ingest: its broker must listen first
  await app.register(ingest, { config, clock, connect: deps.connectMqtt ?? true });
  await app.register(http, { doc, registry: config.registry });
  await app.register(streams, { doc, config: config.streams });
  await app.register(graphql, { doc, config: config.graphql, streams: config.streams, apiKeys });
  // /ws and GET /graphql (graphql-ws) share one WebSocket server, in a context of their own
  await app.register(
    socketRoutes([
      async (sockets) => refuseForeignUpgrades(sockets, config.http.corsOrigins),
      async (sockets) => {
        await sockets.register(wsRoutes, { doc, config: config.streams });
      },
      async (sockets) => {
        await sockets.register(graphqlSocketRoute, { doc });
      },
    ]),
  );
  await app.register(webhooks, { config: config.webhooks });
  await app.register(dashboard, { doc, map: { tileUrl: config.map.tileUrl, tileAttribution: config.map.tileAttribution } });
  return app;
}
