import { randomUUID } from 'node:crypto';
import { alarmEvent, metaEvent, silentEvent, updateEvent, type AlarmEvent, type DeviceEvent, type MetaEvent } from '../events.js';
import { AlarmBook } from '../alarm-book.js';
import {
  acknowledge,
  clearByHand,
  DEFAULT_ALARM_SETTINGS,
  newestFirst,
  onMessage,
  onSilent,
  onTime,
  suppress,
  withActive,
  type Alarm,
  type AlarmSettings,
  type AppliedChange,
} from '../alarms.js';
import { applyWithHistory, compareIds, historyEntry, markSilent, withMeta, type Outcome } from '../rules.js';
import { sameEntry } from '../registry.js';
import {
  alarmMatches,
  deviceMatches,
  entryMatches,
  type AlarmPage,
  type AlarmQuery,
  type AlarmUpdate,
  type BatchItem,
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
  /** SPEC §12 thresholds; the defaults of SPEC §6 when absent; null: no alarms (alarms off). */
  alarms?: AlarmSettings | null;
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
  readonly #alarmSettings: AlarmSettings | null;
  readonly #book = new AlarmBook();
  /** Every alarm kept, active and cleared, by id; and each device's, oldest first (HISTORY_LIMIT cleared ones at most). */
  readonly #alarms = new Map<string, Alarm>();
  readonly #alarmsOf = new Map<string, { ids: string[]; cleared: number }>();
  #unacknowledged = 0;
  /** Devices whose state is open: the ones the alarm sweep looks at. */
  readonly #open = new Set<string>();
  /** The registry's ids in order, sorted when next listed after a change. */
  #registryIds: string[] | null = [];

  constructor(options: MemoryStoreOptions) {
    this.#historyLimit = options.historyLimit;
    this.#webhookUrls = options.webhookUrls ?? [];
    this.#alarmSettings = options.alarms === undefined ? DEFAULT_ALARM_SETTINGS : options.alarms;
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
      return this.#updated(undefined, outcome, receivedAt);
    }
    slot.history ??= [latestEntry(slot.device)];
    const outcome = applyWithHistory(slot.device, slot.history, record, receivedAt, this.#historyLimit);
    if (outcome.kind !== 'update') return outcome;
    const before = slot.device;
    this.#count(before, -1);
    slot.device = outcome.device;
    this.#count(outcome.device, 1);
    return this.#updated(before, outcome, receivedAt);
  }

  #updated(before: Device | undefined, outcome: Extract<Outcome, { kind: 'update' }>, receivedAt: string): StoreOutcome {
    const event = updateEvent(++this.#seq, outcome.device, outcome.previousState, outcome.changed);
    this.#enqueue(event, receivedAt);
    const device = outcome.device;
    const alarms = this.#alarmEvents(device, onMessage(before, device, this.#book.of(device.deviceId), this.#alarmSettings), receivedAt);
    return { kind: 'update', event, alarms };
  }

  /** SPEC §12: applies alarm rule changes to the device's alarms, each transition an event with the next seq. */
  #alarmEvents(device: Device, changes: Parameters<AlarmBook['apply']>[1], at: string): AlarmEvent[] {
    if (changes.length === 0) return [];
    const base = this.#seq;
    // a raised alarm is named after the seq of its event
    const applied = this.#book.apply(device.deviceId, changes, device.meta, at, (i) => `a${base + i + 1}`);
    return applied.map((a) => this.#alarmChanged(device, a, at));
  }

  #alarmChanged(device: Device | null, { transition, alarm }: AppliedChange, at: string): AlarmEvent {
    const before = this.#alarms.get(alarm.alarmId);
    if (before === undefined) {
      this.#unacknowledged++;
      const kept = this.#alarmsOf.get(alarm.deviceId);
      if (kept === undefined) this.#alarmsOf.set(alarm.deviceId, { ids: [alarm.alarmId], cleared: 0 });
      else kept.ids.push(alarm.alarmId);
    } else if (!before.acknowledged && alarm.acknowledged) {
      this.#unacknowledged--;
    }
    this.#alarms.set(alarm.alarmId, alarm);
    if (transition === 'cleared' && ++this.#alarmsOf.get(alarm.deviceId)!.cleared > this.#historyLimit) this.#trim(alarm.deviceId);
    const event = alarmEvent(++this.#seq, device, transition, alarm);
    this.#enqueue(event, at);
    return event;
  }

  /** All or nothing holds trivially: nothing in apply() fails but a bug. */
  async applyBatch(items: readonly BatchItem[]): Promise<StoreOutcome[]> {
    const outcomes: StoreOutcome[] = [];
    for (const item of items) outcomes.push(await this.apply(item.record, item.receivedAt));
    return outcomes;
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
      if (!deviceMatches(device, query, needle)) continue;
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
    let marked = 0;
    for (const slot of this.#slots.values()) {
      if (marked === limit) break;
      if (slot.device.silent || slot.device.timestamp >= cutoff) continue;
      slot.device = markSilent(slot.device);
      this.#silent++;
      marked++;
      const event = silentEvent(++this.#seq, slot.device);
      this.#enqueue(event, markedAt);
      events.push(event);
      const device = slot.device;
      events.push(...this.#alarmEvents(device, onSilent(device, this.#book.of(device.deviceId), this.#alarmSettings), markedAt));
    }
    return events;
  }

  async sweepAlarms(nowSeconds: number, limit: number, at: string): Promise<AlarmEvent[]> {
    const events: AlarmEvent[] = [];
    let changed = 0;
    for (const id of this.#open) {
      if (changed === limit) break;
      const device = this.#slots.get(id)!.device;
      const changes = onTime(device, this.#book.of(id), this.#alarmSettings, nowSeconds);
      if (changes.length === 0) continue;
      changed++;
      events.push(...this.#alarmEvents(device, changes, at));
    }
    return events;
  }

  /** HISTORY_LIMIT cleared alarms per device at most, the oldest go first: an alarm log must not grow without end. */
  #trim(deviceId: string): void {
    const kept = this.#alarmsOf.get(deviceId)!;
    for (let i = 0; kept.cleared > this.#historyLimit && i < kept.ids.length;) {
      const old = this.#alarms.get(kept.ids[i]!)!;
      if (old.status !== 'cleared') {
        i++;
        continue;
      }
      if (!old.acknowledged) this.#unacknowledged--;
      this.#alarms.delete(old.alarmId);
      kept.ids.splice(i, 1);
      kept.cleared--;
    }
  }

  async getAlarm(alarmId: string): Promise<Alarm | undefined> {
    return this.#alarms.get(alarmId);
  }

  async listAlarms(query: AlarmQuery): Promise<AlarmPage> {
    const all = [...this.#alarms.values()].filter((a) => alarmMatches(a, query)).sort(newestFirst);
    const start = query.after === undefined ? 0 : firstAlarmAfter(all, query.after);
    const items = all.slice(start, start + query.limit);
    return { items, total: all.length, last: start + query.limit < all.length ? items[items.length - 1]! : null };
  }

  async acknowledgeAlarm(alarmId: string, note: string | null, at: string): Promise<AlarmUpdate> {
    const alarm = this.#alarms.get(alarmId);
    if (alarm === undefined) return { kind: 'unknown' };
    const acked = acknowledge(alarm, note, at);
    if (acked === null) return { kind: 'unchanged', alarm };
    this.#book.put(alarm.deviceId, withActive(this.#book.of(alarm.deviceId), acked));
    return { kind: 'changed', event: this.#alarmChanged(this.#slots.get(alarm.deviceId)?.device ?? null, { transition: 'acknowledged', alarm: acked }, at) };
  }

  async clearAlarm(alarmId: string, at: string): Promise<AlarmUpdate> {
    const alarm = this.#alarms.get(alarmId);
    if (alarm === undefined) return { kind: 'unknown' };
    const cleared = clearByHand(alarm, at);
    if (cleared === null) return { kind: 'unchanged', alarm };
    this.#book.put(alarm.deviceId, suppress(this.#book.of(alarm.deviceId), alarm.type));
    return { kind: 'changed', event: this.#alarmChanged(this.#slots.get(alarm.deviceId)?.device ?? null, { transition: 'cleared', alarm: cleared }, at) };
  }

  async summary(): Promise<StoreSummary> {
    let neverSeen = 0;
    for (const id of this.#registry.keys()) if (!this.#slots.has(id)) neverSeen++;
    return {
      devices: this.#slots.size,
      byState: Object.fromEntries(this.#byState),
      silent: this.#silent,
      registry: { entries: this.#registry.size, neverSeen },
      alarms: this.#book.summary(this.#unacknowledged),
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

  /** One process owns this store: the sender's in-flight set is the claim. */
  async claimDeliveries(url: string, now: number, limit: number): Promise<Delivery[]> {
    return this.dueDeliveries(url, now, limit);
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
    if (device.state === 'open') {
      if (delta > 0) this.#open.add(device.deviceId);
      else this.#open.delete(device.deviceId);
    }
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
    for (const slot of this.#slots.values()) if (deviceMatches(slot.device, query, needle)) n++;
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

/** The index of the first alarm after `after` in the list order (newestFirst). */
function firstAlarmAfter(sorted: readonly Alarm[], after: { raisedAt: string; alarmId: string }): number {
  const probe = { raisedAt: after.raisedAt, alarmId: after.alarmId } as Alarm;
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (newestFirst(sorted[mid]!, probe) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
