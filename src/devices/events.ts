import type { Alarm, AlarmTransition } from './alarms.js';
import type { Device, RegistryEntry } from './types.js';

// SPEC §4/§5: the one event stream. Every live API (WebSocket, SSE, GraphQL) and the webhooks
// consume it; stores emit into it only after an event's effect is stored (SPEC §7).

/**
 * An event's wire forms, each serialized once when a consumer first asks (devices/wire.ts) and
 * then shared by every client of that format: fan-out never serializes per client.
 */
export interface Wire {
  device: string | null;
  ws: string | null;
  sse: string | null;
}

export interface UpdateEvent {
  readonly kind: 'update';
  readonly seq: number;
  readonly deviceId: string;
  readonly device: Device;
  readonly previousState: string | null;
  readonly changed: boolean;
  readonly wire: Wire;
}

export interface SilentEvent {
  readonly kind: 'silent';
  readonly seq: number;
  readonly deviceId: string;
  readonly device: Device;
  readonly wire: Wire;
}

/**
 * SPEC §11: a registry entry was set or deleted. `device` is the device with its new `meta`, or
 * null for a device registered and never heard from (then `meta` alone says where it is).
 */
export interface MetaEvent {
  readonly kind: 'meta';
  readonly seq: number;
  readonly deviceId: string;
  readonly device: Device | null;
  readonly meta: RegistryEntry | null;
  readonly wire: Wire;
}

/**
 * SPEC §12: an alarm was raised, escalated, acknowledged or cleared. `device` is the device as the
 * store had it (for the live filters' states; not sent), or null for one never heard from.
 */
export interface AlarmEvent {
  readonly kind: 'alarm';
  readonly seq: number;
  readonly deviceId: string;
  readonly device: Device | null;
  readonly transition: AlarmTransition;
  readonly alarm: Alarm;
  readonly wire: Wire;
}

export type DeviceEvent = UpdateEvent | SilentEvent | MetaEvent | AlarmEvent;
export type EventKind = DeviceEvent['kind'];
export type EventListener = (event: DeviceEvent) => void;
/** The events published since the last delivery, in seq order. */
export type BatchListener = (events: readonly DeviceEvent[]) => void;

export function updateEvent(seq: number, device: Device, previousState: string | null, changed: boolean): UpdateEvent {
  return { kind: 'update', seq, deviceId: device.deviceId, device, previousState, changed, wire: { device: null, ws: null, sse: null } };
}

export function silentEvent(seq: number, device: Device): SilentEvent {
  return { kind: 'silent', seq, deviceId: device.deviceId, device, wire: { device: null, ws: null, sse: null } };
}

export function alarmEvent(seq: number, device: Device | null, transition: AlarmTransition, alarm: Alarm): AlarmEvent {
  return { kind: 'alarm', seq, deviceId: alarm.deviceId, device, transition, alarm, wire: { device: null, ws: null, sse: null } };
}

export function metaEvent(seq: number, deviceId: string, device: Device | null, meta: RegistryEntry | null): MetaEvent {
  return { kind: 'meta', seq, deviceId, device, meta, wire: { device: null, ws: null, sse: null } };
}

export type Replay =
  | { kind: 'events'; events: DeviceEvent[] }
  /** The id is older than the buffer or newer than the newest seq: the client must re-read the state. */
  | { kind: 'reset' };

/**
 * In-process fan-out with a ring buffer of the last `capacity` events, in seq order.
 *
 * Off the acknowledgement path (SPEC §7, issue 14): publish() only records the event (the buffer
 * has it at once: replays and slow readers see it); the listeners hear it later in the same turn
 * of the event loop, in one batch with every other event published in that turn, so that the
 * PUBACK of a message waits for its durable write only and each live client gets one write per
 * batch. Listeners run in subscription order; one that throws is reported and the rest still run.
 */
export class EventStream {
  readonly #listeners = new Set<BatchListener>();
  /** Published, not yet delivered. */
  #batch: DeviceEvent[] = [];
  #scheduled = false;
  readonly #ring: (DeviceEvent | undefined)[];
  #start = 0;
  #size = 0;
  #lastSeq = 0;
  /** Replays from below this seq must reset: the buffer was cleared there. */
  #replayFloor = 0;
  #after: BatchListener | null = null;
  readonly #gapListeners = new Set<(next: number) => void>();

  constructor(
    readonly capacity: number,
    /** Told of a listener that threw, and of an event out of seq order. */
    private readonly onListenerError: (err: unknown) => void,
  ) {
    this.#ring = new Array(capacity);
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }

  /**
   * Continues after a restart: the events the store kept refill the replay buffer (no listener
   * hears them again), and the stream goes on after the store's last seq.
   */
  resume(lastSeq: number, kept: DeviceEvent[] = []): void {
    for (const event of kept.slice(-this.capacity)) {
      if (this.capacity === 0) break;
      this.#ring[(this.#start + this.#size) % this.capacity] = event;
      if (this.#size < this.capacity) this.#size++;
      else this.#start = (this.#start + 1) % this.capacity;
    }
    this.#lastSeq = lastSeq;
    // a gap between the kept events and the last seq (EVENT_BUFFER 0, say): no replay across it
    if (kept.length === 0 || kept[kept.length - 1]!.seq !== lastSeq) this.#replayFloor = lastSeq;
  }

  /** Records an event and schedules its delivery to every listener. Never throws: the event is already stored. */
  publish(event: DeviceEvent): void {
    if (event.seq <= this.#lastSeq) {
      // a bug or a store that hands out seqs out of order: deliver, but no replay may cross this
      this.onListenerError(new Error(`event seq ${event.seq} is not after ${this.#lastSeq}: replay buffer cleared`));
      this.#start = 0;
      this.#size = 0;
      this.#replayFloor = this.#lastSeq;
    } else {
      this.#lastSeq = event.seq;
    }
    if (this.capacity > 0) {
      if (this.#size < this.capacity) {
        this.#ring[(this.#start + this.#size++) % this.capacity] = event;
      } else {
        this.#ring[this.#start] = event;
        this.#start = (this.#start + 1) % this.capacity;
      }
    }
    this.#batch.push(event);
    if (!this.#scheduled) {
      this.#scheduled = true;
      // setImmediate: after the I/O of this turn (the PUBACKs written), once for the whole batch
      setImmediate(this.#deliver);
    }
  }

  /**
   * SPEC §8: the shared event log no longer holds the events up to `next` (a replica that was cut
   * off for longer than the log reaches back): what was published is delivered, the replay buffer
   * starts over at `next`, and the gap listeners are told, at once, so that no live client skips
   * those events silently (the live layer closes them; they come back and re-read the state, and
   * a Last-Event-ID from before the gap gets a reset).
   */
  jump(next: number): void {
    this.#deliver();
    this.#start = 0;
    this.#size = 0;
    this.#lastSeq = next - 1;
    this.#replayFloor = next - 1;
    for (const listener of this.#gapListeners) {
      try {
        listener(next);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  /** Hears each jump (see jump()); returns the unsubscribe. */
  onGap(listener: (next: number) => void): () => void {
    this.#gapListeners.add(listener);
    return () => this.#gapListeners.delete(listener);
  }

  /** Delivers what was published and not delivered yet, now (shutdown; tests). */
  flush(): void {
    this.#deliver();
  }

  readonly #deliver = (): void => {
    this.#scheduled = false;
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    for (const listener of this.#listeners) {
      try {
        listener(batch);
      } catch (err) {
        this.onListenerError(err);
      }
    }
    if (this.#after !== null) {
      try {
        this.#after(batch);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  };

  /**
   * Runs after every listener of each batch (one at most; /metrics times the fan-out with it).
   * Listeners subscribed later would run after a plain one: this stays last.
   */
  afterListeners(observer: BatchListener | null): void {
    this.#after = observer;
  }

  /** Hears each batch of events, in seq order; returns the unsubscribe. */
  subscribeBatches(listener: BatchListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Hears each event, in seq order (a loop over each batch). */
  subscribe(listener: EventListener): () => void {
    return this.subscribeBatches((events) => {
      for (const event of events) {
        try {
          listener(event);
        } catch (err) {
          this.onListenerError(err);
        }
      }
    });
  }

  /** True when the buffer reaches back to the event after `seq`: a replay from there has no gap. */
  reaches(seq: number): boolean {
    if (seq > this.#lastSeq || seq < this.#replayFloor) return false;
    const oldest = this.#size === 0 ? this.#lastSeq + 1 : this.#ring[this.#start]!.seq;
    // seqs are dense within one stream: a gap before the oldest buffered event means we lost some
    return seq >= oldest - 1;
  }

  /**
   * The first event after `seq`: undefined when there is none yet, null when the buffer no longer
   * reaches back to it (see reaches). A reader that keeps only a seq walks the stream with it:
   * the live layer's slow clients hold a position here, not a queue of their own.
   */
  next(seq: number): DeviceEvent | undefined | null {
    if (!this.reaches(seq)) return null;
    if (seq === this.#lastSeq) return undefined;
    // binary search: seqs ascend through the ring
    let lo = 0;
    let hi = this.#size - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#ring[(this.#start + mid) % this.capacity]!.seq > seq) hi = mid;
      else lo = mid + 1;
    }
    const event = this.#ring[(this.#start + lo) % this.capacity];
    return event !== undefined && event.seq > seq ? event : undefined;
  }

  /** The events after `seq`, for a client that reconnects with the last seq it saw. */
  replayAfter(seq: number): Replay {
    if (!this.reaches(seq)) return { kind: 'reset' };
    const events: DeviceEvent[] = [];
    for (let i = 0; i < this.#size; i++) {
      const event = this.#ring[(this.#start + i) % this.capacity]!;
      if (event.seq > seq) events.push(event);
    }
    return { kind: 'events', events };
  }
}
