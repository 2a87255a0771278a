import type { FastifyBaseLogger } from 'fastify';
import { LogThrottle } from '../log-throttle.js';
import type { RejectionReason } from './normalize.js';

// SPEC §3: rejections are counted by reason, logged at warn without flooding the log,
// and the last 100 kept for GET /rejections.

export interface Rejection {
  topic: string;
  reason: RejectionReason;
  detail: string;
  /** The first 1 KiB of the payload, as text (invalid UTF-8 shown as U+FFFD). */
  payload: string;
  payloadBytes: number;
  receivedAt: string;
}

const KEEP = 100;
const PAYLOAD_PREFIX_BYTES = 1024;
const LOG_EVERY_MS = 10_000; // at most one warn line per reason per 10 s; the rest are summed up

export class RejectionLog {
  readonly #items: Rejection[] = [];
  readonly #counts = new Map<RejectionReason, number>();
  #total = 0;
  #now = 0;
  readonly #throttle = new LogThrottle<RejectionReason>(LOG_EVERY_MS, () => this.#now);

  constructor(private readonly log: FastifyBaseLogger) {}

  get total(): number {
    return this.#total;
  }

  add(topic: string, reason: RejectionReason, detail: string, payload: Buffer, nowMs: number): void {
    this.#total++;
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
    const rejection: Rejection = {
      topic,
      reason,
      detail,
      payload: payload.subarray(0, PAYLOAD_PREFIX_BYTES).toString('utf8'),
      payloadBytes: payload.length,
      receivedAt: new Date(nowMs).toISOString(),
    };
    if (this.#items.unshift(rejection) > KEEP) this.#items.pop();

    this.#now = nowMs;
    // pino writes JSON: device-controlled text cannot forge log lines (SPEC §9)
    this.#throttle.line(reason, (suppressed) => this.log.warn({ topic, reason, detail, suppressed }, 'MQTT message rejected'));
  }

  /** Newest first. */
  items(): Rejection[] {
    return this.#items.slice();
  }

  counts(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }
}
