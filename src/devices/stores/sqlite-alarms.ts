import type { Database as Db, Statement } from 'better-sqlite3';
import { AlarmBook } from '../alarm-book.js';
import type { Alarm, AlarmChange, AlarmType, AppliedChange, DeviceAlarms } from '../alarms.js';
import type { AlarmPage, AlarmQuery } from '../store.js';
import type { Device } from '../types.js';

// SPEC §12 in the SQLite store: the alarm tables (migration 4 in sqlite.ts) and the AlarmBook kept
// beside them. Every method that writes runs inside the caller's transaction (the device update,
// the silence sweep, an operator's change), so an alarm is stored with its cause or not at all;
// after a rollback the store calls load() and the book is the tables again.

/** The number in an alarm id (`a42` → 42): the list's tie-break, in numeric order. */
function idNumber(alarmId: string): number {
  return Number(alarmId.slice(1));
}

export class SqliteAlarms {
  readonly book = new AlarmBook();
  readonly #db: Db;
  readonly #q: Record<'put' | 'change' | 'get' | 'unacknowledged' | 'active' | 'suppressedAll' | 'unsuppress' | 'suppress' | 'trim', Statement>;
  readonly #keep: number;

  /** `keep`: the cleared alarms kept per device (HISTORY_LIMIT): an alarm log must not grow without end. */
  constructor(db: Db, keep: number) {
    this.#db = db;
    this.#keep = keep;
    this.#q = {
      put: db.prepare(
        'INSERT INTO alarms (alarm_id, n, device_id, type, severity, status, acknowledged, raised_at, zone, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (alarm_id) DO UPDATE SET severity = excluded.severity, status = excluded.status, acknowledged = excluded.acknowledged, ' +
          'zone = excluded.zone, json = excluded.json',
      ),
      // a rule's escalation or clear: the alarm is in the book, so its row exists, and the rules
      // never move its acknowledgement (the alarms_unacknowledged index stays untouched)
      change: db.prepare('UPDATE alarms SET severity = ?, status = ?, zone = ?, json = ? WHERE alarm_id = ?'),
      get: db.prepare('SELECT json FROM alarms WHERE alarm_id = ?'),
      unacknowledged: db.prepare('SELECT count(*) AS n FROM alarms WHERE acknowledged = 0'),
      active: db.prepare("SELECT json FROM alarms WHERE status = 'active'"),
      suppressedAll: db.prepare('SELECT device_id, type FROM alarm_suppressed'),
      unsuppress: db.prepare('DELETE FROM alarm_suppressed WHERE device_id = ? AND type = ?'),
      suppress: db.prepare('INSERT OR IGNORE INTO alarm_suppressed (device_id, type) VALUES (?, ?)'),
      // through the partial index alarms_cleared_by_device (migration 5), without reading the rows
      trim: db.prepare(
        "DELETE FROM alarms WHERE alarm_id IN (SELECT alarm_id FROM alarms WHERE device_id = ? AND status = 'cleared' ORDER BY raised_at DESC, n DESC LIMIT -1 OFFSET ?)",
      ),
    };
    this.load();
  }

  /** The book from the tables: at start, and after a rollback. */
  load(): void {
    this.book.clear();
    const byDevice = new Map<string, { active: Partial<Record<AlarmType, Alarm>>; suppressed: Set<AlarmType> }>();
    const of = (id: string) => {
      let alarms = byDevice.get(id);
      if (alarms === undefined) byDevice.set(id, (alarms = { active: {}, suppressed: new Set() }));
      return alarms;
    };
    for (const row of this.#q.active.all() as { json: string }[]) {
      const alarm = JSON.parse(row.json) as Alarm;
      of(alarm.deviceId).active[alarm.type] = alarm;
    }
    for (const row of this.#q.suppressedAll.all() as { device_id: string; type: AlarmType }[]) of(row.device_id).suppressed.add(row.type);
    for (const [id, alarms] of byDevice) this.book.put(id, alarms);
  }

  /**
   * Applies rule changes to a device's alarms and writes what changed, in the caller's transaction.
   * `json` receives each applied alarm's JSON, in order, for the caller's event log (serialized once).
   */
  apply(device: Device, changes: readonly AlarmChange[], at: string, newId: (index: number) => string, json: string[]): AppliedChange[] {
    if (changes.length === 0) return [];
    const before = this.book.of(device.deviceId);
    const applied = this.book.apply(device.deviceId, changes, device.meta, at, newId);
    let cleared = false;
    for (const { transition, alarm } of applied) {
      if (transition === 'raised') {
        json.push(this.write(alarm));
        continue;
      }
      const text = JSON.stringify(alarm);
      this.#q.change.run(alarm.severity, alarm.status, alarm.meta?.zone ?? null, text, alarm.alarmId);
      json.push(text);
      if (transition === 'cleared') cleared = true;
    }
    if (cleared) this.#q.trim.run(device.deviceId, this.#keep);
    this.#writeSuppressed(device.deviceId, before, this.book.of(device.deviceId));
    return applied;
  }

  /** Sets a device's alarm state (an operator's change) and writes what changed of it. */
  put(deviceId: string, alarms: DeviceAlarms): void {
    const before = this.book.of(deviceId);
    this.book.put(deviceId, alarms);
    this.#writeSuppressed(deviceId, before, alarms);
  }

  /** Writes the alarm whole; returns its JSON. */
  write(alarm: Alarm): string {
    const json = JSON.stringify(alarm);
    this.#q.put.run(
      alarm.alarmId,
      idNumber(alarm.alarmId),
      alarm.deviceId,
      alarm.type,
      alarm.severity,
      alarm.status,
      alarm.acknowledged ? 1 : 0,
      alarm.raisedAt,
      alarm.meta?.zone ?? null,
      json,
    );
    return json;
  }

  get(alarmId: string): Alarm | undefined {
    const row = this.#q.get.get(alarmId) as { json: string } | undefined;
    return row === undefined ? undefined : (JSON.parse(row.json) as Alarm);
  }

  unacknowledged(): number {
    return (this.#q.unacknowledged.get() as { n: number }).n;
  }

  /** SPEC §12 list: newest raisedAt first, then the newest id. */
  list(query: AlarmQuery): AlarmPage {
    const where: string[] = [];
    const params: unknown[] = [];
    const eq = (column: string, value: unknown): void => {
      where.push(`${column} = ?`);
      params.push(value);
    };
    if (query.status !== undefined) eq('status', query.status);
    if (query.acknowledged !== undefined) eq('acknowledged', query.acknowledged ? 1 : 0);
    if (query.type !== undefined) eq('type', query.type);
    if (query.severity !== undefined) eq('severity', query.severity);
    if (query.deviceId !== undefined) eq('device_id', query.deviceId);
    if (query.zone !== undefined) eq('zone', query.zone);
    const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const total = (this.#db.prepare(`SELECT count(*) AS n FROM alarms ${filter}`).get(...params) as { n: number }).n;
    let page = filter;
    const pageParams = [...params];
    if (query.after !== undefined) {
      page = `${filter}${filter ? ' AND' : 'WHERE'} (raised_at < ? OR (raised_at = ? AND n < ?))`;
      pageParams.push(query.after.raisedAt, query.after.raisedAt, idNumber(query.after.alarmId));
    }
    const rows = this.#db.prepare(`SELECT json FROM alarms ${page} ORDER BY raised_at DESC, n DESC LIMIT ?`).all(...pageParams, query.limit + 1) as { json: string }[];
    const more = rows.length > query.limit;
    const items = (more ? rows.slice(0, query.limit) : rows).map((r) => JSON.parse(r.json) as Alarm);
    return { items, total, last: more ? items[items.length - 1]! : null };
  }

  #writeSuppressed(deviceId: string, before: DeviceAlarms, after: DeviceAlarms): void {
    for (const type of before.suppressed) if (!after.suppressed.has(type)) this.#q.unsuppress.run(deviceId, type);
    for (const type of after.suppressed) if (!before.suppressed.has(type)) this.#q.suppress.run(deviceId, type);
  }
}
