import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import type { DeviceEvent, EventKind } from '../devices/events.js';
import type { DeviceStore } from '../devices/store.js';
import type { Device } from '../devices/types.js';
import { compareIds } from '../devices/rules.js';
import { deviceJson, wsFrame } from '../devices/wire.js';
import { BRG_ERR_UPGRADE_REQUIRED } from '../errors.js';
import { route } from '../openapi.js';
import { WsClose } from '../live/close-codes.js';
import { boundedWrite, closeSocket, rawSocket, type LiveClient, type LiveSink } from '../live/clients.js';
import { DeviceIndex } from '../live/index.js';
import { listProblem, matches, matchesDevice, queryFilter, type EventFilter } from './filter.js';
import { pingPeer, trackPongs } from '../live/keepalive.js';
import type { StreamsPluginOptions } from './plugin.js';

// SPEC §5 /ws: a snapshot, then update and silent frames; subscribe frames replace the filter;
// pings drop dead peers; a slow consumer is conflated, then closed with 1013 (TryAgainLater).

interface WsQuery {
  deviceId?: string;
  state?: string;
  snapshot: boolean;
}

interface SubscribeFrame {
  type: 'subscribe';
  deviceIds?: string[] | null;
  states?: string[] | null;
  types?: EventKind[] | null;
}

// asyncapi.yaml is the single source of the frame's shape: its WsSubscribe schema is the validator
const asyncapi = YAML.parse(readFileSync(new URL('../../asyncapi.yaml', import.meta.url), 'utf8')) as {
  components: { schemas: { WsSubscribe: object } };
};
const validateSubscribe = new Ajv({ allErrors: false, strict: true }).compile<SubscribeFrame>(
  asyncapi.components.schemas.WsSubscribe,
);

export interface WsLimits {
  maxBufferedBytes: number;
  snapshotLimit: number;
}

/** Events kept in order while a snapshot is written; more than this and they are conflated too. */
const QUEUE_WHILE_READING = 10_000;
/** Devices read from the store at a time for a snapshot. */
const SNAPSHOT_PAGE = 100;
/** A snapshot goes out in fragments of about this size, each once the socket has room for it. */
const SNAPSHOT_FRAGMENT_BYTES = 64 * 1024;
/** Error frames kept while a snapshot is written; a client sending more bad frames than this loses the rest. */
const MAX_ERRORS_WAITING = 16;

/**
 * One /ws connection (SPEC §5). Frames go straight to the socket while it keeps up. Past
 * maxBufferedBytes of unsent data the client is "behind": its events wait in `pending`, newest
 * per device (conflation), and go out, oldest seq first and within the byte bound, as the socket
 * drains (the live sweep calls flush). What waits counts against the client too: past
 * maxBufferedBytes waiting, it is closed at once. A snapshot is read a page at a time and written
 * as one WebSocket message in fragments, each once the socket has room: a client that does not
 * read holds one fragment and its bound, never the whole snapshot. Events that come meanwhile wait
 * in order and are offered after it, so that none falls between the snapshot and the stream.
 */
export class WsClient implements LiveClient {
  readonly kind = 'ws';
  filter: EventFilter;
  alive = true;
  /** Conflated events, newest per device (and per kind: conflationKey), while behind; null while frames go straight out. */
  pending: Map<string, DeviceEvent> | null = null;
  /** When the client fell behind (ms), or null. */
  behindSince: number | null = null;
  /** Bytes of the frames waiting in `pending` and the queue (a snapshot's fragments wait in the socket's buffer). */
  #waitingBytes = 0;
  /** Events that came while a snapshot was written; null when none is. */
  #queue: DeviceEvent[] | null = null;
  #reading = false;
  /** A subscribe came while a snapshot was written: write another one after it. */
  #again = false;
  /** Error frames for client frames that came while a snapshot was written. */
  #errors: string[] = [];
  /** The socket, as the one bounded write sees it. */
  readonly #sink: LiveSink = {
    unsentBytes: () => this.socket.bufferedAmount,
    write: (frame) => this.socket.send(frame),
  };

  constructor(
    readonly socket: WebSocket,
    readonly address: string,
    filter: EventFilter,
    private readonly limits: WsLimits,
    private readonly now: () => number,
    /** Told when a subscribe frame replaced the filter (the fan-out index files the client anew). */
    private readonly onFilter: (client: WsClient) => void = () => {},
  ) {
    this.filter = filter;
  }

  unsentBytes(): number {
    return this.socket.bufferedAmount + this.#waitingBytes;
  }

  /** Called for every event of the stream, in seq order: must stay cheap. */
  offer(event: DeviceEvent): void {
    // closing: ws would count what is sent now, and the client would soon be dropped again
    if (this.socket.readyState !== this.socket.OPEN || !matches(this.filter, event)) return;
    if (this.#queue !== null && this.pending === null && this.#queue.length < QUEUE_WHILE_READING) {
      this.#queue.push(event);
      this.#wait(wsFrame(event).length);
      return;
    }
    if (this.pending !== null) {
      const key = conflationKey(event);
      const replaced = this.pending.get(key);
      this.pending.set(key, event);
      this.#wait(wsFrame(event).length - (replaced === undefined ? 0 : wsFrame(replaced).length));
      return;
    }
    if (this.#queue === null && boundedWrite(this.#sink, wsFrame(event), this.limits.maxBufferedBytes)) return;
    // behind (or a snapshot is being written): conflation starts
    this.pending = new Map([[conflationKey(event), event]]);
    this.#wait(wsFrame(event).length);
    if (this.#queue === null) this.behindSince ??= this.now();
  }

  /** Sends what waits, oldest seq first, while the socket stays within the bound. True when caught up. */
  flush(): boolean {
    if (this.#queue !== null) return false; // a snapshot is being written: its end flushes
    if (this.pending === null) return true;
    const waiting = [...this.pending.values()].sort((a, b) => a.seq - b.seq);
    for (let i = 0; i < waiting.length; i++) {
      const frame = wsFrame(waiting[i]!);
      if (!boundedWrite(this.#sink, frame, this.limits.maxBufferedBytes)) {
        this.pending = new Map(waiting.slice(i).map((e) => [conflationKey(e), e]));
        return false;
      }
      this.#waitingBytes -= frame.length;
    }
    this.pending = null;
    this.#waitingBytes = 0;
    this.behindSince = null;
    return true;
  }

  keepAlive(): void {
    pingPeer(this);
  }

  dropSlow(why: string): void {
    this.pending = null;
    this.#queue = null;
    this.#waitingBytes = 0;
    closeSocket(this.socket, WsClose.TryAgainLater, why);
  }

  /**
   * Writes a snapshot for the current filter, then the events that came meanwhile. One at a
   * time: a subscribe during one asks for one more after it.
   */
  async sendSnapshot(store: DeviceStore): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    this.#queue = [];
    this.pending = null; // the snapshot replaces whatever waited
    this.#waitingBytes = 0;
    this.behindSince ??= this.now(); // a snapshot that takes longer than WS_SLOW_CLOSE_SECONDS is behind too
    try {
      do {
        this.#again = false;
        await this.#writeSnapshot(store);
      } while (this.#again && this.#open());
    } finally {
      this.#reading = false;
      const queued = this.#queue ?? [];
      const conflated = this.pending as Map<string, DeviceEvent> | null;
      this.#queue = null;
      this.pending = null;
      this.#waitingBytes = 0;
      this.behindSince = null;
      const errors = this.#errors;
      this.#errors = [];
      if (this.#open()) {
        for (const frame of errors) this.socket.send(frame);
        for (const event of queued) this.offer(event);
        if (conflated !== null) for (const event of [...conflated.values()].sort((a, b) => a.seq - b.seq)) this.offer(event);
      }
    }
  }

  async #writeSnapshot(store: DeviceStore): Promise<void> {
    let chunk = '{"type":"snapshot","devices":[';
    let first = true;
    const total = await readSnapshot(store, this.filter, this.limits.snapshotLimit, async (devices) => {
      for (const device of devices) {
        chunk += first ? deviceJson(device) : `,${deviceJson(device)}`;
        first = false;
        if (chunk.length < SNAPSHOT_FRAGMENT_BYTES) continue;
        if (!(await this.#fragment(chunk, false))) return false;
        chunk = '';
      }
      return true;
    });
    if (total === null || !this.#open()) return;
    await this.#fragment(`${chunk}],"total":${total.total},"truncated":${total.sent < total.total}}`, true);
  }

  /** Sends one fragment of the snapshot; waits for the socket to take it when over the bound. False once closed. */
  async #fragment(data: string, fin: boolean): Promise<boolean> {
    if (!this.#open()) return false;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('close', done);
      this.socket.send(data, { fin }, done);
      if (this.socket.bufferedAmount <= this.limits.maxBufferedBytes) done();
    });
    return this.#open();
  }

  #open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  #wait(bytes: number): void {
    this.#waitingBytes += bytes;
    // SPEC §5: what waits counts against the client's bound too
    if (this.#waitingBytes > this.limits.maxBufferedBytes) this.dropSlow('too slow: reconnect and resubscribe');
  }

  /** A client frame: a subscribe replaces the filter; anything else gets an error frame. */
  async receive(data: Buffer, isBinary: boolean, store: DeviceStore): Promise<void> {
    // a client that sends frames but does not read their answers gets no more of them (SPEC §5 bound)
    if (this.unsentBytes() > this.limits.maxBufferedBytes) {
      this.dropSlow('too slow: reconnect and resubscribe');
      return;
    }
    if (isBinary) return this.error('frames are JSON text, not binary');
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString('utf8'));
    } catch {
      return this.error('frame is not JSON');
    }
    if (!validateSubscribe(frame)) return this.error(`invalid frame: ${frameProblem()}`);
    const filter: EventFilter = {
      deviceIds: frame.deviceIds ? new Set(frame.deviceIds) : null,
      states: frame.states ? new Set(frame.states) : null,
      types: frame.types ? new Set(frame.types) : null,
    };
    const problem = (filter.deviceIds && listProblem(filter.deviceIds, 'deviceId')) ?? (filter.states && listProblem(filter.states, 'state'));
    if (problem) return this.error(`invalid frame: ${problem}`);
    this.filter = filter;
    this.onFilter(this);
    await this.sendSnapshot(store);
  }

  error(message: string): void {
    const frame = JSON.stringify({ type: 'error', message });
    // no frame between a snapshot's fragments (it would continue the snapshot's message): after it
    if (this.#reading) {
      if (this.#errors.length < MAX_ERRORS_WAITING) this.#errors.push(frame);
      return;
    }
    this.socket.send(frame);
  }
}

/**
 * What a newer event replaces while a client is behind (SPEC §5: conflated to the newest per
 * device): a device's state (update and silent frames), its registry entry (meta), and each
 * alarm (SPEC §12) on their own, so that none of them pushes out another's newest.
 */
function conflationKey(event: DeviceEvent): string {
  switch (event.kind) {
    case 'meta':
      return `m${event.deviceId}`;
    case 'alarm':
      return `a${event.alarm.alarmId}`;
    default:
      return `d${event.deviceId}`;
  }
}

function frameProblem(): string {
  const e = validateSubscribe.errors![0]!;
  if (e.keyword === 'const' && e.instancePath === '/type') return "type must be 'subscribe'";
  const where = e.instancePath === '' ? 'the frame' : e.instancePath.slice(1).replaceAll('/', '.');
  return `${where} ${e.message ?? 'is invalid'}`;
}

const byId = (a: Device, b: Device): number => compareIds(a.deviceId, b.deviceId);

/**
 * Reads the devices of a snapshot in deviceId order, a page at a time, and hands each page to
 * `page` (false from it: stop). Null when stopped, else the devices matching and those handed.
 */
export async function readSnapshot(
  store: DeviceStore,
  filter: EventFilter,
  limit: number,
  page: (devices: Device[]) => Promise<boolean>,
): Promise<{ total: number; sent: number } | null> {
  if (filter.deviceIds !== null) {
    const devices: Device[] = [];
    for (const id of filter.deviceIds) {
      const device = await store.get(id);
      if (device !== undefined && matchesDevice(filter, device)) devices.push(device);
    }
    devices.sort(byId);
    const sent = Math.min(limit, devices.length);
    for (let i = 0; i < sent; i += SNAPSHOT_PAGE) if (!(await page(devices.slice(i, Math.min(sent, i + SNAPSHOT_PAGE))))) return null;
    return { total: devices.length, sent };
  }
  // one cursor per state (one for all without a state filter), merged in deviceId order
  const cursors = await Promise.all(
    [...(filter.states ?? [undefined])].map(async (state) => {
      const first = await store.list({ state, limit: Math.min(SNAPSHOT_PAGE, limit) });
      return { state, items: first.items, at: 0, lastId: first.lastId, total: first.total };
    }),
  );
  const total = cursors.reduce((sum, c) => sum + c.total, 0);
  let sent = 0;
  let out: Device[] = [];
  while (sent < limit) {
    let head: (typeof cursors)[number] | undefined;
    for (const c of cursors) {
      if (c.at === c.items.length && c.lastId !== null) {
        const next = await store.list({ state: c.state, after: c.lastId, limit: Math.min(SNAPSHOT_PAGE, limit) });
        c.items = next.items;
        c.at = 0;
        c.lastId = next.lastId;
      }
      if (c.at < c.items.length && (head === undefined || byId(c.items[c.at]!, head.items[head.at]!) < 0)) head = c;
    }
    if (head === undefined) break;
    out.push(head.items[head.at++]!);
    sent++;
    if (out.length === SNAPSHOT_PAGE) {
      if (!(await page(out))) return null;
      out = [];
    }
  }
  if (out.length > 0 && !(await page(out))) return null;
  return { total, sent };
}

export async function wsRoutes(app: FastifyInstance, opts: StreamsPluginOptions): Promise<void> {
  const { config } = opts;
  const { events, store } = app.devices;
  const limits: WsLimits = { maxBufferedBytes: config.wsMaxBufferedBytes, snapshotLimit: config.wsSnapshotLimit };
  const clients = app.liveClients.ws;
  const log = app.log.child({ module: 'ws' });
  const now = (): number => app.devices.clock.now();

  // Each event goes to the clients that follow its device (live/index.ts). One batch of events a
  // turn (devices/events.ts): a client with several events in it gets them in one write.
  const index = new DeviceIndex<WsClient>();
  const file = (client: WsClient): void => index.set(client, client.filter.deviceIds);
  const unsubscribe = events.subscribeBatches((batch) => {
    if (batch.length === 1) {
      const event = batch[0]!;
      index.forDevice(event.deviceId, (client) => client.offer(event));
      return;
    }
    const corked = new Set<WsClient>();
    for (const event of batch) {
      index.forDevice(event.deviceId, (client) => {
        if (!corked.has(client)) {
          corked.add(client);
          rawSocket(client.socket)?.cork();
        }
        client.offer(event);
      });
    }
    for (const client of corked) rawSocket(client.socket)?.uncork();
  });
  app.addHook('preClose', async () => {
    unsubscribe();
  });

  const spec = route(opts.doc, 'openWebSocket');
  app.route<{ Querystring: WsQuery }>({
    ...spec,
    // the filter is checked before the upgrade, so a bad one is a plain HTTP 400
    preHandler: async (request) => {
      queryFilter(request.query);
      // an upgrade's socket is its own, and closes when the WebSocket or the refusal ends
      if (request.headers.upgrade !== undefined) app.streamSlots.take(request, request.raw.socket);
    },
    handler: async () => {
      throw new BRG_ERR_UPGRADE_REQUIRED('/ws');
    },
    wsHandler: (socket, request) => {
      const client = new WsClient(socket, request.ip, queryFilter(request.query), limits, now, file);
      clients.add(client);
      file(client);
      trackPongs(client);
      request.log.debug({ client: request.ip, open: clients.size }, '/ws client connected');
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        client.receive(data, isBinary, store).catch((err: unknown) => {
          log.error({ err }, '/ws frame failed');
          client.error('internal error');
        });
      });
      socket.on('close', (code: number) => {
        clients.delete(client);
        index.delete(client);
        request.log.debug({ client: request.ip, code, open: clients.size }, '/ws client disconnected');
      });
      if (request.query.snapshot) {
        client.sendSnapshot(store).catch((err: unknown) => {
          log.error({ err }, '/ws snapshot failed');
          closeSocket(socket, WsClose.InternalError, 'snapshot failed');
        });
      }
    },
  });
}
