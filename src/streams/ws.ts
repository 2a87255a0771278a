import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import type { DeviceEvent } from '../devices/events.js';
import type { DeviceStore } from '../devices/store.js';
import type { Device } from '../devices/types.js';
import { compareIds } from '../devices/rules.js';
import { deviceJson, wsFrame } from '../devices/wire.js';
import { BRG_ERR_UPGRADE_REQUIRED } from '../errors.js';
import { route } from '../http/openapi.js';
import { WsClose } from './close-codes.js';
import { matches, queryFilter, type EventFilter } from './filter.js';
import { pingLoop, trackPongs } from './keepalive.js';
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
  slowCloseMs: number;
  snapshotLimit: number;
}

/** Events kept in order while a snapshot is read; more than this and they are conflated too. */
const QUEUE_WHILE_READING = 10_000;

/**
 * One /ws connection. Frames go straight to the socket while it keeps up. Past maxBufferedBytes
 * of unsent data the client is "behind": its events wait in `pending`, newest per device
 * (conflation: memory bounded by the number of devices), and go out, oldest seq first and within
 * the byte bound, as the socket drains. While a snapshot is read, events wait in order in a queue
 * and are offered again after it, so that none falls between the snapshot and the stream.
 */
export class WsClient {
  filter: EventFilter;
  alive = true;
  /** Conflated events, newest per device, while behind; null while frames go straight out. */
  pending: Map<string, DeviceEvent> | null = null;
  /** When the client fell behind (ms), or null. */
  behindSince: number | null = null;
  /** Events that came while a snapshot was read; null when none is read. */
  #queue: DeviceEvent[] | null = null;
  #reading = false;
  /** A subscribe came while a snapshot was read: read another one after it. */
  #again = false;

  constructor(
    readonly socket: WebSocket,
    filter: EventFilter,
    private readonly limits: WsLimits,
    /** Told when the client falls behind: the drain loop then flushes it, or closes it. */
    private readonly onBehind: (client: WsClient) => void,
  ) {
    this.filter = filter;
  }

  /** Called for every event of the stream, in seq order: must stay cheap. */
  offer(event: DeviceEvent, now: number): void {
    if (!matches(this.filter, event.device)) return;
    if (this.#queue !== null && this.pending === null && this.#queue.length < QUEUE_WHILE_READING) {
      this.#queue.push(event);
      return;
    }
    if (this.pending !== null) {
      this.pending.set(event.device.deviceId, event);
      return;
    }
    if (this.#queue !== null || this.socket.bufferedAmount > this.limits.maxBufferedBytes) {
      this.pending = new Map([[event.device.deviceId, event]]);
      if (this.#queue === null) this.#fellBehind(now);
      return;
    }
    this.socket.send(wsFrame(event));
  }

  /** Sends what waits, oldest seq first, while the socket stays within the bound. True when caught up. */
  flush(): boolean {
    if (this.#queue !== null) return false; // a snapshot is being read: its end flushes
    if (this.pending === null) return true;
    const waiting = [...this.pending.values()].sort((a, b) => a.seq - b.seq);
    for (let i = 0; i < waiting.length; i++) {
      if (this.socket.bufferedAmount > this.limits.maxBufferedBytes) {
        this.pending = new Map(waiting.slice(i).map((e) => [e.device.deviceId, e]));
        return false;
      }
      this.socket.send(wsFrame(waiting[i]!));
    }
    this.pending = null;
    this.behindSince = null;
    return true;
  }

  /**
   * Reads a snapshot for the current filter and sends it, then the events that came meanwhile.
   * One read at a time: a subscribe during a read asks for one more read after it.
   */
  async sendSnapshot(store: DeviceStore): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    this.#queue = [];
    this.pending = null; // the snapshot replaces whatever waited
    try {
      do {
        this.#again = false;
        const { devices, total } = await snapshot(store, this.filter, this.limits.snapshotLimit);
        if (this.#again || this.socket.readyState !== this.socket.OPEN) continue;
        const body = devices.map(deviceJson).join(',');
        this.socket.send(`{"type":"snapshot","devices":[${body}],"total":${total},"truncated":${devices.length < total}}`);
      } while (this.#again);
    } finally {
      this.#reading = false;
      const queued = this.#queue;
      const conflated = this.pending as Map<string, DeviceEvent> | null;
      this.#queue = null;
      this.pending = null;
      const now = Date.now();
      for (const event of queued) this.offer(event, now);
      if (conflated !== null) for (const event of [...conflated.values()].sort((a, b) => a.seq - b.seq)) this.offer(event, now);
    }
  }

  /** A client frame: a subscribe replaces the filter; anything else gets an error frame. */
  async receive(data: Buffer, isBinary: boolean, store: DeviceStore): Promise<void> {
    // a client that sends frames but does not read their answers gets no more of them (SPEC §5 bound)
    if (this.socket.bufferedAmount > this.limits.maxBufferedBytes) {
      this.socket.close(WsClose.TryAgainLater, 'too slow: reconnect and resubscribe');
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
    this.filter = {
      deviceIds: frame.deviceIds ? new Set(frame.deviceIds) : null,
      states: frame.states ? new Set(frame.states) : null,
    };
    this.behindSince = null;
    await this.sendSnapshot(store);
  }

  error(message: string): void {
    this.socket.send(JSON.stringify({ type: 'error', message }));
  }

  #fellBehind(now: number): void {
    if (this.behindSince !== null) return;
    this.behindSince = now;
    this.onBehind(this);
  }
}

function frameProblem(): string {
  const e = validateSubscribe.errors![0]!;
  if (e.keyword === 'const' && e.instancePath === '/type') return "type must be 'subscribe'";
  const where = e.instancePath === '' ? 'the frame' : e.instancePath.slice(1).replaceAll('/', '.');
  return `${where} ${e.message ?? 'is invalid'}`;
}

const byId = (a: Device, b: Device): number => compareIds(a.deviceId, b.deviceId);

async function snapshot(store: DeviceStore, filter: EventFilter, limit: number): Promise<{ devices: Device[]; total: number }> {
  if (filter.deviceIds !== null) {
    const devices: Device[] = [];
    for (const id of filter.deviceIds) {
      const device = await store.get(id);
      if (device !== undefined && matches(filter, device)) devices.push(device);
    }
    devices.sort(byId);
    return { devices: devices.slice(0, limit), total: devices.length };
  }
  if (filter.states === null) {
    const page = await store.list({ limit });
    return { devices: page.items, total: page.total };
  }
  const devices: Device[] = [];
  let total = 0;
  for (const state of filter.states) {
    const page = await store.list({ state, limit });
    devices.push(...page.items);
    total += page.total;
  }
  devices.sort(byId);
  return { devices: devices.slice(0, limit), total };
}

export async function wsRoutes(app: FastifyInstance, opts: StreamsPluginOptions): Promise<void> {
  const { config } = opts;
  const { events, store } = app.devices;
  const limits: WsLimits = {
    maxBufferedBytes: config.wsMaxBufferedBytes,
    slowCloseMs: config.wsSlowCloseMs,
    snapshotLimit: config.wsSnapshotLimit,
  };
  const clients = app.liveClients.ws;
  const behind = new Set<WsClient>();
  const log = app.log.child({ module: 'ws' });

  const unsubscribe = events.subscribe((event) => {
    const now = Date.now();
    for (const client of clients) client.offer(event, now);
  });
  const fellBehind = (client: WsClient): void => void behind.add(client);

  // Clients that fell behind: flushed as their sockets drain, closed when behind too long.
  const drainTimer = setInterval(() => {
    const now = Date.now();
    for (const client of behind) {
      if (client.flush()) {
        behind.delete(client);
      } else if (client.behindSince !== null && now - client.behindSince > limits.slowCloseMs) {
        behind.delete(client);
        log.info({ behindMs: now - client.behindSince }, 'closing a /ws client that stayed behind');
        client.socket.close(WsClose.TryAgainLater, 'too slow: reconnect and resubscribe');
      }
    }
  }, Math.min(250, limits.slowCloseMs / 4));
  drainTimer.unref();

  const pingTimer = pingLoop(clients, config.wsPingMs);

  app.addHook('preClose', async () => {
    unsubscribe();
    clearInterval(drainTimer);
    clearInterval(pingTimer);
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
      const client = new WsClient(socket, queryFilter(request.query), limits, fellBehind);
      clients.add(client);
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
        behind.delete(client);
        request.log.debug({ client: request.ip, code, open: clients.size }, '/ws client disconnected');
      });
      if (request.query.snapshot) {
        client.sendSnapshot(store).catch((err: unknown) => {
          log.error({ err }, '/ws snapshot failed');
          socket.close(WsClose.InternalError, 'snapshot failed');
        });
      }
    },
  });
}
