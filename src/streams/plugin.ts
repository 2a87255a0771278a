import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import websocket from '@fastify/websocket';
import type { StreamsConfig } from '../config.js';
import type { OpenApiDocument } from '../openapi.js';
import { closeSocket, startSweep, type LiveClient } from '../live/clients.js';
import { WsClose } from '../live/close-codes.js';
import { keepAliveLoop } from '../live/keepalive.js';
import { StreamSlots } from '../live/slots.js';
import type { SocketClient } from '../live/socket-client.js';
import { throttledWarn } from '../log-throttle.js';
import { sseRoutes, type SseClient } from './sse.js';
import type { WsClient } from './ws.js';

// SPEC §5: the live streams, /ws and /events, both fed by the one event stream (devices/events.ts).

export const MAX_CLIENT_FRAME_BYTES = 64 * 1024;
/** On shutdown, or after a client's protocol error, how long a peer has to answer the close frame. */
const CLOSE_GRACE_MS = 1000;
/** Clients' protocol errors: one warn line per kind per 10 s, like rejected messages. */
const CLIENT_ERROR_LOG_EVERY_MS = 10_000;
const CONNECTION_GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export interface StreamsPluginOptions {
  doc: OpenApiDocument;
  config: StreamsConfig;
}

/** The open live connections, by kind: for the sweep, the keep-alive, /metrics, and tests that look at one. */
export interface LiveClients {
  ws: Set<WsClient>;
  sse: Set<SseClient>;
  /** graphql-ws connections (graphql/plugin.ts). */
  graphql: Set<SocketClient>;
}

declare module 'fastify' {
  interface FastifyInstance {
    liveClients: LiveClients;
    /** Open streams per client address, over /ws, /events and graphql-ws (SPEC §9). */
    streamSlots: StreamSlots;
  }
}

/**
 * The live layer's timers, over every kind of client (src/live): the sweep that holds the byte
 * bounds, and one keep-alive (WebSockets pinged every WS_PING_SECONDS, SSE comment lines every
 * SSE_KEEPALIVE_SECONDS). They run on the service's clock (src/clock.ts). The close grace timers
 * below stay on the process's: they bound close(), which a test's manual clock would leave open.
 */
async function streamsPlugin(app: FastifyInstance, opts: StreamsPluginOptions): Promise<void> {
  const live: LiveClients = { ws: new Set(), sse: new Set(), graphql: new Set() };
  app.decorate('liveClients', live);
  app.decorate('streamSlots', new StreamSlots(opts.config.maxPerAddress));
  const clock = app.devices.clock;
  const timers = [
    startSweep(
      {
        clients: () => allClients(live),
        limits: { slowCloseMs: opts.config.wsSlowCloseMs, maxTotalBufferedBytes: opts.config.maxTotalBufferedBytes },
        now: () => clock.now(),
        log: app.log.child({ module: 'live' }),
      },
      clock,
    ),
    keepAliveLoop(() => webSockets(live), opts.config.wsPingMs, clock),
    keepAliveLoop(() => live.sse, opts.config.sseKeepAliveMs, clock),
  ];
  // SPEC §8: the shared event log no longer held what this replica had not read: no live client
  // may skip those events silently. Closed as too slow ones are (1013, a dropped stream), they
  // come back, re-read the state, and an SSE Last-Event-ID from before the gap gets a reset.
  const unsubscribe = app.devices.events.onGap(() => {
    for (const client of [...allClients(live)]) client.dropSlow('the shared event log no longer holds the events it missed');
  });
  app.addHook('preClose', async () => {
    unsubscribe();
    for (const timer of timers) clock.clearInterval(timer);
  });
  await app.register(sseRoutes, opts);
}

function* allClients(live: LiveClients): Iterable<LiveClient> {
  yield* live.ws;
  yield* live.sse;
  yield* live.graphql;
}

function* webSockets(live: LiveClients): Iterable<LiveClient> {
  yield* live.ws;
  yield* live.graphql;
}

/**
 * The WebSocket routes (/ws, and GET /graphql for graphql-ws) in a context of their own:
 * @fastify/websocket adds an onRequest and an onResponse hook to every route of its context,
 * which cost REST about a tenth of its requests per second when registered at the root
 * (a bare Fastify route, autocannon: 39,000 against 35,000 req/s).
 */
export function socketRoutes(routes: ((app: FastifyInstance) => Promise<void>)[]) {
  return async function sockets(app: FastifyInstance): Promise<void> {
    await registerWebsocket(app);
    for (const register of routes) await register(app);
  };
}

async function registerWebsocket(app: FastifyInstance): Promise<void> {
  // One server for /ws and /graphql: maxPayload is set here for both (the ws default is 100 MiB).
  // A bigger client frame closes the socket with 1009.
  const warn = throttledWarn<string>(app.log.child({ module: 'websocket' }), CLIENT_ERROR_LOG_EVERY_MS, () => app.devices.clock.now());
  await app.register(websocket, {
    options: { maxPayload: MAX_CLIENT_FRAME_BYTES },
    errorHandler(error, socket, request) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      // A client's mistake (a frame over 64 KiB, invalid UTF-8, no mask…) or its connection gone:
      // ws has sent the close code that says which; a warn line at most per kind per 10 s, no stack.
      if (code.startsWith('WS_ERR_') || CONNECTION_GONE.has(code)) {
        warn(code, { client: request.ip, code, error: error.message }, 'WebSocket client error: connection closed');
        closeSocket(socket, WsClose.ProtocolError, 'protocol error'); // does nothing when ws is closing it already
        setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
        return;
      }
      request.log.error({ err: error }, 'WebSocket failed');
      socket.terminate();
    },
    // every WebSocket (/ws and /graphql) is told why it closes: 1001, the server goes away
    preClose(done) {
      for (const socket of this.websocketServer.clients) {
        // a peer that does not read would hold the closing handshake for ws's 30 s: cut it
        if (socket.bufferedAmount > 0) {
          socket.terminate();
          continue;
        }
        socket.close(WsClose.GoingAway, 'server shutting down');
        setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
      }
      this.websocketServer.close(() => done());
    },
  });
}

export default fp(streamsPlugin, { name: 'streams', dependencies: ['devices', 'http'] });
