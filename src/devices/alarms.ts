import { isoSeconds } from './rules.js';
import type { Device, RegistryEntry } from './types.js';

// SPEC §12, the alarm rules. Pure, like rules.ts: every store (memory, SQLite, Redis) asks these
// functions what a message or the passing of time does to a device's alarms, inside the write
// that stores the device, so a decision is atomic with its cause. test/devices/alarm.cases.ts
// holds the cases as data for this unit and for every store's contract.

export const ALARM_TYPES = ['cover_open', 'battery_low', 'silent'] as const;
export type AlarmType = (typeof ALARM_TYPES)[number];
export const SEVERITIES = ['warning', 'major', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export type AlarmTransition = 'raised' | 'escalated' | 'acknowledged' | 'cleared';

/** SPEC §12's shape: every key present, null where unused; times ISO 8601. */
export interface Alarm {
  alarmId: string;
  deviceId: string;
  type: AlarmType;
  severity: Severity;
  status: 'active' | 'cleared';
  acknowledged: boolean;
  /** Source time: the cause's timestamp (plus the delay of a timed raise; the deadline of a silence). */
  raisedAt: string;
  /** Source time of the message that cleared it; the bridge's time for a clear by hand. */
  clearedAt: string | null;
  acknowledgedAt: string | null;
  note: string | null;
  /** The device's registry entry when the alarm last changed: a receiver dispatches a crew without another lookup. */
  meta: RegistryEntry | null;
  /** Bridge clock, beside the source times: when the bridge raised it, and cleared it. */
  raisedReceivedAt: string;
  clearedReceivedAt: string | null;
}

export interface AlarmSettings {
  /** ALARM_OPEN_AFTER_SECONDS: a cover open this long raises cover_open (0: at the open message). */
  openAfterSeconds: number;
  /** ALARM_OPEN_CRITICAL_SECONDS: open this long escalates cover_open to critical. */
  openCriticalSeconds: number;
  /** ALARM_BATTERY_LOW: below it, battery_low (0 to 10000, the platform's hundredths of a percent). */
  batteryLow: number;
  /** ALARM_BATTERY_MARGIN: cleared at or above batteryLow + this (hysteresis). */
  batteryMargin: number;
  /** ALARM_BATTERY_CRITICAL: below it, battery_low is critical. */
  batteryCritical: number;
  /** SILENCE_AFTER_SECONDS: a silent alarm is raised at the device's timestamp plus this. */
  silenceAfterSeconds: number;
}

/** What the rules need of a device's alarms: the uncleared one of each type, and the types cleared by hand. */
export interface DeviceAlarms {
  active: Partial<Record<AlarmType, Alarm>>;
  /** Cleared by hand: the cause is ignored until it ends (SPEC §12: a new open raises again). */
  suppressed: ReadonlySet<AlarmType>;
}

export const NO_ALARMS: DeviceAlarms = { active: {}, suppressed: new Set() };

/** SPEC §6 defaults. */
export const DEFAULT_ALARM_SETTINGS: AlarmSettings = {
  openAfterSeconds: 0, // at the open message
  openCriticalSeconds: 3600, // an hour open: critical
  batteryLow: 2000, // 20 %
  batteryMargin: 500, // cleared at 25 %: no flapping at the threshold
  batteryCritical: 1000, // 10 %
  silenceAfterSeconds: 345_600, // four days: a three-day heartbeat plus a day
};

/** Whether a device has no alarm state worth keeping. */
export function isEmpty(alarms: DeviceAlarms): boolean {
  return alarms.suppressed.size === 0 && Object.keys(alarms.active).length === 0;
}

/** One decision; a store applies them in order (applyChanges) in the write that stores their cause. */
export type AlarmChange =
  | { kind: 'raise'; type: AlarmType; severity: Severity; raisedAt: string }
  | { kind: 'escalate'; type: AlarmType; severity: Severity }
  | { kind: 'clear'; type: AlarmType; clearedAt: string }
  /** The cause ended: a hand-cleared type may raise again. */
  | { kind: 'release'; type: AlarmType };

const OPEN = 'open';
const OFFLINE = 'offline';

function batterySeverity(level: number, settings: AlarmSettings): Severity {
  return level < settings.batteryCritical ? 'critical' : 'warning';
}

const RELEASE_COVER_OPEN: AlarmChange = Object.freeze({ kind: 'release', type: 'cover_open' });
const RELEASE_BATTERY_LOW: AlarmChange = Object.freeze({ kind: 'release', type: 'battery_low' });
const RELEASE_SILENT: AlarmChange = Object.freeze({ kind: 'release', type: 'silent' });

/**
 * An accepted update (SPEC §4: new device, change or heartbeat; never a late message or a
 * duplicate, which touch no alarm) from `before` to `after`. On every message's path: no closures,
 * no date parsing where the message itself gives the time (npm run bench -- alarms).
 */
export function onMessage(before: Device | undefined, after: Device, alarms: DeviceAlarms, settings: AlarmSettings | null): AlarmChange[] {
  if (settings === null) return []; // alarms off
  const changes: AlarmChange[] = [];
  const at = after.lastSeenAt;
  const { active, suppressed } = alarms;
  const anySuppressed = suppressed.size > 0;

  // cover_open: open since the source time of the open transition (lastChangedAt)
  if (after.state === OPEN) {
    const newOpen = before?.state !== OPEN;
    let held = anySuppressed && suppressed.has('cover_open');
    if (held && newOpen) {
      changes.push(RELEASE_COVER_OPEN); // a new open: raised again even after a clear by hand
      held = false;
    }
    // a new open is this message's own time: no parsing of lastChangedAt
    const since = newOpen ? after.timestamp : Date.parse(after.lastChangedAt) / 1000;
    openTimers(changes, active.cover_open, since, newOpen ? after.lastChangedAt : null, settings, after.timestamp, held);
  } else {
    if (active.cover_open !== undefined) changes.push({ kind: 'clear', type: 'cover_open', clearedAt: at });
    if (anySuppressed && suppressed.has('cover_open')) changes.push(RELEASE_COVER_OPEN);
  }

  // battery_low, with hysteresis: raised below the threshold, cleared only at threshold + margin
  const level = after.batteryLevel;
  if (level !== null) {
    const current = active.battery_low;
    if (level < settings.batteryLow) {
      const severity = batterySeverity(level, settings);
      if (current === undefined) {
        if (!(anySuppressed && suppressed.has('battery_low'))) changes.push({ kind: 'raise', type: 'battery_low', severity, raisedAt: at });
      } else if (severity === 'critical' && current.severity !== 'critical') {
        changes.push({ kind: 'escalate', type: 'battery_low', severity });
      }
    } else if (level >= settings.batteryLow + settings.batteryMargin) {
      if (current !== undefined) changes.push({ kind: 'clear', type: 'battery_low', clearedAt: at });
      if (anySuppressed && suppressed.has('battery_low')) changes.push(RELEASE_BATTERY_LOW);
    }
  }

  // silent: the platform's own offline raises it; the next message in another state clears it
  if (after.state === OFFLINE) {
    let held = anySuppressed && suppressed.has('silent');
    if (held && before?.state !== OFFLINE) {
      changes.push(RELEASE_SILENT);
      held = false;
    }
    if (!held && active.silent === undefined) changes.push({ kind: 'raise', type: 'silent', severity: 'major', raisedAt: at });
  } else {
    if (active.silent !== undefined) changes.push({ kind: 'clear', type: 'silent', clearedAt: at });
    if (anySuppressed && suppressed.has('silent')) changes.push(RELEASE_SILENT);
  }
  return changes;
}

/**
 * cover_open's timers at `now` (a message's timestamp, or the sweep's clock), for a cover open
 * since `since` (`sinceIso` when the caller has it as text): raised once it has been open for
 * openAfterSeconds, escalated at openCriticalSeconds. Each at its true source time, whenever it
 * is noticed (after a restart, at once). Pushes onto `changes`.
 */
function openTimers(
  changes: AlarmChange[],
  current: Alarm | undefined,
  since: number,
  sinceIso: string | null,
  settings: AlarmSettings,
  now: number,
  held: boolean,
): void {
  let severity = current?.severity ?? null;
  if (severity === null && !held && now >= since + settings.openAfterSeconds) {
    const raisedAt = settings.openAfterSeconds === 0 && sinceIso !== null ? sinceIso : isoSeconds(since + settings.openAfterSeconds);
    changes.push({ kind: 'raise', type: 'cover_open', severity: 'major', raisedAt });
    severity = 'major';
  }
  if (severity === 'major' && now >= since + settings.openCriticalSeconds) changes.push({ kind: 'escalate', type: 'cover_open', severity: 'critical' });
}

/** The sweep (SPEC §12: timed raises with the silence check): what the time `nowSeconds` does to an open cover. */
export function onTime(device: Device, alarms: DeviceAlarms, settings: AlarmSettings | null, nowSeconds: number): AlarmChange[] {
  if (settings === null || device.state !== OPEN) return [];
  const changes: AlarmChange[] = [];
  openTimers(changes, alarms.active.cover_open, Date.parse(device.lastChangedAt) / 1000, device.lastChangedAt, settings, nowSeconds, alarms.suppressed.has('cover_open'));
  return changes;
}

/** The device just fell silent (SPEC §4): silent is raised at the deadline, the device's timestamp plus SILENCE_AFTER_SECONDS. */
export function onSilent(device: Device, alarms: DeviceAlarms, settings: AlarmSettings | null): AlarmChange[] {
  if (settings === null || alarms.active.silent !== undefined || alarms.suppressed.has('silent')) return [];
  return [{ kind: 'raise', type: 'silent', severity: 'major', raisedAt: isoSeconds(device.timestamp + settings.silenceAfterSeconds) }];
}

/** The seconds a device's open cover waits for its next timer, or null: for the sweep to know where to look. */
export function nextOpenTimer(device: Device, alarms: DeviceAlarms, settings: AlarmSettings): number | null {
  if (device.state !== OPEN) return null;
  const since = Date.parse(device.lastChangedAt) / 1000;
  const active = alarms.active.cover_open;
  if (active === undefined) return alarms.suppressed.has('cover_open') ? null : since + settings.openAfterSeconds;
  return active.severity === 'major' ? since + settings.openCriticalSeconds : null;
}

export interface AppliedChange {
  transition: AlarmTransition;
  alarm: Alarm;
}

/**
 * Applies changes to a device's alarms; returns the transitions (each a new Alarm object: events
 * already sent keep theirs) and the device's alarms after them. `newId` names a raised alarm.
 * `receivedAt`: the bridge's clock now.
 */
export function applyChanges(
  deviceId: string,
  alarms: DeviceAlarms,
  changes: readonly AlarmChange[],
  meta: RegistryEntry | null,
  receivedAt: string,
  /** Names the raised alarm that will be the `index`-th transition applied. */
  newId: (index: number) => string,
): { applied: AppliedChange[]; after: DeviceAlarms } {
  const active = { ...alarms.active };
  let suppressed = alarms.suppressed; // copied only if a release changes it
  const applied: AppliedChange[] = [];
  for (const change of changes) {
    const current = active[change.type];
    switch (change.kind) {
      case 'raise': {
        if (current !== undefined) break;
        const alarm = makeAlarm(newId(applied.length), deviceId, change.type, change.severity, change.raisedAt, meta, receivedAt);
        active[change.type] = alarm;
        applied.push({ transition: 'raised', alarm });
        break;
      }
      case 'escalate': {
        if (current === undefined || current.severity === change.severity) break;
        const alarm = { ...current, severity: change.severity, meta };
        active[change.type] = alarm;
        applied.push({ transition: 'escalated', alarm });
        break;
      }
      case 'clear': {
        if (current === undefined) break;
        delete active[change.type];
        applied.push({ transition: 'cleared', alarm: { ...current, status: 'cleared', clearedAt: change.clearedAt, clearedReceivedAt: receivedAt, meta } });
        break;
      }
      case 'release':
        if (suppressed === alarms.suppressed) suppressed = new Set(suppressed);
        (suppressed as Set<AlarmType>).delete(change.type);
        break;
    }
  }
  return { applied, after: { active, suppressed } };
}

/** Builds an Alarm with every field set, in one order (one hidden class). */
export function makeAlarm(alarmId: string, deviceId: string, type: AlarmType, severity: Severity, raisedAt: string, meta: RegistryEntry | null, receivedAt: string): Alarm {
  return {
    alarmId,
    deviceId,
    type,
    severity,
    status: 'active',
    acknowledged: false,
    raisedAt,
    clearedAt: null,
    acknowledgedAt: null,
    note: null,
    meta,
    raisedReceivedAt: receivedAt,
    clearedReceivedAt: null,
  };
}

/** SPEC §12: an acknowledgement's note holds up to 1,000 characters (code points, as JSON Schema counts them). */
export const MAX_NOTE_CHARACTERS = 1000;

/** Whether a note is over MAX_NOTE_CHARACTERS; the string's length bounds its code points from above. */
export function noteTooLong(note: string): boolean {
  return note.length > MAX_NOTE_CHARACTERS && [...note].length > MAX_NOTE_CHARACTERS;
}

/** SPEC §12: acknowledging is idempotent (the first time and note stay), before or after the clear. */
export function acknowledge(alarm: Alarm, note: string | null, at: string): Alarm | null {
  if (alarm.acknowledged) return null;
  return { ...alarm, acknowledged: true, acknowledgedAt: at, note };
}

/** SPEC §12: a clear by hand; the cause is then ignored until it ends (the store adds the type to the device's suppressed ones). */
export function clearByHand(alarm: Alarm, at: string): Alarm | null {
  if (alarm.status === 'cleared') return null;
  return { ...alarm, status: 'cleared', clearedAt: at, clearedReceivedAt: at };
}

/** A device's alarms after its active alarm of `type` was cleared by hand. */
export function suppress(alarms: DeviceAlarms, type: AlarmType): DeviceAlarms {
  const active = { ...alarms.active };
  delete active[type];
  return { active, suppressed: new Set([...alarms.suppressed, type]) };
}

/** A device's alarms with one of its active alarms replaced (acknowledged, say). */
export function withActive(alarms: DeviceAlarms, alarm: Alarm): DeviceAlarms {
  return alarms.active[alarm.type]?.alarmId === alarm.alarmId ? { ...alarms, active: { ...alarms.active, [alarm.type]: alarm } } : alarms;
}

/** Alarm ids sort by their number: `a9` before `a10`. */
export function compareAlarmIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** SPEC §12 list order: newest raisedAt first, then the newest id. */
export function newestFirst(a: Alarm, b: Alarm): number {
  return a.raisedAt < b.raisedAt ? 1 : a.raisedAt > b.raisedAt ? -1 : -compareAlarmIds(a.alarmId, b.alarmId);
}
