import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { DeviceEvent, EventStream } from '../devices/events.js';
import { sseBlock } from '../devices/wire.js';
import { route } from '../openapi.js';
import { boundedWrite, type LiveClient, type LiveSink } from '../live/clients.js';
import { DeviceIndex } from '../live/index.js';
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

/**
 * One open /events response (SPEC §5). A stream keeps no queue of its own, only a position in the
 * one event stream: the seq of the last event it was given. While its socket keeps up, events are
 * written as they come; past the bound (WS_MAX_BUFFERED_BYTES unsent, and at least the socket's
 * high-water mark) it stops and is "behind", and each 'drain' writes on from its position in the
 * event buffer, a replay the same way. SSE cannot conflate: a stream whose next event has left
 * the buffer (EVENT_BUFFER), or that stays behind for WS_SLOW_CLOSE_SECONDS, is dropped and
 * resumes with Last-Event-ID, into a replay or an explicit reset.
 */
export class SseClient implements LiveClient {
  readonly kind = 'sse';
  behindSince: number | null = null;
  /** The seq of the last event this stream was given or skipped; while it keeps up, it may be older (events of devices it does not follow never reach it). */
  #position: number;
  #closed = false;
  readonly #bound: number;
  /** The response, as the one bounded write sees it. */
  readonly #sink: LiveSink = {
    unsentBytes: () => this.res.writableLength,
    write: (block) => {
      this.res.write(block); // its boolean is not the bound: unsentBytes() is
    },
  };

  constructor(
    readonly res: ServerResponse,
    readonly address: string,
    private readonly log: FastifyBaseLogger,
    private readonly filter: EventFilter,
    private readonly events: EventStream,
    maxBufferedBytes: number,
    private readonly now: () => number,
    /** Told once, when the stream is over. */
    private readonly onClosed: (client: SseClient) => void,
  ) {
    this.#position = events.lastSeq;
    this.#bound = Math.max(maxBufferedBytes, res.writableHighWaterMark);
    res.on('drain', () => this.flush());
  }

  unsentBytes(): number {
    return this.res.writableLength;
  }

  /** Replays what came after `seq` (a Last-Event-ID the buffer reaches), as the socket takes it. */
  replayFrom(seq: number): void {
    this.#position = seq;
    this.behindSince = this.now();
    this.flush();
  }

  /** Called for every event of the stream, in seq order: must stay cheap. */
  offer(event: DeviceEvent): void {
    // an event a replay has written already (published before the replay, delivered after it)
    if (this.#closed || event.seq <= this.#position) return;
    if (this.behindSince !== null) {
      // flush() reads it from the buffer, unless the buffer has moved past the stream's place
      if (!this.events.reaches(this.#position)) this.drop('its next event has left the buffer');
      return;
    }
    if (matches(this.filter, event) && !boundedWrite(this.#sink, sseBlock(event), this.#bound)) {
      // Its place: just before this event. Every earlier event of its devices was written (it kept
      // up), and the fan-out index offers it no other device's: its position may be older than that.
      this.#position = event.seq - 1;
      this.behindSince = this.now();
      return;
    }
    this.#position = event.seq;
  }

  /** Writes on from the stream's position while the socket takes it. True once caught up. */
  flush(): boolean {
    if (this.behindSince === null || this.#closed) return true;
    // checked first: a stream that cannot take anything still loses its place when the buffer moves on
    if (!this.events.reaches(this.#position)) {
      this.drop('its next event has left the buffer');
      return false;
    }
    for (;;) {
      const event = this.events.next(this.#position);
      if (event === undefined) {
        this.behindSince = null;
        return true;
      }
      if (event === null) {
        this.drop('its next event has left the buffer');
        return false;
      }
      if (matches(this.filter, event) && !boundedWrite(this.#sink, sseBlock(event), this.#bound)) return false;
      this.#position = event.seq;
    }
  }

  /** SPEC §5: a comment line keeps idle proxies from closing the stream; a busy one needs none. */
  keepAlive(): void {
    if (!this.#closed && this.res.writableLength === 0) this.res.write(KEEP_ALIVE);
  }

  dropSlow(why: string): void {
    this.drop(why);
  }

  /**
   * destroy(), not end(): an end would queue behind the bytes the client does not read, and keep
   * them in memory as long as it stays connected.
   */
  drop(why: string): void {
    if (this.#closed) return;
    this.log.info(
      { client: this.address, bufferedBytes: this.res.writableLength, why },
      'SSE client too slow: stream dropped, it resumes with Last-Event-ID',
    );
    this.close();
    this.res.destroy();
  }

  /** Stops writing (the response closed, or is being closed); idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClosed(this);
  }

  /**
   * Ends a stream on shutdown, and its connection once the end is sent: the server is closing,
   * and an idle keep-alive socket would hold server.close() for keepAliveTimeout. A client that
   * is not reading would never take the end: its connection goes at once.
   */
  end(): void {
    this.close(); // first: an event written after the end would be an error on the response
    this.res.end(() => this.res.socket?.destroy());
    if (this.res.writableLength > 0) this.res.destroy();
  }
}

export async function sseRoutes(app: FastifyInstance, opts: StreamsPluginOptions): Promise<void> {
  const events = app.devices.events;
  const { wsMaxBufferedBytes } = opts.config;
  const open = app.liveClients.sse;
  const now = (): number => app.devices.clock.now();

  // one batch of events a turn (devices/events.ts): each stream's blocks go out in one write
  // Each event goes to the streams that follow its device (live/index.ts); a stream with several
  // events in one batch (devices/events.ts) gets them in one write.
  const index = new DeviceIndex<SseClient>();
  const unsubscribe = events.subscribeBatches((batch) => {
    const corked = new Set<SseClient>();
    for (const event of batch) {
      index.forDevice(event.deviceId, (client) => {
        if (!corked.has(client)) {
          corked.add(client);
          client.res.cork();
        }
        client.offer(event);
      });
    }
    for (const client of corked) client.res.uncork();
  });

  // Before the server stops: an open stream would keep server.close() (and app.close()) waiting.
  app.addHook('preClose', async () => {
    unsubscribe();
    for (const client of open) client.end();
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
      if (request.method === 'HEAD') {
        res.end();
        return;
      }
      res.flushHeaders();

      // One synchronous block from the position to the subscription: no event can fall between them.
      const client = new SseClient(res, request.ip, request.log, filter, events, wsMaxBufferedBytes, now, () => {
        index.delete(client);
        if (open.delete(client)) request.log.debug({ client: request.ip, open: open.size }, 'SSE client disconnected');
      });
      open.add(client);
      index.set(client, filter.deviceIds);
      request.log.debug({ client: request.ip, open: open.size }, 'SSE client connected');
      res.once('close', () => client.close());
      const reset = lastEventId !== null && !events.reaches(lastEventId);
      // a few bytes into an empty socket buffer: within any bound
      res.write(reset ? OPENING + resetBlock(events.lastSeq) : OPENING);
      if (lastEventId !== null && !reset) client.replayFrom(lastEventId);
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

/** SPEC §5: a Last-Event-ID that is not a number is ignored (null: live events only). */
export function parseLastEventId(value: string | string[] | undefined): number | null {
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : null;
}
