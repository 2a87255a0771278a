import type { FastifyBaseLogger } from 'fastify';
import { EventEmitter } from 'node:events';
import { Webhook } from 'standardwebhooks';
import type { Clock, Timer } from '../clock.js';
import type { Delivery, Outbox } from '../devices/outbox.js';
import { webhookId } from '../devices/outbox.js';

// SPEC §5: Standard Webhooks delivery. Each attempt is signed afresh with its own timestamp;
// success is a 2xx within the timeout; failures (timeouts, network errors, 5xx, 429, 3xx: no
// redirects followed, other 4xx) are retried on a schedule spanning days, with jitter, honouring
// Retry-After; 410 Gone disables the URL. Each URL has its own loop: one slow or dead receiver
// never delays another.

export interface DeliveryOptions {
  urls: string[];
  secret: string;
  storeId: string;
  outbox: Outbox;
  timeoutMs: number;
  /** Delays before the 2nd, 3rd, … attempt (ms); after the last, a delivery is abandoned. */
  retryScheduleMs: number[];
  log: FastifyBaseLogger;
  /** The service's clock: attempts, signatures, the retry schedule and its timers, the timeout. */
  clock: Clock;
}

export interface WebhookCounts {
  delivered: number;
  retried: number;
  abandoned: number;
  disabledUrls: number;
}

/** Requests in flight per URL: enough to keep up, few enough not to swamp a receiver. */
const PER_URL = 4;
/** A claim lasts twice the attempt's timeout and this much more: then another replica may take the delivery. */
const CLAIM_MARGIN_MS = 5000;
/** At close, attempts under way get this long to finish before they are cut. */
const CLOSE_GRACE_MS = 1000;

/** Emits 'settled' after each attempt is recorded (delivered, retried, abandoned or disabled). */
export class WebhookDelivery extends EventEmitter<{ settled: [] }> {
  readonly counts: WebhookCounts = { delivered: 0, retried: 0, abandoned: 0, disabledUrls: 0 };
  readonly #workers: UrlWorker[];

  constructor(options: DeliveryOptions) {
    super();
    const signer = new Webhook(options.secret);
    this.#workers = options.urls.map((url) => new UrlWorker(url, options, signer, this.counts, () => this.emit('settled')));
  }

  start(): void {
    for (const worker of this.#workers) worker.wake();
  }

  /** New deliveries were enqueued: look now rather than at the next timer. */
  wake(): void {
    for (const worker of this.#workers) worker.wake();
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.close()));
  }
}

class UrlWorker {
  #timer: Timer | undefined;
  #inFlight = new Map<number, Promise<void>>();
  #running = false;
  #again = false;
  #closed = false;
  #disabled = false;
  readonly #abort = new AbortController();
  readonly #clock: Clock;

  constructor(
    readonly url: string,
    private readonly options: DeliveryOptions,
    private readonly signer: Webhook,
    private readonly counts: WebhookCounts,
    private readonly settled: () => void,
  ) {
    this.#clock = options.clock;
  }

  #now(): number {
    return this.#clock.now();
  }

  wake(): void {
    if (this.#closed || this.#disabled) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    this.#clock.clearTimeout(this.#timer);
    this.#pump()
      .catch((err: unknown) => this.options.log.error({ err, url: this.url }, 'webhook delivery loop failed'))
      .finally(() => {
        this.#running = false;
        if (this.#again) {
          this.#again = false;
          this.wake();
        }
      });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    // attempts under way may finish first: one cut after the receiver took it is sent again
    // later (once its claim ends, SPEC §8), a duplicate the receiver must recognise by its id.
    // Real time: it bounds close(), which a test's manual clock would leave open.
    const inFlight = Promise.allSettled(this.#inFlight.values());
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([inFlight, new Promise((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))]);
    clearTimeout(grace);
    this.#abort.abort();
    await inFlight;
  }

  /** Starts what is due (up to PER_URL at once), then sleeps until the next is due. */
  async #pump(): Promise<void> {
    const free = PER_URL - this.#inFlight.size;
    if (free > 0) {
      // SPEC §8: taken, so that another replica sends none of them while this one tries
      const due = await this.options.outbox.claimDeliveries(this.url, this.#now(), PER_URL, 2 * this.options.timeoutMs + CLAIM_MARGIN_MS);
      for (const delivery of due) {
        if (this.#inFlight.size >= PER_URL || this.#inFlight.has(delivery.id)) continue;
        const attempt = this.#attempt(delivery).finally(() => {
          this.#inFlight.delete(delivery.id);
          this.settled();
          this.wake();
        });
        this.#inFlight.set(delivery.id, attempt);
      }
    }
    if (this.#inFlight.size > 0 || this.#closed || this.#disabled) return; // each finished attempt wakes the loop
    const next = await this.options.outbox.nextDueAt(this.url);
    if (next !== null) this.#timer = this.#clock.setTimeout(() => this.wake(), Math.max(0, next - this.#now()));
  }

  async #attempt(delivery: Delivery): Promise<void> {
    const id = webhookId(this.options.storeId, delivery.seq);
    const at = new Date(this.#now());
    let status = 0;
    let retryAfterMs: number | null = null;
    let error: string | null = null;
    // on the service's clock, as the retries are (AbortSignal.timeout would run on the process's)
    const timeout = new AbortController();
    const timer = this.#clock.setTimeout(() => timeout.abort(new DOMException('webhook timeout', 'TimeoutError')), this.options.timeoutMs);
    try {
      const response = await fetch(this.url, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
          // signed afresh for each attempt: receivers refuse timestamps older than 5 minutes
          'webhook-signature': this.signer.sign(id, at, delivery.body),
        },
        body: delivery.body,
        signal: AbortSignal.any([timeout.signal, this.#abort.signal]),
      });
      status = response.status;
      retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.#now());
      await response.body?.cancel();
    } catch (err) {
      if (this.#closed) return; // shutting down: the delivery stays pending for the next start
      error = (err as Error).name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : (err as Error).message;
    } finally {
      this.#clock.clearTimeout(timer);
    }
    if (status >= 200 && status < 300) {
      await this.options.outbox.deliveryDone(delivery.id);
      this.counts.delivered++;
      return;
    }
    if (status === 410) {
      // SPEC §5: 410 Gone disables the URL (until the next start); its deliveries stay pending
      if (this.#disabled) return; // the other requests in flight answered the same
      this.#disabled = true;
      this.counts.disabledUrls++;
      this.options.log.warn({ url: this.url }, 'webhook receiver answered 410 Gone: URL disabled until the next start');
      return;
    }
    const attempts = delivery.attempts + 1;
    const reason = error ?? `HTTP ${status}`;
    const delay = this.options.retryScheduleMs[attempts - 1];
    if (delay === undefined) {
      await this.options.outbox.deliveryDone(delivery.id);
      this.counts.abandoned++;
      this.options.log.error({ url: this.url, webhookId: id, attempts, reason }, 'webhook delivery abandoned after its last attempt');
      return;
    }
    // ±20 % jitter, so that a receiver coming back is not hit by every retry at once
    const wait = Math.max(retryAfterMs ?? 0, Math.round(delay * (0.8 + Math.random() * 0.4)));
    await this.options.outbox.deliveryRetry(delivery.id, attempts, this.#now() + wait);
    this.counts.retried++;
    this.options.log.warn({ url: this.url, webhookId: id, attempts, reason, retryInMs: wait }, 'webhook delivery failed; will retry');
  }
}

/** Retry-After: seconds, or an HTTP date; null when absent or not understood. Capped at a day. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const DAY = 86_400_000;
  if (/^\d+$/.test(value.trim())) return Math.min(DAY, Number(value.trim()) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.min(DAY, Math.max(0, date - now));
}
