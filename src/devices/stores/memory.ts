import { randomUUID } from 'node:crypto';
import { metaEvent, silentEvent, updateEvent, type DeviceEvent, type MetaEvent, type SilentEvent, type UpdateEvent } from '../events.js';
import { applyWithHistory, compareIds, historyEntry, markSilent, withMeta, type Outcome } from '../rules.js';
import { sameEntry } from '../registry.js';
import {
  searchMatches,
  type DevicePage,
  type DeviceStore,
  type ListQuery,
  type RegistryPage,
  type RegistryQuery,
  type RegistryWrite,
  type StoreOutcome,
  type StoreSummary,
} from '../store.js';
import type { Device, DeviceRecord, HistoryEntry, RegistryEntry } from '../types.js';
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
  readonly #registry = new Map<string, RegistryEntry>();
  /** The registry's ids in order, sorted when next listed after a change. */
  #registryIds: string[] | null = [];

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
      const meta = this.#registry.get(record.deviceId) ?? null; // registered before it reported
      const outcome = applyWithHistory(undefined, [], record, receivedAt, this.#historyLimit, meta);
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
    let i = query.after === undefined ? 0 : firstAfter(ids, query.after);
    const items: Device[] = [];
    let more = false;
    const needle = query.q?.toLowerCase();
    for (; i < ids.length; i++) {
      const device = this.#slots.get(ids[i]!)!.device;
      if (!matches(device, query, needle)) continue;
      if (items.length === query.limit) {
        more = true;
        break;
      }
      items.push(device);
    }
    return { items, total: this.#total(query, needle), lastId: more ? items[items.length - 1]!.deviceId : null };
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
    let neverSeen = 0;
    for (const id of this.#registry.keys()) if (!this.#slots.has(id)) neverSeen++;
    return {
      devices: this.#slots.size,
      byState: Object.fromEntries(this.#byState),
      silent: this.#silent,
      registry: { entries: this.#registry.size, neverSeen },
    };
  }

  async putEntries(entries: readonly RegistryEntry[], options: { keepExisting?: boolean } = {}): Promise<RegistryWrite> {
    const result: RegistryWrite = { created: 0, updated: 0, unchanged: 0, events: [] };
    for (const entry of entries) {
      const before = this.#registry.get(entry.deviceId);
      if (before !== undefined && (options.keepExisting === true || sameEntry(before, entry))) {
        result.unchanged++;
        continue;
      }
      if (before === undefined) {
        result.created++;
        this.#registryIds = null;
      } else {
        result.updated++;
      }
      this.#registry.set(entry.deviceId, entry);
      result.events.push(this.#metaChanged(entry.deviceId, entry));
    }
    return result;
  }

  async deleteEntry(deviceId: string): Promise<MetaEvent | null> {
    if (!this.#registry.delete(deviceId)) return null;
    this.#registryIds = null;
    return this.#metaChanged(deviceId, null);
  }

  async getEntry(deviceId: string): Promise<RegistryEntry | undefined> {
    return this.#registry.get(deviceId);
  }

  async listEntries(query: RegistryQuery): Promise<RegistryPage> {
    const ids = (this.#registryIds ??= [...this.#registry.keys()].sort(compareIds));
    const start = query.after === undefined ? 0 : firstAfter(ids, query.after);
    const filtered = query.zone !== undefined || query.seen !== undefined || query.located === true;
    const items: RegistryPage['items'] = [];
    let total = filtered ? 0 : ids.length;
    let more = false;
    for (let i = filtered ? 0 : start; i < ids.length; i++) {
      const entry = this.#registry.get(ids[i]!)!;
      const device = this.#slots.get(entry.deviceId)?.device ?? null;
      if (!entryMatches(entry, device, query)) continue;
      if (filtered) total++;
      if (i < start) continue;
      if (items.length === query.limit) {
        more = true;
        if (!filtered) break;
        continue;
      }
      items.push({ entry, device });
    }
    return { items, total, lastId: more ? items[items.length - 1]!.entry.deviceId : null };
  }

  /** The entry's device takes it (a new object: events already sent keep theirs), and the event. */
  #metaChanged(deviceId: string, entry: RegistryEntry | null): MetaEvent {
    const slot = this.#slots.get(deviceId);
    if (slot !== undefined) slot.device = withMeta(slot.device, entry);
    return metaEvent(++this.#seq, deviceId, slot?.device ?? null, entry);
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

  #enqueue(event: UpdateEvent | SilentEvent, at: string): void {
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

  #total(query: ListQuery, needle: string | undefined): number {
    if (query.zone === undefined && needle === undefined) {
      if (query.state === undefined && query.silent === undefined) return this.#slots.size;
      if (query.silent === undefined) return this.#byState.get(query.state!) ?? 0;
      if (query.state === undefined) return query.silent ? this.#silent : this.#slots.size - this.#silent;
    }
    let n = 0;
    for (const slot of this.#slots.values()) if (matches(slot.device, query, needle)) n++;
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

function matches(device: Device, query: ListQuery, needle: string | undefined): boolean {
  return (
    (query.state === undefined || device.state === query.state) &&
    (query.silent === undefined || device.silent === query.silent) &&
    (query.zone === undefined || device.meta?.zone === query.zone) &&
    (needle === undefined || searchMatches(needle, device.deviceId, device.meta))
  );
}

function entryMatches(entry: RegistryEntry, device: Device | null, query: RegistryQuery): boolean {
  return (
    (query.zone === undefined || entry.zone === query.zone) &&
    (query.seen === undefined || query.seen === (device !== null)) &&
    (query.located !== true || entry.latitude !== null)
  );
}

/** The index of the first id after `after` in sorted `ids`. */
function firstAfter(ids: readonly string[], after: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareIds(ids[mid]!, after) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
