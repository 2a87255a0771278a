import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { DeviceEvent } from '../devices/events.js';
import { sseBlock } from '../devices/wire.js';
import { route } from '../http/openapi.js';
import { matches, queryFilter, type EventFilter } from './filter.js';
import type { StreamsPluginOptions } from './plugin.js';

// SPEC §5, Server-Sent Events: GET /events?deviceId=a,b&state=open. Every client gets the same
// cached block per event (devices/wire.ts); nothing here serializes per client.

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  // SPEC §5: never cached, compressed or buffered (x-accel-buffering: nginx would hold events back)
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};
// The first bytes: clients and proxies see the stream open at once, and EventSource retries after 3 s
const OPENING = 'retry: 3000\n\n';
// SPEC §5: a comment line keeps idle proxies from closing the stream
const KEEP_ALIVE = ': keep-alive\n\n';

/** One open /events response. */
export interface SseClient {
  readonly res: ServerResponse;
  readonly address: string;
  readonly log: FastifyBaseLogger;
  /** Replayed bytes still queued: the bound starts above them, and drops back on the first 'drain'. */
  allowance: number;
  close(): void;
}

export async function sseRoutes(app: FastifyInstance, opts: StreamsPluginOptions): Promise<void> {
  const events = app.devices.events;
  const { sseKeepAliveMs, wsMaxBufferedBytes } = opts.config;
  const open = app.liveClients.sse;

  // Before the server stops: an open stream would keep server.close() (and app.close()) waiting.
  app.addHook('preClose', async () => {
    for (const client of open) endStream(client);
  });

  app.route({
    ...route(opts.doc, 'streamEvents'),
    handler(request, reply) {
      // a bad filter throws here, before anything is sent: a 400 in the shared error shape
      const filter = queryFilter(request.query as { deviceId?: string; state?: string });
      const lastEventId = parseLastEventId(request.headers['last-event-id']);
      if (request.method !== 'HEAD') app.streamSlots.take(request, reply.raw);

      reply.hijack();
      const res = reply.raw;
      if (res.destroyed) return; // the client left before we got here: 'close' has fired already
      res.writeHead(200, HEADERS);
      // Fastify's HEAD twin of this route: the headers only, or the stream would hold the connection
      if (request.method === 'HEAD') return void res.end();
      res.flushHeaders();

      // One synchronous block from replay to subscribe: no event can fall between them or come twice.
      const replay = lastEventId === null ? null : events.replayAfter(lastEventId);
      const unsubscribe = events.subscribe((event) => {
        if (matches(filter, event.device)) send(client, sseBlock(event), wsMaxBufferedBytes);
      });
      const timer = setInterval(() => send(client, KEEP_ALIVE, wsMaxBufferedBytes), sseKeepAliveMs);
      const client: SseClient = {
        res,
        address: request.ip,
        log: request.log,
        allowance: 0,
        close() {
          unsubscribe();
          clearInterval(timer);
          if (open.delete(client)) request.log.debug({ client: request.ip, open: open.size }, 'SSE client disconnected');
        },
      };
      open.add(client);
      request.log.debug({ client: request.ip, open: open.size }, 'SSE client connected');
      res.once('close', client.close);
      // a few bytes into an empty socket buffer: within any bound
      res.write(replay?.kind === 'reset' ? OPENING + resetBlock(events.lastSeq) : OPENING);
      if (replay?.kind === 'events') writeReplay(client, replay.events, filter);
    },
  });
}

/**
 * SPEC §5: the client's id is older than the buffer or newer than the newest seq: an explicit
 * reset (re-read the state), never a silent gap. No `id:` line (asyncapi.yaml, sseReset).
 */
function resetBlock(lastSeq: number): string {
  return `event: reset\ndata: {"lastSeq":${lastSeq}}\n\n`;
}

/** SPEC §5: the matching events the client missed, before the live ones. */
function writeReplay(client: SseClient, missed: DeviceEvent[], filter: EventFilter): void {
  const { res } = client;
  // Written whole, past the bound: at most EVENT_BUFFER events the service holds anyway, and a
  // client dropped for its replay would reconnect into the same replay forever.
  for (const event of missed) if (matches(filter, event.device)) res.write(sseBlock(event));
  if (res.writableNeedDrain) {
    client.allowance = res.writableLength;
    res.once('drain', () => (client.allowance = 0));
  }
}

/**
 * The per-client bound of /events (STYLE: one function per transport). Past WS_MAX_BUFFERED_BYTES
 * unsent, the stream is dropped: SSE cannot conflate, and the client reconnects with Last-Event-ID
 * into a replay or a reset. destroy(), not end(): an end would queue behind the bytes the client
 * does not read, and keep them in memory as long as it stays connected.
 */
function send(client: SseClient, chunk: string, maxBufferedBytes: number): void {
  const { res } = client;
  if (res.write(chunk)) return;
  // over the socket's high-water mark: fine while the bound holds, the socket drains it
  if (res.writableLength <= maxBufferedBytes + client.allowance) return;
  client.log.info(
    { client: client.address, bufferedBytes: res.writableLength, maxBufferedBytes },
    'SSE client too slow: stream dropped, it resumes with Last-Event-ID',
  );
  client.close(); // at once: more events may be published before 'close' fires
  res.destroy();
}

/**
 * Ends a stream on shutdown, and its connection once the end is sent: the server is closing, and an
 * idle keep-alive socket would hold server.close() for keepAliveTimeout. A client that is not
 * reading would never take the end: its connection goes at once.
 */
function endStream(client: SseClient): void {
  const { res } = client;
  client.close(); // first: an event written after the end would be an error on the response
  res.end(() => res.socket?.destroy());
  if (res.writableLength > 0) res.destroy();
}

/** SPEC §5: a Last-Event-ID that is not a number is ignored (null: live events only). */
export function parseLastEventId(value: string | string[] | undefined): number | null {
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : null;
}
