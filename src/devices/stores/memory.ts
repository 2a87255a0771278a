import { randomUUID } from 'node:crypto';
import { silentEvent, updateEvent, type DeviceEvent } from '../events.js';
import { applyWithHistory, compareIds, historyEntry, markSilent, type Outcome } from '../rules.js';
import type { DevicePage, DeviceStore, ListQuery, StoreOutcome, StoreSummary } from '../store.js';
import type { Device, DeviceRecord, HistoryEntry } from '../types.js';
import { webhookBody, webhookType, type Delivery } from '../outbox.js';

interface Slot {
  device: Device;
  /**
   * Newest first; null while the device's only entry is its first update, which the device itself
   * holds: most devices of a fleet report every few days, and a million of them must fit in 1 GiB.
   */
  history: HistoryEntry[] | null;
}

/** The history entry of a device's latest update, as apply() made it. */
function latestEntry(device: Device): HistoryEntry {
  return historyEntry(device, device.receivedAt, 'update');
}

export interface MemoryStoreOptions {
  historyLimit: number;
  /** WEBHOOK_URLS: each stateChanged and silent event is enqueued for each. */
  webhookUrls?: string[];
}

/** Keeps everything in this process (DATA_DIR empty): fast, and gone with the process. */
export class MemoryStore implements DeviceStore {
  readonly storeId = randomUUID().replaceAll('-', '');
  readonly #slots = new Map<string, Slot>();
  readonly #byState = new Map<string, number>();
  readonly #historyLimit: number;
  #seq = 0;
  #silent = 0;
  // Ids in order for pagination: a sorted run plus the ids added since, merged on the next list.
  // Sorting on every new device would make loading a million devices quadratic.
  #sorted: string[] = [];
  #added: string[] = [];
  readonly #webhookUrls: string[];
  readonly #outbox = new Map<number, Delivery>();
  #deliveryId = 0;

  constructor(options: MemoryStoreOptions) {
    this.#historyLimit = options.historyLimit;
    this.#webhookUrls = options.webhookUrls ?? [];
  }

  async lastSeq(): Promise<number> {
    return this.#seq;
  }

  async apply(record: DeviceRecord, receivedAt: string): Promise<StoreOutcome> {
    const slot = this.#slots.get(record.deviceId);
    if (slot === undefined) {
      const outcome = applyWithHistory(undefined, [], record, receivedAt, this.#historyLimit);
      if (outcome.kind !== 'update') return outcome;
      this.#slots.set(record.deviceId, { device: outcome.device, history: null });
      this.#added.push(record.deviceId);
      this.#count(outcome.device, 1);
      return this.#updated(outcome, receivedAt);
    }
    slot.history ??= [latestEntry(slot.device)];
    const outcome = applyWithHistory(slot.device, slot.history, record, receivedAt, this.#historyLimit);
    if (outcome.kind !== 'update') return outcome;
    this.#count(slot.device, -1);
    slot.device = outcome.device;
    this.#count(outcome.device, 1);
    return this.#updated(outcome, receivedAt);
  }

  #updated(outcome: Extract<Outcome, { kind: 'update' }>, receivedAt: string): StoreOutcome {
    const event = updateEvent(++this.#seq, outcome.device, outcome.previousState, outcome.changed);
    this.#enqueue(event, receivedAt);
    return { kind: 'update', event };
  }

  async get(deviceId: string): Promise<Device | undefined> {
    return this.#slots.get(deviceId)?.device;
  }

  async list(query: ListQuery): Promise<DevicePage> {
    const ids = this.#ids();
    let i = 0;
    if (query.after !== undefined) {
      let hi = ids.length;
      while (i < hi) {
        const mid = (i + hi) >>> 1;
        if (compareIds(ids[mid]!, query.after) <= 0) i = mid + 1;
        else hi = mid;
      }
    }
    const items: Device[] = [];
    let more = false;
    for (; i < ids.length; i++) {
      const device = this.#slots.get(ids[i]!)!.device;
      if (!matches(device, query)) continue;
      if (items.length === query.limit) {
        more = true;
        break;
      }
      items.push(device);
    }
    return { items, total: this.#total(query), lastId: more ? items[items.length - 1]!.deviceId : null };
  }

  async history(deviceId: string, limit: number): Promise<HistoryEntry[] | undefined> {
    const slot = this.#slots.get(deviceId);
    if (slot === undefined) return undefined;
    return slot.history === null ? [latestEntry(slot.device)] : slot.history.slice(0, limit);
  }

  async markSilent(cutoff: number, limit: number, markedAt: string): Promise<DeviceEvent[]> {
    const events: DeviceEvent[] = [];
    for (const slot of this.#slots.values()) {
      if (events.length === limit) break;
      if (slot.device.silent || slot.device.timestamp >= cutoff) continue;
      slot.device = markSilent(slot.device);
      this.#silent++;
      const event = silentEvent(++this.#seq, slot.device);
      this.#enqueue(event, markedAt);
      events.push(event);
    }
    return events;
  }

  async summary(): Promise<StoreSummary> {
    return { devices: this.#slots.size, byState: Object.fromEntries(this.#byState), silent: this.#silent };
  }

  async dueDeliveries(url: string, now: number, limit: number): Promise<Delivery[]> {
    const due: Delivery[] = [];
    for (const d of this.#outbox.values()) if (d.url === url && d.nextAttemptAt <= now) due.push(d);
    // in the order they fell due, as the SQLite store (next_attempt_at, then id)
    due.sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || a.id - b.id);
    return due.slice(0, limit).map((d) => ({ ...d }));
  }

  async nextDueAt(url: string): Promise<number | null> {
    let next: number | null = null;
    for (const d of this.#outbox.values()) if (d.url === url && (next === null || d.nextAttemptAt < next)) next = d.nextAttemptAt;
    return next;
  }

  async deliveryDone(id: number): Promise<void> {
    this.#outbox.delete(id);
  }

  async deliveryRetry(id: number, attempts: number, nextAttemptAt: number): Promise<void> {
    const d = this.#outbox.get(id);
    if (d) Object.assign(d, { attempts, nextAttemptAt });
  }

  async pendingDeliveries(): Promise<number> {
    return this.#outbox.size;
  }

  async recentEvents(): Promise<DeviceEvent[]> {
    return []; // nothing survives this store
  }

  async close(): Promise<void> {}

  #enqueue(event: DeviceEvent, at: string): void {
    if (this.#webhookUrls.length === 0) return;
    const type = webhookType(event);
    if (type === null) return;
    const body = webhookBody(event, type, at);
    for (const url of this.#webhookUrls) {
      const id = ++this.#deliveryId;
      this.#outbox.set(id, { id, url, seq: event.seq, body, attempts: 0, nextAttemptAt: 0 });
    }
  }

  #count(device: Device, delta: 1 | -1): void {
    const n = (this.#byState.get(device.state) ?? 0) + delta;
    if (n === 0) this.#byState.delete(device.state);
    else this.#byState.set(device.state, n);
    if (device.silent) this.#silent += delta;
  }

  #total(query: ListQuery): number {
    if (query.state === undefined && query.silent === undefined) return this.#slots.size;
    if (query.silent === undefined) return this.#byState.get(query.state!) ?? 0;
    if (query.state === undefined) return query.silent ? this.#silent : this.#slots.size - this.#silent;
    let n = 0;
    for (const slot of this.#slots.values()) if (matches(slot.device, query)) n++;
    return n;
  }

  #ids(): string[] {
    if (this.#added.length > 0) {
      this.#sorted = mergeSorted(this.#sorted, this.#added.sort(compareIds));
      this.#added = [];
    }
    return this.#sorted;
  }
}

function matches(device: Device, query: ListQuery): boolean {
  return (
    (query.state === undefined || device.state === query.state) &&
    (query.silent === undefined || device.silent === query.silent)
  );
}

function mergeSorted(a: string[], b: string[]): string[] {
  if (a.length === 0) return b;
  const out = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = compareIds(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}
