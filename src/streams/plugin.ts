import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import websocket from '@fastify/websocket';
import type { StreamsConfig } from '../config.js';
import type { OpenApiDocument } from '../http/openapi.js';
import { WsClose } from './close-codes.js';
import { sseRoutes, type SseClient } from './sse.js';
import { wsRoutes, type WsClient } from './ws.js';

// SPEC §5: the live streams, /ws and /events, both fed by the one event stream (devices/events.ts).

export const MAX_CLIENT_FRAME_BYTES = 64 * 1024;
/** On shutdown, how long a peer has to answer the close frame. */
const CLOSE_GRACE_MS = 1000;

export interface StreamsPluginOptions {
  doc: OpenApiDocument;
  config: StreamsConfig;
}

/** The open stream connections, by kind: for /metrics, and for tests that look at one. */
export interface LiveClients {
  ws: Set<WsClient>;
  sse: Set<SseClient>;
}

declare module 'fastify' {
  interface FastifyInstance {
    liveClients: LiveClients;
  }
}

async function streamsPlugin(app: FastifyInstance, opts: StreamsPluginOptions): Promise<void> {
  app.decorate('liveClients', { ws: new Set<WsClient>(), sse: new Set<SseClient>() });
  // Registered before mercurius, which reuses it: this maxPayload holds for /graphql too
  // (the ws default is 100 MiB). A bigger client frame closes the socket with 1009.
  await app.register(websocket, {
    options: { maxPayload: MAX_CLIENT_FRAME_BYTES },
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
  await app.register(wsRoutes, opts);
  await app.register(sseRoutes, opts);
}

export default fp(streamsPlugin, { name: 'streams', dependencies: ['devices', 'http'] });
