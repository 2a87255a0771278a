import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { FastifyBaseLogger } from 'fastify';
import type { MqttConfig } from '../config.js';
import type { Clock, DeviceService } from '../devices/service.js';
import type { DeviceRecord } from '../devices/types.js';
import { Batcher, type BatchEntry } from './batch.js';
import { normalize, type Normalized, type NormalizeLimits } from './normalize.js';
import { PubackHold } from './puback-hold.js';
import { RejectionLog } from './rejections.js';
import { topicMatcher } from '../topics.js';

// SPEC §2/§6: one MQTT subscription to the WiiHey platform. QoS 1 with a persistent session,
// and the PUBACK only once the message's effect is stored (SPEC §7). MQTT.js would hand over one
// message at a time, each gated by its PUBACK (mqttjs/MQTT.js#209); the bridge takes every message
// at once instead, holding its PUBACK (puback-hold.ts), writes what arrived in one event-loop turn
// as one batch (batch.ts), and then releases the batch's PUBACKs in arrival order.

/** How long close() waits for the broker to take the DISCONNECT. */
const DISCONNECT_TIMEOUT_MS = 2000;

export interface MqttStatus {
  connected: boolean;
  /** Every configured topic is subscribed on the current connection. */
  subscribed: boolean;
  /** ISO 8601: when the connection entered its current state; null before the first attempt ends. */
  since: string | null;
  reconnects: number;
  lastError: string | null;
}

export interface MessageTotals {
  received: number;
  invalid: number;
}

export interface IngestOptions {
  config: MqttConfig;
  limits: NormalizeLimits;
  devices: DeviceService;
  clock: Clock;
  log: FastifyBaseLogger;
}

/** At most this many messages in one write (the broker's in-flight window bounds QoS 1 well below it). */
const MAX_BATCH = 1000;
/** Past this many messages taken and not yet written, MQTT.js is handed no callback: the socket backs up. */
const MAX_PENDING = 2 * MAX_BATCH;
const STORE_RETRY_MIN_MS = 100;
const STORE_RETRY_MAX_MS = 5_000;
const REPEAT_ERROR_LOG_MS = 60_000;

/** A message taken off the wire, waiting for its batch's write. */
interface Taken extends BatchEntry {
  readonly connection: AbortSignal;
  /** Null for a message refused at the door: it has no write, but its PUBACK keeps its place. */
  readonly record: DeviceRecord | null;
  readonly receivedAtMs: number;
}

/**
 * Emits 'status' (MqttStatus) whenever the connection state or its last error changes, and
 * 'batch' (its size) for each batch of messages written.
 */
export class MqttIngest extends EventEmitter<{ status: [MqttStatus]; batch: [number] }> {
  readonly rejections: RejectionLog;
  readonly totals: MessageTotals = { received: 0, invalid: 0 };
  readonly #config: MqttConfig;
  readonly #limits: NormalizeLimits;
  readonly #devices: DeviceService;
  readonly #clock: Clock;
  readonly #log: FastifyBaseLogger;
  readonly #isConfigured: (topic: string) => boolean;
  #client: MqttClient | null = null;
  #status: MqttStatus = { connected: false, subscribed: false, since: null, reconnects: 0, lastError: null };
  #attempt = 0;
  #closing = false;
  #storeError: string | null = null;
  #lastErrorLoggedAt = 0;
  /** Aborted when the current connection closes: the work on its messages stops. */
  #connection = new AbortController();
  /** Aborted by close(): a store retry stops waiting (a write under way still finishes). */
  readonly #stopping = new AbortController();
  #hold: PubackHold | null = null;
  /** Set when the PUBACK hold no longer trusts MQTT.js: nothing is taken or acknowledged any more. */
  #holdError: string | null = null;
  readonly #batcher = new Batcher<Taken>({
    write: (batch) => this.#write(batch),
    maxBatch: MAX_BATCH,
    schedule: (run) => setImmediate(run),
    onBatch: (size) => this.emit('batch', size),
    onDrain: () => this.#resumeTaking(),
  });

  /** QoS 1 messages of the current connection whose PUBACK is due, by packet id (the latest holder of an id acknowledges it). */
  readonly #acks = new Map<number, Taken>();
  /** MQTT.js's callback for the last message, held back while too much is pending. */
  #waitingDone: (() => void) | null = null;
  #resolveSubscribed: () => void = () => {};
  #rejectSubscribed: (err: Error) => void = () => {};
  /** Settles with the first complete subscription, or rejects if closed before it. */
  readonly subscribedOnce = new Promise<void>((resolve, reject) => {
    this.#resolveSubscribed = resolve;
    this.#rejectSubscribed = reject;
  });

  constructor(options: IngestOptions) {
    super();
    this.#config = options.config;
    this.#limits = options.limits;
    this.#devices = options.devices;
    this.#clock = options.clock;
    this.#log = options.log;
    this.rejections = new RejectionLog(options.log);
    this.#isConfigured = topicMatcher(options.config.topics);
    this.subscribedOnce.catch(() => {}); // a close before subscribing is no error of its own
  }

  /** The broker's URL, without credentials. */
  get url(): string {
    return safeUrl(this.#config.url);
  }

  status(): MqttStatus {
    return { ...this.#status };
  }

  /** Why the bridge is not ready to ingest, or an empty list. */
  problems(): string[] {
    const problems: string[] = [];
    if (!this.#status.connected) {
      problems.push(`mqtt: not connected to ${safeUrl(this.#config.url)}${this.#status.lastError ? `: ${this.#status.lastError}` : ''}`);
    } else if (!this.#status.subscribed) {
      problems.push(`mqtt: not subscribed${this.#status.lastError ? `: ${this.#status.lastError}` : ''}`);
    }
    if (this.#storeError !== null) problems.push(`store: ${this.#storeError}`);
    if (this.#holdError !== null) problems.push(`mqtt: acknowledgements stopped: ${this.#holdError}`);
    return problems;
  }

  start(): void {
    const c = this.#config;
    const options: IClientOptions = {
      clientId: c.clientId,
      username: c.username,
      password: c.password,
      clean: c.clean,
      protocolVersion: 4,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: c.reconnectMinMs,
      resubscribe: false, // subscribed on every connect below, whatever the broker kept
      // a refused CONNECT (bad APP-KEY, say) is retried with backoff too: the service stays up and says why
      reconnectOnConnackError: true,
      ca: c.ca,
      cert: c.cert,
      key: c.key,
      rejectUnauthorized: !c.tlsInsecure,
    };
    if (c.tlsInsecure) this.#log.warn('MQTT_TLS_INSECURE=true: the broker certificate is NOT verified');
    this.#log.info(
      { url: safeUrl(c.url), clientId: c.clientId, topics: c.topics, qos: c.qos, clean: c.clean },
      'connecting to MQTT',
    );
    const client = mqtt.connect(c.url, options);
    this.#client = client;
    this.#hold = new PubackHold(client, (reason) => this.#holdBroken(client, reason));
    client.handleMessage = (packet, done) => this.#take(client, packet, done);
    client.on('connect', (connack) => {
      this.#attempt = 0;
      client.options.reconnectPeriod = c.reconnectMinMs;
      this.#setState(true, null);
      this.#log.info({ sessionPresent: connack.sessionPresent }, 'MQTT connected');
      this.#subscribe(client);
    });
    client.on('reconnect', () => {
      this.#status.reconnects++;
      // exponential backoff with jitter: MQTT.js reads reconnectPeriod for each new timer
      this.#attempt++;
      const base = Math.min(c.reconnectMaxMs, c.reconnectMinMs * 2 ** Math.min(this.#attempt, 20));
      client.options.reconnectPeriod = Math.round(base / 2 + (Math.random() * base) / 2);
    });
    client.on('close', () => {
      // stop the work of this connection: its messages will be redelivered on the next one
      this.#connection.abort();
      this.#connection = new AbortController();
      this.#acks.clear();
      if (this.#status.connected) this.#log.warn('MQTT connection closed');
      this.#setState(false, this.#status.lastError);
    });
    client.on('error', (err) => this.#onError(err));
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#rejectSubscribed(new Error('closed before subscribing'));
    // the messages taken are written, and acknowledged if their connection is still up; a batch
    // waiting to retry a failed write gives up, unacknowledged
    this.#stopping.abort();
    await this.#batcher.drain();
    this.#connection.abort();
    const client = this.#client;
    if (client === null) return;
    this.#client = null;
    // A clean DISCONNECT (after the PUBACK just sent): the persistent session stays on the broker
    // with what it still holds. A broker that does not close its side in time is cut.
    // end() is not relied on to call back: with a SUBSCRIBE still unanswered it waits for an ack
    // that a cut connection never brings.
    await new Promise<void>((resolve) => {
      const cut = setTimeout(() => {
        client.stream?.destroy();
        resolve();
      }, DISCONNECT_TIMEOUT_MS);
      client.end(false, () => {
        clearTimeout(cut);
        // never connected: end() leaves a connection attempt under way
        if (!client.connected) client.stream?.destroy();
        resolve();
      });
    });
  }

  /** MQTT.js's handleMessage: takes the message into the next batch and lets MQTT.js go on. */
  #take(client: MqttClient, packet: IPublishPacket, done: (err?: Error) => void): void {
    const hold = this.#hold;
    this.totals.received++;
    // closing, or the hold broken: not taken, never acknowledged; the broker keeps it
    if (this.#closing || hold === null || this.#holdError !== null) return;
    const connection = this.#connection.signal;
    const { record, receivedAtMs } = this.#normalize(packet);
    let ack: (() => void) | null = null;
    if (packet.qos === 1) {
      const id = packet.messageId ?? -1;
      const stream = client.stream;
      ack = () => {
        // a redelivery of an id still pending on this connection moved the PUBACK to itself: one PUBACK per id
        if (this.#acks.get(id) !== taken) return;
        this.#acks.delete(id);
        hold.release(id, stream);
      };
    } else if (packet.qos === 2) {
      // QoS 2 stays one at a time: MQTT.js's callback (its PUBCOMP) waits for the write
      ack = () => {
        if (!connection.aborted && client.connected) done();
      };
    }
    const taken: Taken = { connection, record, receivedAtMs, ack };
    if (packet.qos === 1) this.#acks.set(packet.messageId ?? -1, taken);
    this.#batcher.add(taken);
    if (packet.qos === 2) return;
    const proceed = (): void => {
      hold.take(packet, done);
    };
    if (this.#batcher.pending >= MAX_PENDING) this.#waitingDone = proceed;
    else proceed();
  }

  #resumeTaking(): void {
    const proceed = this.#waitingDone;
    if (proceed === null || this.#batcher.pending >= MAX_PENDING) return;
    this.#waitingDone = null;
    proceed();
  }

  #holdBroken(client: MqttClient, reason: string): void {
    this.#holdError = reason;
    this.#log.error({ reason }, 'MQTT.js did not behave as the PUBACK hold expects; acknowledging nothing more');
    // the broker redelivers what was not acknowledged to a bridge that works
    client.stream?.destroy();
    this.emit('status', this.status());
  }

  /** The message's record, or null when it is refused (kept for /rejections). */
  #normalize(packet: IPublishPacket): { record: DeviceRecord | null; receivedAtMs: number } {
    const receivedAtMs = this.#clock.now();
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (!this.#isConfigured(packet.topic)) {
      // a persistent session may still hold subscriptions of an older configuration (SPEC §9)
      this.#reject(packet.topic, 'topic_not_configured', 'not one of MQTT_TOPICS', payload, receivedAtMs);
      return { record: null, receivedAtMs };
    }
    let result: Normalized;
    try {
      result = normalize(payload, Math.floor(receivedAtMs / 1000), this.#limits);
    } catch (err) {
      // a bug of ours, not the sender's: kept for /rejections, so that the message never stalls the session
      this.#log.error({ err, topic: packet.topic }, 'normalization failed');
      result = { ok: false, reason: 'internal_error', detail: 'the bridge failed on this message; see its log' };
    }
    if (!result.ok) {
      this.#reject(packet.topic, result.reason, result.detail, payload, receivedAtMs);
      return { record: null, receivedAtMs };
    }
    return { record: result.record, receivedAtMs };
  }

  /**
   * Writes a batch in one store call. SPEC §7: a failed write is retried, never acknowledged, so
   * the broker never drops the messages; given up (false) once their connection closed (the broker
   * redelivers on the next) or by close().
   */
  async #write(batch: Taken[]): Promise<boolean> {
    const items: { record: DeviceRecord; receivedAtMs: number }[] = [];
    for (const taken of batch) if (taken.record !== null) items.push({ record: taken.record, receivedAtMs: taken.receivedAtMs });
    const first = batch[0];
    if (first === undefined || items.length === 0) return true;
    const signal = AbortSignal.any([first.connection, this.#stopping.signal]);
    for (let delay = STORE_RETRY_MIN_MS; ; delay = Math.min(delay * 2, STORE_RETRY_MAX_MS)) {
      try {
        await this.#devices.acceptBatch(items);
        if (this.#storeError !== null) this.#log.info('store writes work again');
        this.#storeError = null;
        return true;
      } catch (err) {
        if (this.#storeError === null) this.#log.error({ err }, 'store write failed; retrying');
        this.#storeError = (err as Error).message;
        try {
          await sleep(delay, undefined, { signal });
        } catch {
          return false;
        }
      }
    }
  }

  #reject(topic: string, reason: Parameters<RejectionLog['add']>[1], detail: string, payload: Buffer, nowMs: number): void {
    this.totals.invalid++;
    this.rejections.add(topic, reason, detail, payload, nowMs);
  }

  #subscribe(client: MqttClient): void {
    const c = this.#config;
    // SPEC §8: with a shared group the broker splits the messages among the group's members; they
    // arrive on their own topics (what topicMatcher checks), not on the $share filter
    const filters = c.sharedGroup === null ? c.topics : c.topics.map((topic) => `$share/${c.sharedGroup}/${topic}`);
    client.subscribe(filters, { qos: c.qos }, (err, granted) => {
      if (client !== this.#client) return;
      if (err) {
        this.#onError(err);
        return;
      }
      const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0) {
        this.#onError(new Error(`subscription refused by the broker for ${refused.join(', ')} (check the broker's ACL)`));
        return;
      }
      this.#status.subscribed = true;
      this.#status.lastError = null;
      this.#log.info({ topics: filters }, 'MQTT subscribed');
      this.emit('status', this.status());
      this.#resolveSubscribed();
    });
  }

  #setState(connected: boolean, lastError: string | null): void {
    if (this.#status.connected !== connected || this.#status.since === null) {
      this.#status.since = new Date(this.#clock.now()).toISOString();
    }
    this.#status.connected = connected;
    this.#status.subscribed = false;
    this.#status.lastError = lastError;
    this.emit('status', this.status());
  }

  #onError(err: Error): void {
    if (this.#closing) return;
    const message = describeError(err, this.#config);
    const now = this.#clock.now();
    if (message !== this.#status.lastError || now - this.#lastErrorLoggedAt >= REPEAT_ERROR_LOG_MS) {
      this.#lastErrorLoggedAt = now;
      this.#log.error({ url: safeUrl(this.#config.url), code: (err as NodeJS.ErrnoException).code }, `MQTT: ${message}`);
    }
    this.#status.lastError = message;
    this.emit('status', this.status());
  }
}

const TLS_TRUST_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_UNTRUSTED',
]);

function describeError(err: Error, config: MqttConfig): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && TLS_TRUST_CODES.has(code)) {
    return `TLS: the broker's certificate is not trusted (${err.message}); check MQTT_CA_FILE`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `TLS: ${err.message}; check the host name in MQTT_URL`;
  if (code === 'CERT_HAS_EXPIRED') return "TLS: the broker's certificate has expired";
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') {
    return 'TLS: the broker requires a client certificate; set MQTT_CERT_FILE and MQTT_KEY_FILE';
  }
  if (typeof code === 'string' && /^ERR_SSL_.*ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN)$/.test(code)) {
    return 'TLS: the broker refused the client certificate (MQTT_CERT_FILE, MQTT_KEY_FILE)';
  }
  if (code === 'ECONNREFUSED') return `connection refused by ${safeUrl(config.url)}`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve the host of ${safeUrl(config.url)}`;
  const reason = (err as { code?: unknown }).code;
  if (reason === 4 || reason === 5 || reason === 134 || reason === 135) {
    return `${err.message}: check WIIHEY_APP_ID and WIIHEY_APP_KEY`;
  }
  return err.message;
}

/** The URL without credentials, for logs and /readyz. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid URL)';
  }
}
