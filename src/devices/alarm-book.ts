import {
  ALARM_TYPES,
  applyChanges,
  isEmpty,
  NO_ALARMS,
  SEVERITIES,
  type AlarmChange,
  type AlarmType,
  type AppliedChange,
  type DeviceAlarms,
  type Severity,
} from './alarms.js';
import type { AlarmSummary } from './store.js';
import type { RegistryEntry } from './types.js';

// SPEC §12: the uncleared alarms and the hand-cleared types of every device, in memory, with the
// counts /stats and /metrics read. The memory store keeps its alarm state here; the SQLite store
// keeps it here too, beside its tables (loaded at start, changed with each write), so that the
// message path decides alarms without reading the database.

export class AlarmBook {
  readonly #byDevice = new Map<string, DeviceAlarms>();
  readonly #active = new Map<AlarmType, Map<Severity, number>>(ALARM_TYPES.map((t) => [t, new Map(SEVERITIES.map((s) => [s, 0]))]));

  of(deviceId: string): DeviceAlarms {
    return this.#byDevice.get(deviceId) ?? NO_ALARMS;
  }

  /** Replaces a device's alarm state, and the counts with it. */
  put(deviceId: string, alarms: DeviceAlarms): void {
    this.#count(this.of(deviceId), -1);
    if (isEmpty(alarms)) this.#byDevice.delete(deviceId);
    else this.#byDevice.set(deviceId, alarms);
    this.#count(alarms, 1);
  }

  /** Applies rule changes to a device (alarms.applyChanges) and keeps the result. */
  apply(deviceId: string, changes: readonly AlarmChange[], meta: RegistryEntry | null, receivedAt: string, newId: (index: number) => string): AppliedChange[] {
    if (changes.length === 0) return [];
    const { applied, after } = applyChanges(deviceId, this.of(deviceId), changes, meta, receivedAt, newId);
    this.put(deviceId, after);
    return applied;
  }

  /** Every device with an uncleared alarm or a hand-cleared type. */
  entries(): IterableIterator<[string, DeviceAlarms]> {
    return this.#byDevice.entries();
  }

  clear(): void {
    this.#byDevice.clear();
    for (const bySeverity of this.#active.values()) for (const s of SEVERITIES) bySeverity.set(s, 0);
  }

  summary(unacknowledged: number): AlarmSummary {
    const byType = {} as AlarmSummary['byType'];
    const bySeverity = {} as AlarmSummary['bySeverity'];
    let active = 0;
    for (const [type, counts] of this.#active) {
      bySeverity[type] = Object.fromEntries(counts) as Record<Severity, number>;
      byType[type] = [...counts.values()].reduce((a, b) => a + b, 0);
      active += byType[type];
    }
    return { active, unacknowledged, byType, bySeverity };
  }

  #count(alarms: DeviceAlarms, delta: 1 | -1): void {
    for (const type of ALARM_TYPES) {
      const alarm = alarms.active[type];
      if (alarm === undefined) continue;
      const counts = this.#active.get(type)!;
      counts.set(alarm.severity, counts.get(alarm.severity)! + delta);
    }
  }
}
