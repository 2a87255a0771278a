import type { Alarm, AlarmType, Severity } from './alarms.js';
import type { AlarmEvent, DeviceEvent, MetaEvent, UpdateEvent } from './events.js';
import type { Outbox } from './outbox.js';
import type { Device, DeviceRecord, HistoryEntry, RegistryEntry } from './types.js';

// The device store: the memory store now, SQLite (DATA_DIR) and Redis (REDIS_URL) next.
// Every implementation runs test/devices/store.contract.ts. Async throughout, since the
// durable ones are; an event leaves the store only once its effect is stored (SPEC §7).

/** An update's event, then the alarm transitions it caused (SPEC §12), each with the next seq. */
export type StoreOutcome = { kind: 'update'; event: UpdateEvent; alarms: AlarmEvent[] } | { kind: 'duplicate' } | { kind: 'late' };

/** One message of a batch: the record and when it arrived (the bridge's clock, ISO 8601). */
export interface BatchItem {
  record: DeviceRecord;
  receivedAt: string;
}

export interface ListQuery {
  state?: string | undefined;
  silent?: boolean | undefined;
  /** SPEC §11: devices whose registry entry has this zone. */
  zone?: string | undefined;
  /** SPEC §11: a case-insensitive substring of the deviceId, the name or the address (see searchText). */
  q?: string | undefined;
  /** Only devices whose id sorts after this one. */
  after?: string | undefined;
  limit: number;
}

export interface DevicePage {
  items: Device[];
  /** Devices matching the filter, on all pages. */
  total: number;
  /** The last deviceId of this page when more follow, else null. */
  lastId: string | null;
}

export interface StoreSummary {
  devices: number;
  byState: Record<string, number>;
  silent: number;
  /** Registry entries (SPEC §11), and those of devices never heard from. */
  registry: { entries: number; neverSeen: number };
  alarms: AlarmSummary;
}

/** SPEC §12 /stats `alarms`. */
export interface AlarmSummary {
  active: number;
  /** Alarms not acknowledged yet, active or cleared. */
  unacknowledged: number;
  /** Active alarms by type, and by severity within it. */
  byType: Record<AlarmType, number>;
  bySeverity: Record<AlarmType, Record<Severity, number>>;
}

export interface AlarmQuery {
  status?: Alarm['status'] | undefined;
  acknowledged?: boolean | undefined;
  type?: AlarmType | undefined;
  severity?: Severity | undefined;
  deviceId?: string | undefined;
  zone?: string | undefined;
  /** Only alarms after this one in the list's order (newest raisedAt first, then alarmId). */
  after?: { raisedAt: string; alarmId: string } | undefined;
  limit: number;
}

export interface AlarmPage {
  items: Alarm[];
  total: number;
  /** The last alarm of this page when more follow, else null. */
  last: Alarm | null;
}

/** An operator's change to an alarm: its event, or `unchanged` (idempotent), or `unknown`. */
export type AlarmUpdate = { kind: 'changed'; event: AlarmEvent } | { kind: 'unchanged'; alarm: Alarm } | { kind: 'unknown' };

export interface RegistryQuery {
  zone?: string | undefined;
  /** true: entries of devices heard from; false: registered and never seen. */
  seen?: boolean | undefined;
  /** Only entries with coordinates (the map, GeoJSON). */
  located?: boolean | undefined;
  after?: string | undefined;
  limit: number;
}

/** An entry with its device, when it has reported. */
export interface RegistryItem {
  entry: RegistryEntry;
  device: Device | null;
}

export interface RegistryPage {
  items: RegistryItem[];
  total: number;
  lastId: string | null;
}

export interface RegistryWrite {
  created: number;
  updated: number;
  unchanged: number;
  /** One per entry set or deleted, in seq order (none for an unchanged entry). */
  events: MetaEvent[];
}

/**
 * SPEC §11 `q`: a case-insensitive substring of the deviceId, the name or the address. One
 * definition for every store (SQLite calls it as a function), so that all find the same devices.
 * `needle` is lower case already.
 */
export function searchMatches(needle: string, deviceId: string, meta: Pick<RegistryEntry, 'name' | 'address'> | null): boolean {
  if (deviceId.toLowerCase().includes(needle)) return true;
  if (meta === null) return false;
  return (meta.name?.toLowerCase().includes(needle) ?? false) || (meta.address?.toLowerCase().includes(needle) ?? false);
}

/** ListQuery's filters on one device (`needle`: q in lower case). */
export function deviceMatches(device: Device, query: ListQuery, needle: string | undefined): boolean {
  return (
    (query.state === undefined || device.state === query.state) &&
    (query.silent === undefined || device.silent === query.silent) &&
    (query.zone === undefined || device.meta?.zone === query.zone) &&
    (needle === undefined || searchMatches(needle, device.deviceId, device.meta))
  );
}

/** RegistryQuery's filters on one entry and its device. */
export function entryMatches(entry: RegistryEntry, device: Device | null, query: RegistryQuery): boolean {
  return (
    (query.zone === undefined || entry.zone === query.zone) &&
    (query.seen === undefined || query.seen === (device !== null)) &&
    (query.located !== true || entry.latitude !== null)
  );
}

/** AlarmQuery's filters on one alarm. */
export function alarmMatches(alarm: Alarm, query: AlarmQuery): boolean {
  return (
    (query.status === undefined || alarm.status === query.status) &&
    (query.acknowledged === undefined || alarm.acknowledged === query.acknowledged) &&
    (query.type === undefined || alarm.type === query.type) &&
    (query.severity === undefined || alarm.severity === query.severity) &&
    (query.deviceId === undefined || alarm.deviceId === query.deviceId) &&
    (query.zone === undefined || alarm.meta?.zone === query.zone)
  );
}

/** Why a store cannot be opened: one line for the operator (SPEC §6, §7, §8), then exit code 1. */
export class StoreOpenError extends Error {
  override name = 'StoreOpenError';
}

/**
 * The store's server cannot be reached now (Redis down): try again (SPEC §8). A write may or may
 * not have been applied (a connection lost after the command went out): its retry finds it a
 * duplicate if it was.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** What a shared event log answers a read: the events after a seq, or that it no longer holds the next one. */
export type LogRead = { kind: 'events'; events: DeviceEvent[] } | { kind: 'gap'; next: number };

/**
 * SPEC §8: the event log of a store that several processes write (Redis). Every process follows
 * it and publishes what it reads, its own writes included, so that every process's clients see
 * every event once, in seq order; a process does not publish what its own writes return.
 */
export interface SharedEventLog {
  /**
   * The events after `seq`, in seq order, at most `limit`, waiting up to `waitMs` for the first;
   * none when the wait ends. `gap` when the event after `seq` is no longer kept (`next`: the
   * oldest kept one). Rejects when the log cannot be read.
   */
  readAfter(seq: number, limit: number, waitMs: number): Promise<LogRead>;
  /** Why the store cannot serve now (its server unreachable), or an empty list. */
  problems(): string[];
}

/**
 * The store also keeps the webhook outbox (webhooks/outbox.ts): apply() and markSilent()
 * enqueue a delivery per webhook URL for each event that becomes a webhook, in the same write.
 */
export interface DeviceStore extends Outbox {
  /** Created once with the store's data and kept with it (webhook ids derive from it, SPEC §5). */
  readonly storeId: string;
  /** SPEC §8: set when other processes write the same store: the service follows this log. */
  readonly sharedLog?: SharedEventLog;
  /** The seq of the newest event this store emitted. */
  lastSeq(): Promise<number>;
  /** Applies SPEC §4 to one message atomically; an update gets the next seq. */
  apply(record: DeviceRecord, receivedAt: string): Promise<StoreOutcome>;
  /**
   * SPEC §7 (issue 17): applies messages in order, all or nothing, in one write (one SQLite
   * transaction): the outcomes in order, as apply() one by one would give them, or a throw and no
   * effect at all. Two messages of one device in a batch behave as one after the other.
   */
  applyBatch(items: readonly BatchItem[]): Promise<StoreOutcome[]>;
  get(deviceId: string): Promise<Device | undefined>;
  list(query: ListQuery): Promise<DevicePage>;
  /** Newest first; undefined for an unknown device. */
  history(deviceId: string, limit: number): Promise<HistoryEntry[] | undefined>;
  /**
   * Marks up to `limit` devices silent whose timestamp is older than `cutoff` (Unix seconds) and
   * that are not silent yet; one event each, followed by its alarm's (SPEC §12). Fewer than
   * `limit` devices: none is left.
   */
  markSilent(cutoff: number, limit: number, markedAt: string): Promise<DeviceEvent[]>;
  /**
   * SPEC §12 timed alarms at `nowSeconds` (source-time timers: cover_open's delay and escalation),
   * for up to `limit` devices; their events. Fewer than `limit` devices changed: none is left due.
   */
  sweepAlarms(nowSeconds: number, limit: number, at: string): Promise<AlarmEvent[]>;
  getAlarm(alarmId: string): Promise<Alarm | undefined>;
  /** Newest raisedAt first (then alarmId, descending). */
  listAlarms(query: AlarmQuery): Promise<AlarmPage>;
  /** Acknowledges (idempotent: the first acknowledgement stays), before or after the clear. */
  acknowledgeAlarm(alarmId: string, note: string | null, at: string): Promise<AlarmUpdate>;
  /** Clears by hand: the cause is then ignored until it ends. */
  clearAlarm(alarmId: string, at: string): Promise<AlarmUpdate>;
  summary(): Promise<StoreSummary>;
  /** The newest events it kept, oldest first (at most `limit`): replay survives a restart. */
  recentEvents(limit: number): Promise<DeviceEvent[]>;
  /**
   * SPEC §11: sets entries (upsert by deviceId), all or nothing, each changed one a meta event
   * with the next seq. keepExisting: entries already registered stay as they are.
   */
  putEntries(entries: readonly RegistryEntry[], options?: { keepExisting?: boolean }): Promise<RegistryWrite>;
  /** Deletes an entry: its meta event, or null when there was none. */
  deleteEntry(deviceId: string): Promise<MetaEvent | null>;
  getEntry(deviceId: string): Promise<RegistryEntry | undefined>;
  /** Entries in deviceId order, with their devices. */
  listEntries(query: RegistryQuery): Promise<RegistryPage>;
  close(): Promise<void>;
}
