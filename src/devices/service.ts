import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.js';
import { EventStream, type DeviceEvent } from './events.js';
import { EventFeed } from './feed.js';
import type { Alarm } from './alarms.js';
import type { AlarmUpdate, DeviceStore, StoreOutcome } from './store.js';
import type { DeviceRecord, RegistryEntry } from './types.js';
import { sameEntry } from './registry.js';

// the clock lives on the ground floor (src/clock.ts); ingest takes its type from here
export { systemClock, type Clock } from '../clock.js';

const SILENCE_BATCH = 10_000;

export interface DeviceServiceOptions {
  store: DeviceStore;
  clock: Clock;
  log: FastifyBaseLogger;
  silenceAfterSeconds: number;
  eventBuffer: number;
}

export interface ImportResult {
  created: number;
  updated: number;
  /** Entries the same as the registry's already (or kept as they were: keepExisting). */
  unchanged: number;
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
  /** Milliseconds since the epoch, by the service's clock: for uptime. */
  readonly startedAt: number;
  /** The service's clock: every station that reads the time or sets a timer uses this one (STYLE: time is an input). */
  readonly clock: Clock;
  readonly #log: FastifyBaseLogger;
  readonly #silenceAfterSeconds: number;
  /** Sweeps run one after the other: the one at start may take a while with a large fleet. */
  #sweeps: Promise<unknown> = Promise.resolve();
  #sweepsStopped = false;
  /** SPEC §8: with a shared store the events come from its log, this process's own included. */
  readonly #feed: EventFeed | null;

  constructor(options: DeviceServiceOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.startedAt = options.clock.now();
    this.#log = options.log;
    this.#silenceAfterSeconds = options.silenceAfterSeconds;
    this.events = new EventStream(options.eventBuffer, (err) => this.#log.error({ err }, 'event listener failed'));
    const log = options.store.sharedLog;
    this.#feed = log === undefined ? null : new EventFeed(log, this.events, options.clock, this.#log);
  }

  async open(): Promise<void> {
    const kept = await this.store.recentEvents(this.events.capacity);
    // a shared log moves on while this reads: follow it from the last event kept, where there is one
    const last = this.#feed !== null && kept.length > 0 ? kept[kept.length - 1]!.seq : await this.store.lastSeq();
    this.events.resume(last, kept.filter((e) => e.seq <= last));
  }

  /** SPEC §8: starts following the shared log (once every consumer listens); nothing without one. */
  follow(): void {
    this.#feed?.start();
  }

  /** Stops following the shared log; resolves once the read under way has ended (the store's close ends it). */
  unfollow(): Promise<void> {
    return this.#feed?.stop() ?? Promise.resolve();
  }

  /** Why the devices cannot be served now (a shared store unreachable), or an empty list. */
  problems(): string[] {
    return [...(this.store.sharedLog?.problems() ?? []), ...(this.#feed?.problems() ?? [])];
  }

  /** How many times the shared log no longer reached back and the live clients were reset. */
  get logGaps(): number {
    return this.#feed?.gaps ?? 0;
  }

  /** Publishes what a write of this process made, unless the shared log brings it (SPEC §8). */
  #publish(event: DeviceEvent): void {
    if (this.#feed === null) this.events.publish(event);
  }

  /** Resolves once the record's effect is stored and its event published. */
  async accept(record: DeviceRecord, receivedAtMs: number): Promise<StoreOutcome> {
    const outcome = await this.store.apply(record, new Date(receivedAtMs).toISOString());
    this.#accepted(outcome);
    return outcome;
  }

  /**
   * SPEC §7 (issue 17): several records in one write, all or nothing; resolves once all are
   * stored and their events published, in order. Throws, storing nothing, when the write fails.
   */
  async acceptBatch(items: readonly { record: DeviceRecord; receivedAtMs: number }[]): Promise<StoreOutcome[]> {
    const outcomes = await this.store.applyBatch(items.map((i) => ({ record: i.record, receivedAt: new Date(i.receivedAtMs).toISOString() })));
    for (const outcome of outcomes) this.#accepted(outcome);
    return outcomes;
  }

  /** Counts an outcome and publishes its events. */
  #accepted(outcome: StoreOutcome): void {
    switch (outcome.kind) {
      case 'update':
        this.counts.accepted++;
        this.#publish(outcome.event);
        for (const event of outcome.alarms) this.#publish(event);
        break;
      case 'duplicate':
        this.counts.duplicate++;
        break;
      case 'late':
        this.counts.late++;
        break;
    }
  }

  /**
   * SPEC §11: sets registry entries (upsert by deviceId), all or nothing; each changed entry is a
   * meta event. dryRun: only counts what would change. keepExisting: registered entries stay as
   * they are (the demo registers its fleet on every start without undoing an operator's edits).
   */
  async importEntries(entries: readonly RegistryEntry[], options: { dryRun?: boolean; keepExisting?: boolean } = {}): Promise<ImportResult> {
    if (options.dryRun === true) {
      const result: ImportResult = { created: 0, updated: 0, unchanged: 0 };
      for (const entry of entries) {
        const before = await this.store.getEntry(entry.deviceId);
        if (before === undefined) result.created++;
        else if (options.keepExisting === true || sameEntry(before, entry)) result.unchanged++;
        else result.updated++;
      }
      return result;
    }
    const written = await this.store.putEntries(entries, { keepExisting: options.keepExisting === true });
    for (const event of written.events) this.#publish(event);
    return { created: written.created, updated: written.updated, unchanged: written.unchanged };
  }

  /** SPEC §11 PUT: replaces one entry. True when it is new. */
  async setMeta(entry: RegistryEntry): Promise<boolean> {
    return (await this.importEntries([entry])).created === 1;
  }

  /** SPEC §11 DELETE: false when the device had no entry. */
  async deleteMeta(deviceId: string): Promise<boolean> {
    const event = await this.store.deleteEntry(deviceId);
    if (event === null) return false;
    this.#publish(event);
    return true;
  }

  /**
   * SPEC §4: marks the devices silent that sent nothing for SILENCE_AFTER_SECONDS, then checks the
   * timed alarms. Returns how many fell silent. After one under way, if any.
   */
  sweepSilence(): Promise<number> {
    const run = this.#sweeps.then(() => this.#sweepSilence());
    this.#sweeps = run.catch(() => {});
    return run;
  }

  /** Stops the sweeps between two of their batches (at close: a sweep of a large fleet need not finish). */
  stopSweeps(): void {
    this.#sweepsStopped = true;
  }

  async #sweepSilence(): Promise<number> {
    const cutoff = Math.floor(this.clock.now() / 1000) - this.#silenceAfterSeconds;
    let total = 0;
    for (;;) {
      // in batches, so that a million devices falling silent at once never block the event loop
      const events = await this.store.markSilent(cutoff, SILENCE_BATCH, new Date(this.clock.now()).toISOString());
      let silent = 0;
      for (const event of events) {
        this.#publish(event);
        if (event.kind === 'silent') silent++; // each may be followed by its alarm's event (SPEC §12)
      }
      total += silent;
      if (silent < SILENCE_BATCH || this.#sweepsStopped) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (total > 0) this.#log.info({ devices: total }, 'devices fell silent');
    await this.sweepAlarms();
    return total;
  }

  /** SPEC §12: timed alarms (cover_open's delay and escalation), checked with the silence sweep. */
  async sweepAlarms(): Promise<number> {
    let total = 0;
    for (;;) {
      const now = this.clock.now();
      const events = await this.store.sweepAlarms(Math.floor(now / 1000), SILENCE_BATCH, new Date(now).toISOString());
      for (const event of events) this.#publish(event);
      total += events.length;
      if (events.length < SILENCE_BATCH || this.#sweepsStopped) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return total;
  }

  /** SPEC §12: acknowledges an alarm (idempotent); undefined when there is no such alarm. */
  async acknowledgeAlarm(alarmId: string, note: string | null): Promise<Alarm | undefined> {
    return this.#operatorChange(await this.store.acknowledgeAlarm(alarmId, note, new Date(this.clock.now()).toISOString()));
  }

  /** SPEC §12: clears an alarm by hand; its cause is ignored until it ends. Undefined when there is no such alarm. */
  async clearAlarm(alarmId: string): Promise<Alarm | undefined> {
    return this.#operatorChange(await this.store.clearAlarm(alarmId, new Date(this.clock.now()).toISOString()));
  }

  #operatorChange(update: AlarmUpdate): Alarm | undefined {
    if (update.kind === 'unknown') return undefined;
    if (update.kind === 'unchanged') return update.alarm;
    this.#publish(update.event);
    return update.event.alarm;
  }
}
