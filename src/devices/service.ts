import type { FastifyBaseLogger } from 'fastify';
import { EventStream, type DeviceEvent } from './events.js';
import type { DeviceStore, StoreOutcome } from './store.js';
import type { DeviceRecord } from './types.js';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface DeviceServiceOptions {
  store: DeviceStore;
  clock: Clock;
  log: FastifyBaseLogger;
  silenceAfterSeconds: number;
  eventBuffer: number;
}

export interface MessageCounts {
  accepted: number;
  duplicate: number;
  late: number;
}

/**
 * The devices station of the flow: applies records to the store and publishes what the store
 * decided into the one event stream, in seq order. Ingest feeds it; every API reads it.
 */
export class DeviceService {
  readonly store: DeviceStore;
  readonly events: EventStream;
  readonly counts: MessageCounts = { accepted: 0, duplicate: 0, late: 0 };
  readonly #clock: Clock;
  readonly #log: FastifyBaseLogger;
  readonly #silenceAfterSeconds: number;

  constructor(options: DeviceServiceOptions) {
    this.store = options.store;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#silenceAfterSeconds = options.silenceAfterSeconds;
    this.events = new EventStream(options.eventBuffer, (err) => this.#log.error({ err }, 'event listener failed'));
  }

  async open(): Promise<void> {
    this.events.resume(await this.store.lastSeq());
  }

  /** Resolves once the record's effect is stored and its event published. */
  async accept(record: DeviceRecord, receivedAtMs: number): Promise<StoreOutcome> {
    const outcome = await this.store.apply(record, new Date(receivedAtMs).toISOString());
    switch (outcome.kind) {
      case 'update':
        this.counts.accepted++;
        this.events.publish(outcome.event);
        break;
      case 'duplicate':
        this.counts.duplicate++;
        break;
      case 'late':
        this.counts.late++;
        break;
    }
    return outcome;
  }

  /** SPEC §4: marks the devices silent that sent nothing for SILENCE_AFTER_SECONDS. */
  async sweepSilence(): Promise<DeviceEvent[]> {
    const cutoff = Math.floor(this.#clock.now() / 1000) - this.#silenceAfterSeconds;
    const events = await this.store.markSilent(cutoff);
    for (const event of events) this.events.publish(event);
    if (events.length > 0) this.#log.info({ devices: events.length }, 'devices fell silent');
    return events;
  }
}
