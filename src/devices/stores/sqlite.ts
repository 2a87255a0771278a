import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database, { type Database as Db, type Statement } from 'better-sqlite3';
import { alarmEvent, metaEvent, silentEvent, updateEvent, type AlarmEvent, type DeviceEvent, type MetaEvent } from '../events.js';
import {
  acknowledge,
  clearByHand,
  DEFAULT_ALARM_SETTINGS,
  onMessage,
  onSilent,
  onTime,
  suppress,
  withActive,
  type Alarm,
  type AlarmChange,
  type AlarmSettings,
  type AppliedChange,
  type AlarmTransition,
} from '../alarms.js';
import { SqliteAlarms } from './sqlite-alarms.js';
import { apply, markSilent, withMeta } from '../rules.js';
import { sameEntry } from '../registry.js';
import {
  searchMatches,
  StoreOpenError,
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
import { deviceJson } from '../wire.js';
import { eventFromStored, storedAlarm, storedMeta } from '../stored-events.js';
import { webhookBody, webhookType, type Delivery } from '../outbox.js';

// SPEC §7: the durable store in DATA_DIR. Each message's effects (device, history, event, seq)
// are written in one small transaction before apply() returns, so that ingest acknowledges the
// message (PUBACK) only once it is durable. better-sqlite3 is synchronous: the transaction is
// done when the call returns, and nothing else runs on that path.

export interface SqliteStoreOptions {
  dir: string;
  historyLimit: number;
  /** Events kept for Last-Event-ID replay across a restart (EVENT_BUFFER). */
  eventBuffer: number;
  /** NORMAL keeps every commit across kill -9; FULL across power loss too, one fsync per commit (a batch of messages). */
  synchronous: 'normal' | 'full';
  /** WEBHOOK_URLS: each stateChanged and silent event is enqueued for each, in its transaction. */
  webhookUrls?: string[];
  /** SPEC §12 thresholds; the defaults of SPEC §6 when absent; null: no alarms (alarms off). */
  alarms?: AlarmSettings | null;
}

// Why DATA_DIR cannot be used: store.ts's StoreOpenError, here too for those who open this store
export { StoreOpenError };

export const DATABASE_FILE = 'wiihey-bridge.db';

// user_version is the schema version; each step migrates from the version before it
export const MIGRATIONS: string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE devices (
     device_id TEXT PRIMARY KEY,
     state TEXT NOT NULL,
     silent INTEGER NOT NULL,
     timestamp INTEGER NOT NULL,
     history_count INTEGER NOT NULL,
     json TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX devices_by_state ON devices (state, device_id);
   CREATE INDEX devices_by_silence ON devices (silent, timestamp);
   CREATE TABLE history (
     id INTEGER PRIMARY KEY,
     device_id TEXT NOT NULL,
     timestamp INTEGER NOT NULL,
     state TEXT NOT NULL,
     battery_level INTEGER,
     csq INTEGER,
     received_at TEXT NOT NULL,
     kind TEXT NOT NULL
   );
   CREATE INDEX history_by_device ON history (device_id, timestamp DESC, id DESC);
   CREATE TABLE events (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL, previous_state TEXT, changed INTEGER NOT NULL, device TEXT NOT NULL);`,
  // 2: the webhook outbox (SPEC §5, §7)
  `CREATE TABLE outbox (
     id INTEGER PRIMARY KEY,
     url TEXT NOT NULL,
     seq INTEGER NOT NULL,
     body TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX outbox_due ON outbox (url, next_attempt_at, id);`,
  // 3: the registry (SPEC §11); devices carry their entry as meta, and their zone for the filter
  `CREATE TABLE registry (
     device_id TEXT PRIMARY KEY,
     zone TEXT,
     located INTEGER NOT NULL,
     name TEXT,
     address TEXT,
     json TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX registry_by_zone ON registry (zone, device_id);
   ALTER TABLE devices ADD COLUMN zone TEXT;
   CREATE INDEX devices_by_zone ON devices (zone, device_id);
   UPDATE devices SET json = json_insert(json, '$.meta', NULL);
   UPDATE events SET device = json_insert(device, '$.meta', NULL);`,
  // 4: alarms (SPEC §12); n is the number of the alarm's id, the list's tie-break
  `CREATE TABLE alarms (
     alarm_id TEXT PRIMARY KEY,
     n INTEGER NOT NULL,
     device_id TEXT NOT NULL,
     type TEXT NOT NULL,
     severity TEXT NOT NULL,
     status TEXT NOT NULL,
     acknowledged INTEGER NOT NULL,
     raised_at TEXT NOT NULL,
     zone TEXT,
     json TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX alarms_newest ON alarms (raised_at DESC, n DESC);
   CREATE INDEX alarms_by_status ON alarms (status, raised_at DESC, n DESC);
   CREATE INDEX alarms_by_device ON alarms (device_id, raised_at DESC, n DESC);
   CREATE INDEX alarms_unacknowledged ON alarms (acknowledged);
   CREATE TABLE alarm_suppressed (device_id TEXT NOT NULL, type TEXT NOT NULL, PRIMARY KEY (device_id, type)) WITHOUT ROWID;`,
  // 5: the cleared alarms of a device, for the trim after each clear (sqlite-alarms.ts), which
  // read every alarm row of the device for its status: about 12 µs less a clear
  "CREATE INDEX alarms_cleared_by_device ON alarms (device_id, raised_at DESC, n DESC) WHERE status = 'cleared';",
];

interface DeviceRow {
  json: string;
  history_count: number;
}

interface EventRow {
  seq: number;
  kind: 'update' | 'silent' | 'meta' | 'alarm';
  previous_state: string | null;
  changed: number;
  device: string;
}

export class SqliteStore implements DeviceStore {
  readonly storeId: string;
  readonly #db: Db;
  readonly #historyLimit: number;
  readonly #eventBuffer: number;
  readonly #webhookUrls: string[];
  readonly #byState = new Map<string, number>();
  #devices = 0;
  #silent = 0;
  #seq = 0;
  readonly #q: Record<
    | 'getDevice'
    | 'insertDevice'
    | 'changeDevice'
    | 'heartbeatDevice'
    | 'lateDuplicate'
    | 'insertHistory'
    | 'trimOldest'
    | 'trimHistory'
    | 'setHistoryCount'
    | 'putEvent'
    | 'setSeq'
    | 'history'
    | 'dueSilent'
    | 'markSilent'
    | 'enqueue'
    | 'due'
    | 'nextDue'
    | 'done'
    | 'retry'
    | 'getEntry'
    | 'putEntry'
    | 'deleteEntry'
    | 'setDeviceMeta'
    | 'openDevices',
    Statement
  >;

  readonly #applyTx: (record: DeviceRecord, receivedAt: string) => StoreOutcome;
  readonly #applyBatchTx: (items: readonly BatchItem[]) => StoreOutcome[];
  readonly #silenceTx: (cutoff: number, limit: number, markedAt: string) => DeviceEvent[];

  constructor(options: SqliteStoreOptions) {
    this.#historyLimit = options.historyLimit;
    this.#eventBuffer = options.eventBuffer;
    this.#db = openDatabase(options);
    const db = this.#db;
    this.storeId = meta(db, 'store_id') ?? setMeta(db, 'store_id', randomUUID().replaceAll('-', ''));
    reslotEvents(db, options.eventBuffer);
    this.#q = {
      getDevice: db.prepare('SELECT json, history_count FROM devices WHERE device_id = ?'),
      // apply() knows whether the row exists, and an update sets only the columns a message moves:
      // SQLite rewrites an index only when a column of it is SET (the zone never moves here, the
      // state only on a change). About 1 µs (cpu) a message less than one upsert
      insertDevice: db.prepare('INSERT INTO devices (device_id, state, silent, timestamp, history_count, json, zone) VALUES (?, ?, 0, ?, ?, ?, ?)'),
      changeDevice: db.prepare('UPDATE devices SET state = ?, silent = 0, timestamp = ?, history_count = ?, json = ? WHERE device_id = ?'),
      heartbeatDevice: db.prepare('UPDATE devices SET silent = 0, timestamp = ?, history_count = ?, json = ? WHERE device_id = ?'),
      lateDuplicate: db.prepare('SELECT 1 FROM history WHERE device_id = ? AND timestamp = ? AND state = ? LIMIT 1'),
      insertHistory: db.prepare(
        'INSERT INTO history (device_id, timestamp, state, battery_level, csq, received_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      // keep the newest historyLimit entries of the device (newest: by timestamp, then arrival)
      trimOldest: db.prepare('DELETE FROM history WHERE id = (SELECT id FROM history WHERE device_id = ? ORDER BY timestamp, id LIMIT 1)'),
      trimHistory: db.prepare(
        'DELETE FROM history WHERE id IN (SELECT id FROM history WHERE device_id = ? ORDER BY timestamp DESC, id DESC LIMIT -1 OFFSET ?)',
      ),
      setHistoryCount: db.prepare('UPDATE devices SET history_count = ? WHERE device_id = ?'),
      // a ring of EVENT_BUFFER slots: one write per event, no separate trim
      putEvent: db.prepare('INSERT OR REPLACE INTO events (slot, seq, kind, previous_state, changed, device) VALUES (?, ?, ?, ?, ?, ?)'),
      setSeq: db.prepare("INSERT INTO meta (key, value) VALUES ('last_seq', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
      history: db.prepare(
        'SELECT timestamp, state, battery_level, csq, received_at, kind FROM history WHERE device_id = ? ORDER BY timestamp DESC, id DESC LIMIT ?',
      ),
      dueSilent: db.prepare('SELECT json FROM devices WHERE silent = 0 AND timestamp < ? LIMIT ?'),
      markSilent: db.prepare('UPDATE devices SET silent = 1, json = ? WHERE device_id = ?'),
      enqueue: db.prepare('INSERT INTO outbox (url, seq, body) VALUES (?, ?, ?)'),
      due: db.prepare('SELECT id, url, seq, body, attempts, next_attempt_at FROM outbox WHERE url = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?'),
      nextDue: db.prepare('SELECT min(next_attempt_at) AS at FROM outbox WHERE url = ?'),
      done: db.prepare('DELETE FROM outbox WHERE id = ?'),
      retry: db.prepare('UPDATE outbox SET attempts = ?, next_attempt_at = ? WHERE id = ?'),
      getEntry: db.prepare('SELECT json FROM registry WHERE device_id = ?'),
      putEntry: db.prepare(
        'INSERT INTO registry (device_id, zone, located, name, address, json) VALUES (?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (device_id) DO UPDATE SET zone = excluded.zone, located = excluded.located, name = excluded.name, ' +
          'address = excluded.address, json = excluded.json',
      ),
      deleteEntry: db.prepare('DELETE FROM registry WHERE device_id = ?'),
      setDeviceMeta: db.prepare('UPDATE devices SET zone = ?, json = ? WHERE device_id = ?'),
      openDevices: db.prepare("SELECT json FROM devices WHERE state = 'open'"),
    };
    this.#webhookUrls = options.webhookUrls ?? [];
    this.#alarmSettings = options.alarms === undefined ? DEFAULT_ALARM_SETTINGS : options.alarms;
    this.#alarms = new SqliteAlarms(db, options.historyLimit);
    this.#recount();
    this.#applyTx = db.transaction((record: DeviceRecord, receivedAt: string) => this.#apply(record, receivedAt));
    // one transaction for the batch: each message reads what the ones before it wrote
    this.#applyBatchTx = db.transaction((items: readonly BatchItem[]) => {
      const outcomes: StoreOutcome[] = [];
      for (const item of items) outcomes.push(this.#apply(item.record, item.receivedAt));
      return outcomes;
    });
    this.#silenceTx = db.transaction((cutoff: number, limit: number, markedAt: string) => this.#markSilent(cutoff, limit, markedAt));
    this.#putEntriesTx = db.transaction((entries: readonly RegistryEntry[], keepExisting: boolean) => this.#putEntries(entries, keepExisting));
    this.#deleteEntryTx = db.transaction((deviceId: string) => this.#deleteEntry(deviceId));
    this.#sweepTx = db.transaction((nowSeconds: number, limit: number, at: string) => this.#sweep(nowSeconds, limit, at));
    this.#alarmTx = db.transaction((alarmId: string, at: string, change: (alarm: Alarm) => Alarm | null, transition: AlarmTransition) =>
      this.#operatorChange(alarmId, at, change, transition),
    );
    // SPEC §11 q: the one definition of the search (store.ts), so that every store finds the same devices
    db.function('brg_search', { deterministic: true }, (needle, id, name, address) =>
      searchMatches(needle as string, id as string, { name: name as string | null, address: address as string | null }) ? 1 : 0,
    );
  }

  readonly #putEntriesTx: (entries: readonly RegistryEntry[], keepExisting: boolean) => RegistryWrite;
  readonly #alarms: SqliteAlarms;
  readonly #alarmSettings: AlarmSettings | null;
  readonly #sweepTx: (nowSeconds: number, limit: number, at: string) => AlarmEvent[];
  readonly #alarmTx: (alarmId: string, at: string, change: (alarm: Alarm) => Alarm | null, transition: AlarmTransition) => AlarmUpdate;
  readonly #deleteEntryTx: (deviceId: string) => MetaEvent | null;

  async lastSeq(): Promise<number> {
    return this.#seq;
  }

  async apply(record: DeviceRecord, receivedAt: string): Promise<StoreOutcome> {
    try {
      return this.#applyTx(record, receivedAt);
    } catch (err) {
      this.#recount(); // the transaction rolled back: so do the counters kept beside it
      throw err;
    }
  }

  async applyBatch(items: readonly BatchItem[]): Promise<StoreOutcome[]> {
    return this.#write(() => this.#applyBatchTx(items));
  }

  async get(deviceId: string): Promise<Device | undefined> {
    return this.#device(deviceId);
  }

  async list(query: ListQuery): Promise<DevicePage> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.state !== undefined) {
      where.push('state = ?');
      params.push(query.state);
    }
    if (query.silent !== undefined) {
      where.push('silent = ?');
      params.push(query.silent ? 1 : 0);
    }
    if (query.zone !== undefined) {
      where.push('zone = ?');
      params.push(query.zone);
    }
    if (query.q !== undefined) {
      where.push('brg_search(?, devices.device_id, registry.name, registry.address)');
      params.push(query.q.toLowerCase());
    }
    const from = query.q === undefined ? 'devices' : 'devices LEFT JOIN registry ON registry.device_id = devices.device_id';
    const filter = `${from} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}`;
    const page = query.after === undefined ? filter : `${filter}${where.length > 0 ? ' AND' : 'WHERE'} devices.device_id > ?`;
    // BINARY collation compares UTF-8 bytes: the code point order of rules.compareIds
    const rows = this.#db
      .prepare(`SELECT devices.json FROM ${page} ORDER BY devices.device_id LIMIT ?`)
      .all(...params, ...(query.after === undefined ? [] : [query.after]), query.limit + 1) as DeviceRow[];
    const more = rows.length > query.limit;
    const items = (more ? rows.slice(0, query.limit) : rows).map((r) => JSON.parse(r.json) as Device);
    return { items, total: this.#total(query, filter, params), lastId: more ? items[items.length - 1]!.deviceId : null };
  }

  async history(deviceId: string, limit: number): Promise<HistoryEntry[] | undefined> {
    if (this.#q.getDevice.get(deviceId) === undefined) return undefined;
    return (
      this.#q.history.all(deviceId, limit) as {
        timestamp: number;
        state: string;
        battery_level: number | null;
        csq: number | null;
        received_at: string;
        kind: HistoryEntry['kind'];
      }[]
    ).map((r) => ({
      timestamp: r.timestamp,
      state: r.state,
      batteryLevel: r.battery_level,
      csq: r.csq,
      receivedAt: r.received_at,
      kind: r.kind,
    }));
  }

  async markSilent(cutoff: number, limit: number, markedAt: string): Promise<DeviceEvent[]> {
    try {
      return this.#silenceTx(cutoff, limit, markedAt);
    } catch (err) {
      this.#recount();
      throw err;
    }
  }

  async summary(): Promise<StoreSummary> {
    const registry = this.#db
      .prepare(
        'SELECT count(*) AS entries, coalesce(sum(NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = r.device_id)), 0) AS neverSeen FROM registry r',
      )
      .get() as { entries: number; neverSeen: number };
    return {
      devices: this.#devices,
      byState: Object.fromEntries(this.#byState),
      silent: this.#silent,
      registry,
      alarms: this.#alarms.book.summary(this.#alarms.unacknowledged()),
    };
  }

  async sweepAlarms(nowSeconds: number, limit: number, at: string): Promise<AlarmEvent[]> {
    return this.#write(() => this.#sweepTx(nowSeconds, limit, at));
  }

  async getAlarm(alarmId: string): Promise<Alarm | undefined> {
    return this.#alarms.get(alarmId);
  }

  async listAlarms(query: AlarmQuery): Promise<AlarmPage> {
    return this.#alarms.list(query);
  }

  async acknowledgeAlarm(alarmId: string, note: string | null, at: string): Promise<AlarmUpdate> {
    return this.#write(() => this.#alarmTx(alarmId, at, (alarm) => acknowledge(alarm, note, at), 'acknowledged'));
  }

  async clearAlarm(alarmId: string, at: string): Promise<AlarmUpdate> {
    return this.#write(() => this.#alarmTx(alarmId, at, (alarm) => clearByHand(alarm, at), 'cleared'));
  }

  /** Runs a write transaction; after a rollback, what is kept beside the database is read again. */
  #write<T>(tx: () => T): T {
    try {
      return tx();
    } catch (err) {
      this.#recount();
      throw err;
    }
  }

  /** Runs inside the transaction of sweepAlarms(). */
  #sweep(nowSeconds: number, limit: number, at: string): AlarmEvent[] {
    const events: AlarmEvent[] = [];
    let changed = 0;
    // all() first: better-sqlite3 writes nothing while a statement iterates (and open covers are few)
    for (const row of this.#q.openDevices.all() as { json: string }[]) {
      if (changed === limit) break;
      const device = JSON.parse(row.json) as Device;
      const changes = onTime(device, this.#alarms.book.of(device.deviceId), this.#alarmSettings, nowSeconds);
      if (changes.length === 0) continue;
      changed++;
      events.push(...this.#alarmEvents(device, row.json, changes, at));
    }
    return events;
  }

  /** Runs inside the transaction of acknowledgeAlarm() and clearAlarm(). */
  #operatorChange(alarmId: string, at: string, change: (alarm: Alarm) => Alarm | null, transition: AlarmTransition): AlarmUpdate {
    const alarm = this.#alarms.get(alarmId);
    if (alarm === undefined) return { kind: 'unknown' };
    const changed = change(alarm);
    if (changed === null) return { kind: 'unchanged', alarm };
    const book = this.#alarms.book.of(alarm.deviceId);
    // a clear by hand suppresses the cause until it ends; an acknowledgement changes the alarm only
    this.#alarms.put(alarm.deviceId, transition === 'cleared' ? suppress(book, alarm.type) : withActive(book, changed));
    const json = this.#alarms.write(changed);
    const row = this.#q.getDevice.get(alarm.deviceId) as DeviceRow | undefined;
    const device = row === undefined ? null : (JSON.parse(row.json) as Device);
    return { kind: 'changed', event: this.#alarmChanged(device, row?.json ?? 'null', { transition, alarm: changed }, json, at) };
  }

  /**
   * SPEC §12: alarm rule changes of a device, written, each transition an event with the next seq; in the caller's transaction.
   * `json`: the device's JSON as its row holds it, serialized once for the row and every event.
   */
  #alarmEvents(device: Device, json: string, changes: readonly AlarmChange[], at: string): AlarmEvent[] {
    if (changes.length === 0) return [];
    const base = this.#seq;
    const alarmJson: string[] = [];
    // a raised alarm is named after the seq of its event
    const applied = this.#alarms.apply(device, changes, at, (i) => `a${base + i + 1}`, alarmJson);
    return applied.map((a, i) => this.#alarmChanged(device, json, a, alarmJson[i]!, at));
  }

  #alarmChanged(device: Device | null, json: string, { transition, alarm }: AppliedChange, alarmJson: string, at: string): AlarmEvent {
    const event = alarmEvent(this.#seq + 1, device, transition, alarm);
    this.#recordEvent(event, storedAlarm(transition, alarmJson, json), at);
    return event;
  }

  async putEntries(entries: readonly RegistryEntry[], options: { keepExisting?: boolean } = {}): Promise<RegistryWrite> {
    try {
      return this.#putEntriesTx(entries, options.keepExisting === true);
    } catch (err) {
      this.#recount();
      throw err;
    }
  }

  async deleteEntry(deviceId: string): Promise<MetaEvent | null> {
    try {
      return this.#deleteEntryTx(deviceId);
    } catch (err) {
      this.#recount();
      throw err;
    }
  }

  async getEntry(deviceId: string): Promise<RegistryEntry | undefined> {
    return this.#entry(deviceId) ?? undefined;
  }

  async listEntries(query: RegistryQuery): Promise<RegistryPage> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.zone !== undefined) {
      where.push('r.zone = ?');
      params.push(query.zone);
    }
    if (query.seen !== undefined) where.push(query.seen ? 'd.device_id IS NOT NULL' : 'd.device_id IS NULL');
    if (query.located === true) where.push('r.located = 1');
    const from = 'registry r LEFT JOIN devices d ON d.device_id = r.device_id';
    const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const page = query.after === undefined ? filter : `${filter}${filter ? ' AND' : 'WHERE'} r.device_id > ?`;
    const rows = this.#db
      .prepare(`SELECT r.json AS entry, d.json AS device FROM ${from} ${page} ORDER BY r.device_id LIMIT ?`)
      .all(...params, ...(query.after === undefined ? [] : [query.after]), query.limit + 1) as { entry: string; device: string | null }[];
    const more = rows.length > query.limit;
    const items = (more ? rows.slice(0, query.limit) : rows).map((r) => ({
      entry: JSON.parse(r.entry) as RegistryEntry,
      device: r.device === null ? null : (JSON.parse(r.device) as Device),
    }));
    const total = (this.#db.prepare(`SELECT count(*) AS n FROM ${from} ${filter}`).get(...params) as { n: number }).n;
    return { items, total, lastId: more ? items[items.length - 1]!.entry.deviceId : null };
  }

  async dueDeliveries(url: string, now: number, limit: number): Promise<Delivery[]> {
    return (this.#q.due.all(url, now, limit) as { id: number; url: string; seq: number; body: string; attempts: number; next_attempt_at: number }[]).map(
      (r) => ({ id: r.id, url: r.url, seq: r.seq, body: r.body, attempts: r.attempts, nextAttemptAt: r.next_attempt_at }),
    );
  }

  /** One process owns this store: the sender's in-flight set is the claim. */
  async claimDeliveries(url: string, now: number, limit: number): Promise<Delivery[]> {
    return this.dueDeliveries(url, now, limit);
  }

  async nextDueAt(url: string): Promise<number | null> {
    return (this.#q.nextDue.get(url) as { at: number | null }).at;
  }

  async deliveryDone(id: number): Promise<void> {
    this.#q.done.run(id);
  }

  async deliveryRetry(id: number, attempts: number, nextAttemptAt: number): Promise<void> {
    this.#q.retry.run(attempts, nextAttemptAt, id);
  }

  async pendingDeliveries(): Promise<number> {
    return (this.#db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
  }

  async recentEvents(limit: number): Promise<DeviceEvent[]> {
    const rows = this.#db.prepare('SELECT * FROM (SELECT * FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq').all(limit) as EventRow[];
    return rows.map((r) => eventFromStored(r.seq, r.kind, r.previous_state, r.changed === 1, r.device));
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  #device(deviceId: string): Device | undefined {
    const row = this.#q.getDevice.get(deviceId) as DeviceRow | undefined;
    return row === undefined ? undefined : (JSON.parse(row.json) as Device);
  }

  #entry(deviceId: string): RegistryEntry | null {
    const row = this.#q.getEntry.get(deviceId) as { json: string } | undefined;
    return row === undefined ? null : (JSON.parse(row.json) as RegistryEntry);
  }

  /** Runs inside the transaction of putEntries(). */
  #putEntries(entries: readonly RegistryEntry[], keepExisting: boolean): RegistryWrite {
    const result: RegistryWrite = { created: 0, updated: 0, unchanged: 0, events: [] };
    for (const entry of entries) {
      const before = this.#entry(entry.deviceId);
      if (before !== null && (keepExisting || sameEntry(before, entry))) {
        result.unchanged++;
        continue;
      }
      if (before === null) result.created++;
      else result.updated++;
      const e = entry;
      this.#q.putEntry.run(e.deviceId, e.zone, e.latitude === null ? 0 : 1, e.name, e.address, JSON.stringify(e));
      result.events.push(this.#metaChanged(entry.deviceId, entry));
    }
    return result;
  }

  /** Runs inside the transaction of deleteEntry(). */
  #deleteEntry(deviceId: string): MetaEvent | null {
    if (this.#q.deleteEntry.run(deviceId).changes === 0) return null;
    return this.#metaChanged(deviceId, null);
  }

  /** The device (when it reported) takes the entry, and the meta event is recorded; in the caller's transaction. */
  #metaChanged(deviceId: string, entry: RegistryEntry | null): MetaEvent {
    const current = this.#device(deviceId);
    let device: Device | null = null;
    let json = 'null';
    if (current !== undefined) {
      device = withMeta(current, entry);
      json = deviceJson(device);
      this.#q.setDeviceMeta.run(entry?.zone ?? null, json, deviceId);
    }
    const event = metaEvent(this.#seq + 1, deviceId, device, entry);
    event.wire.device = json;
    this.#recordEvent(event, storedMeta(deviceId, json, entry), '');
    return event;
  }

  /** Runs inside the transaction of apply(). Writes: the history entry, the device, the event. */
  #apply(record: DeviceRecord, receivedAt: string): StoreOutcome {
    const row = this.#q.getDevice.get(record.deviceId) as DeviceRow | undefined;
    const current = row === undefined ? undefined : (JSON.parse(row.json) as Device);
    // SPEC §11: a device registered before it reported takes its entry with its first message
    const outcome = apply(current, record, receivedAt, current === undefined ? this.#entry(record.deviceId) : null);
    if (outcome.kind === 'duplicate') return outcome;
    const e = outcome.entry;
    if (outcome.kind === 'late') {
      // a late message already in the history is a QoS 1 redelivery (rules.applyWithHistory)
      if (this.#q.lateDuplicate.get(record.deviceId, e.timestamp, e.state) !== undefined) return { kind: 'duplicate' };
    }
    this.#q.insertHistory.run(record.deviceId, e.timestamp, e.state, e.batteryLevel, e.csq, e.receivedAt, e.kind);
    let count = (row?.history_count ?? 0) + 1;
    if (count > this.#historyLimit) {
      // one over: drop the oldest (a late entry older than all may be it); more (HISTORY_LIMIT lowered): trim
      if (count === this.#historyLimit + 1) this.#q.trimOldest.run(record.deviceId);
      else this.#q.trimHistory.run(record.deviceId, this.#historyLimit);
      count = this.#historyLimit;
    }
    if (outcome.kind === 'late') {
      if (count !== row!.history_count) this.#q.setHistoryCount.run(count, record.deviceId);
      return outcome;
    }

    const device = outcome.device;
    const json = deviceJson(device);
    if (current === undefined) this.#q.insertDevice.run(device.deviceId, device.state, device.timestamp, count, json, device.meta?.zone ?? null);
    else if (outcome.changed) this.#q.changeDevice.run(device.state, device.timestamp, count, json, device.deviceId);
    else this.#q.heartbeatDevice.run(device.timestamp, count, json, device.deviceId);
    const event = updateEvent(this.#seq + 1, device, outcome.previousState, outcome.changed);
    event.wire.device = json; // serialized once, for the live APIs too
    this.#recordEvent(event, json, receivedAt);
    if (current === undefined) this.#devices++;
    else this.#count(current, -1);
    this.#count(device, 1);
    const alarms = this.#alarmEvents(device, json, onMessage(current, device, this.#alarms.book.of(device.deviceId), this.#alarmSettings), receivedAt);
    return { kind: 'update', event, alarms };
  }

  /** Runs inside the transaction of markSilent(). */
  #markSilent(cutoff: number, limit: number, markedAt: string): DeviceEvent[] {
    const events: DeviceEvent[] = [];
    for (const row of this.#q.dueSilent.all(cutoff, limit) as DeviceRow[]) {
      const device = markSilent(JSON.parse(row.json) as Device);
      const json = deviceJson(device);
      this.#q.markSilent.run(json, device.deviceId);
      const event = silentEvent(this.#seq + 1, device);
      event.wire.device = json;
      this.#recordEvent(event, json, markedAt);
      this.#silent++;
      events.push(event);
      events.push(...this.#alarmEvents(device, json, onSilent(device, this.#alarms.book.of(device.deviceId), this.#alarmSettings), markedAt));
    }
    return events;
  }

  /** The event, its seq and its webhook deliveries, in the caller's transaction. `stored`: what the events table keeps of it. */
  #recordEvent(event: DeviceEvent, stored: string, at: string): void {
    this.#seq = event.seq;
    const type = this.#webhookUrls.length > 0 ? webhookType(event) : null;
    if (type !== null) {
      const body = webhookBody(event, type, at);
      for (const url of this.#webhookUrls) this.#q.enqueue.run(url, event.seq, body);
    }
    if (this.#eventBuffer > 0) {
      // the seq is the newest event's: no meta write per message (recount() reads it back)
      const update = event.kind === 'update';
      this.#q.putEvent.run(event.seq % this.#eventBuffer, event.seq, event.kind, update ? event.previousState : null, update && event.changed ? 1 : 0, stored);
    } else {
      this.#q.setSeq.run(String(event.seq));
    }
  }

  /** The counters and the seq kept in memory beside the database, read from it. */
  #recount(): void {
    if (!this.#db.open) return;
    this.#alarms?.load();
    const newest = (this.#db.prepare('SELECT max(seq) AS seq FROM events').get() as { seq: number | null }).seq ?? 0;
    this.#seq = Math.max(newest, Number(meta(this.#db, 'last_seq') ?? 0));
    this.#byState.clear();
    this.#devices = 0;
    this.#silent = 0;
    const rows = this.#db.prepare('SELECT state, silent, count(*) AS n FROM devices GROUP BY state, silent').all() as {
      state: string;
      silent: number;
      n: number;
    }[];
    for (const row of rows) {
      this.#byState.set(row.state, (this.#byState.get(row.state) ?? 0) + row.n);
      this.#devices += row.n;
      if (row.silent) this.#silent += row.n;
    }
  }

  #count(device: Device, delta: 1 | -1): void {
    const n = (this.#byState.get(device.state) ?? 0) + delta;
    if (n === 0) this.#byState.delete(device.state);
    else this.#byState.set(device.state, n);
    if (device.silent) this.#silent += delta;
  }

  #total(query: ListQuery, filter: string, params: unknown[]): number {
    if (query.zone === undefined && query.q === undefined) {
      if (query.state === undefined && query.silent === undefined) return this.#devices;
      if (query.silent === undefined) return this.#byState.get(query.state!) ?? 0;
      if (query.state === undefined) return query.silent ? this.#silent : this.#devices - this.#silent;
    }
    return (this.#db.prepare(`SELECT count(*) AS n FROM ${filter}`).get(...params) as { n: number }).n;
  }
}

function openDatabase(options: SqliteStoreOptions): Db {
  const where = `DATA_DIR ${options.dir}`;
  try {
    mkdirSync(options.dir, { recursive: true });
  } catch (err) {
    throw new StoreOpenError(`${where} cannot be created (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let db: Db;
  try {
    db = new Database(join(options.dir, DATABASE_FILE));
  } catch (err) {
    throw new StoreOpenError(`${where} cannot be opened: ${(err as Error).message}`);
  }
  try {
    // EXCLUSIVE: this process holds the database until it closes, so a second one on the same
    // DATA_DIR is refused at start and two processes never hand out seqs from one database
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    // a checkpoint every 10,000 WAL pages (40 MiB), not 1,000: it copies each hot page (device,
    // history, event ring) once for many commits, and with NORMAL its fsyncs are the only ones.
    // Durability is the same: a commit is in the WAL either way. Batches of 20 with full
    // histories (store-batch's messages after 60 rounds): 22 → 19 µs/msg (wall)
    db.pragma('wal_autocheckpoint = 10000');
    db.exec('BEGIN IMMEDIATE; COMMIT;'); // takes the lock now, not at the first write
    migrate(db, where);
  } catch (err) {
    db.close();
    if (err instanceof StoreOpenError) throw err;
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY') throw new StoreOpenError(`${where} is in use by another wiihey-bridge process`);
    if (code === 'SQLITE_NOTADB') throw new StoreOpenError(`${where}: ${DATABASE_FILE} is not a wiihey-bridge database`);
    if (code === 'SQLITE_READONLY' || code === 'SQLITE_CANTOPEN') throw new StoreOpenError(`${where} is not writable`);
    throw new StoreOpenError(`${where} cannot be used: ${(err as Error).message}`);
  }
  return db;
}

function migrate(db: Db, where: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new StoreOpenError(`${where} holds schema version ${version}, newer than this wiihey-bridge knows (${MIGRATIONS.length}): upgrade it`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

function meta(db: Db, key: string): string | undefined {
  return (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

function setMeta(db: Db, key: string, value: string): string {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run(key, value);
  return value;
}

/**
 * The events ring keeps an event in slot seq % EVENT_BUFFER. EVENT_BUFFER may change between runs:
 * then the events kept are put in the slots of the new size, and only the newest run of them
 * without a gap is kept (SPEC §5: a replay never skips an event silently). Without this, a raised
 * size let a new event overwrite a kept one, and a lowered one left stale events around a gap.
 */
function reslotEvents(db: Db, size: number): void {
  db.transaction(() => {
    const seqs = (db.prepare('SELECT seq FROM events ORDER BY seq DESC').all() as { seq: number }[]).map((r) => r.seq);
    let kept = 0;
    while (kept < seqs.length && kept < size && (kept === 0 || seqs[kept] === seqs[kept - 1]! - 1)) kept++;
    const oldest = kept === 0 ? Infinity : seqs[kept - 1]!;
    // the newest seq outlives its event: with EVENT_BUFFER=0 nothing is kept, and the seq must not restart
    const newest = seqs[0];
    if (newest !== undefined && newest > Number(meta(db, 'last_seq') ?? 0)) {
      db.prepare("INSERT INTO meta (key, value) VALUES ('last_seq', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(String(newest));
    }
    db.prepare('DELETE FROM events WHERE seq < ?').run(oldest === Infinity ? Number.MAX_SAFE_INTEGER : oldest);
    if (kept === 0) return;
    // through negative slots: no two rows may share a slot on the way
    db.prepare('UPDATE events SET slot = -1 - seq').run();
    db.prepare('UPDATE events SET slot = seq % ?').run(size);
  })();
}
