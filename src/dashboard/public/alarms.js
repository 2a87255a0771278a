// SPEC §12: the alarms the page shows, by alarmId: every active one, and the cleared ones nobody
// has acknowledged yet (an acknowledged and cleared alarm is done, and leaves). Read from
// GET /alarms after every snapshot, kept up to date by the alarm frames of /ws and by the answers
// of the page's own acknowledgements and clears. No DOM, no clock: the panel (alarm-list.js), the
// table and the map ask what to show, and node's tap imports this file (test/dashboard/alarms.test.ts).
//
// An alarm only ever moves forward (active → cleared, unacknowledged → acknowledged, severity up),
// so two copies of one alarm merge into the more advanced one, whatever order they come in: a
// frame that overtakes the REST read, or a POST answer that arrives after its own frame.

/**
 * @import { Alarm, AlarmTransition, Severity } from '../../devices/alarms.js'
 * @typedef {{ type: 'alarm', seq: number, transition: AlarmTransition, alarm: Alarm }} AlarmFrame   /ws (asyncapi.yaml)
 * @typedef {{ active: number, unacknowledged: number, worst: Severity | null }} AlarmCounts
 * @typedef {{ severity: Severity, alarms: Alarm[] }} DeviceAlarm   a device's active alarms, the worst first
 */

/** Severities, mildest first (schema/alarm.schema.json). */
export const SEVERITIES = /** @type {const} */ (['warning', 'major', 'critical']);

/** How people read the types; a type this page does not know shows as its own text. */
const TYPE_LABELS = /** @type {Record<string, string>} */ ({ cover_open: 'Cover open', battery_low: 'Battery low', silent: 'Silent' });

/** @param {string} type */
export function typeLabel(type) {
  return Object.hasOwn(TYPE_LABELS, type) ? /** @type {string} */ (TYPE_LABELS[type]) : type;
}

/** @param {string} severity */
export function severityLabel(severity) {
  return SEVERITIES.includes(/** @type {Severity} */ (severity)) ? severity.charAt(0).toUpperCase() + severity.slice(1) : severity;
}

/**
 * 1 (warning) to 3 (critical); 0 for a severity this page does not know.
 * @param {string} severity
 */
export function severityRank(severity) {
  return SEVERITIES.indexOf(/** @type {Severity} */ (severity)) + 1;
}

/**
 * A CSS-safe class for a severity, never the alarm's own string: `sev-critical`, or `sev-other`.
 * @param {string} severity
 */
export function severityClass(severity) {
  return severityRank(severity) > 0 ? `sev-${severity}` : 'sev-other';
}

/**
 * The classes of a table row or a map marker whose device has an active alarm (the same vocabulary
 * in both, apart from the markers' state classes, mk-*): `has-alarm alarm-critical`, or ''.
 * @param {DeviceAlarm | undefined} alarm
 */
export function alarmClass(alarm) {
  if (alarm === undefined) return '';
  return `has-alarm alarm-${severityRank(alarm.severity) > 0 ? alarm.severity : 'other'}`;
}

/**
 * "Active alarm, critical: cover open; battery low (warning)": a device's alarms in words.
 * @param {DeviceAlarm} alarm
 */
export function alarmWords(alarm) {
  const [first, ...rest] = alarm.alarms;
  if (first === undefined) return '';
  const more = rest.map((a) => `; ${typeLabel(a.type).toLowerCase()} (${a.severity})`).join('');
  return `${alarm.alarms.length > 1 ? 'Active alarms' : 'Active alarm'}, ${first.severity}: ${typeLabel(first.type).toLowerCase()}${more}`;
}

/** @param {string} iso */
const ms = (iso) => {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : t;
};

/**
 * Newest raisedAt first, then the newest id (the order of GET /alarms: a9 before a10).
 * @param {Alarm} a
 * @param {Alarm} b
 */
function newestFirst(a, b) {
  return ms(b.raisedAt) - ms(a.raisedAt) || b.alarmId.length - a.alarmId.length || (a.alarmId < b.alarmId ? 1 : a.alarmId > b.alarmId ? -1 : 0);
}

/**
 * The list's order (SPEC §12): active alarms first, the most severe first, then the newest; then
 * the cleared ones, the newest first.
 * @param {Alarm} a
 * @param {Alarm} b
 */
export function compareAlarms(a, b) {
  const activeA = a.status !== 'cleared';
  const activeB = b.status !== 'cleared';
  if (activeA !== activeB) return activeA ? -1 : 1;
  if (activeA) {
    const bySeverity = severityRank(b.severity) - severityRank(a.severity);
    if (bySeverity !== 0) return bySeverity;
  }
  return newestFirst(a, b);
}

/**
 * Whether the list shows an alarm: active, or cleared and not acknowledged yet.
 * @param {Alarm} alarm
 */
export function isListed(alarm) {
  return alarm.status !== 'cleared' || !alarm.acknowledged;
}

/**
 * Two copies of one alarm as one, the more advanced: cleared if either is, acknowledged if either
 * is (with that one's time and note), the higher severity; the rest (meta) from `next`.
 * @param {Alarm | undefined} known
 * @param {Alarm} next
 * @returns {Alarm}
 */
export function mergeAlarm(known, next) {
  if (known === undefined || known === next) return next;
  const cleared = next.status === 'cleared' ? next : known.status === 'cleared' ? known : null;
  const acked = next.acknowledged ? next : known.acknowledged ? known : null;
  return {
    ...next,
    severity: severityRank(known.severity) > severityRank(next.severity) ? known.severity : next.severity,
    status: cleared === null ? 'active' : 'cleared',
    clearedAt: cleared === null ? null : cleared.clearedAt,
    clearedReceivedAt: cleared === null ? null : cleared.clearedReceivedAt,
    acknowledged: acked !== null,
    acknowledgedAt: acked === null ? null : acked.acknowledgedAt,
    note: acked === null ? null : acked.note,
  };
}

export class Alarms {
  /** @param {(path: string) => Promise<any[]>} all   every item of a REST list (live.js Live.all) */
  constructor(all) {
    this.all = all;
    /** @type {Map<string, Alarm>} the listed alarms by alarmId */
    this.byId = new Map();
    /** @type {Map<string, Alarm> | null} What came while a read is under way, merged over its answer. */
    this.changes = null;
    this.loads = 0;
    /** The first read is over (done or failed). */
    this.loaded = false;
    /** @type {unknown} Why the last read failed (live.js AuthError: the key was refused), or null. */
    this.error = null;
    /** Bumped on every change: what the page derived from the alarms (by device, counts) is stale. */
    this.version = 0;
    /** @type {{ version: number, byDevice: Map<string, DeviceAlarm> } | null} */
    this.derived = null;
  }

  /**
   * An alarm as the bridge says it is now (a frame, or the answer to a POST). True when the list changed.
   * @param {Alarm} alarm
   */
  set(alarm) {
    this.changes?.set(alarm.alarmId, mergeAlarm(this.changes.get(alarm.alarmId), alarm));
    const known = this.byId.get(alarm.alarmId);
    const merged = mergeAlarm(known, alarm);
    if (known !== undefined && same(known, merged)) return false;
    if (isListed(merged)) this.byId.set(alarm.alarmId, merged);
    else if (known === undefined) return false;
    else this.byId.delete(alarm.alarmId);
    this.version++;
    return true;
  }

  /**
   * A /ws alarm frame (raised, escalated, acknowledged, cleared: the frame's alarm says it all).
   * @param {AlarmFrame} frame
   */
  apply(frame) {
    return this.set(frame.alarm);
  }

  /**
   * Reads the list afresh: the active alarms, and the cleared ones not acknowledged. A refusal or
   * a bridge without alarms leaves the list as it was, and says why (error). False when a newer
   * read took over.
   */
  async load() {
    const load = ++this.loads;
    /** @type {Map<string, Alarm>} */
    const changes = new Map();
    this.changes = changes;
    try {
      const [active, cleared] = await Promise.all([this.all('/alarms?status=active'), this.all('/alarms?status=cleared&acknowledged=false')]);
      if (load !== this.loads) return false;
      /** @type {Map<string, Alarm>} */
      const found = new Map();
      for (const alarm of /** @type {Alarm[]} */ ([...active, ...cleared])) found.set(alarm.alarmId, mergeAlarm(found.get(alarm.alarmId), alarm));
      for (const [id, alarm] of changes) found.set(id, mergeAlarm(found.get(id), alarm));
      for (const [id, alarm] of found) if (!isListed(alarm)) found.delete(id);
      this.byId = found;
      this.error = null;
      this.version++;
    } catch (err) {
      if (load !== this.loads) return false;
      this.error = err;
      this.version++;
    } finally {
      if (load === this.loads) {
        this.changes = null;
        this.loaded = true;
      }
    }
    return true;
  }

  /** The listed alarms in the list's order, in two groups. */
  ordered() {
    const sorted = [...this.byId.values()].sort(compareAlarms);
    const split = sorted.findIndex((a) => a.status === 'cleared');
    return split < 0 ? { active: sorted, cleared: [] } : { active: sorted.slice(0, split), cleared: sorted.slice(split) };
  }

  /** @returns {AlarmCounts} the header's count (the /stats `alarms` figures, and the worst active severity) */
  counts() {
    let active = 0;
    let unacknowledged = 0;
    let worst = 0;
    for (const alarm of this.byId.values()) {
      if (alarm.status !== 'cleared') {
        active++;
        worst = Math.max(worst, severityRank(alarm.severity));
      }
      if (!alarm.acknowledged) unacknowledged++;
    }
    return { active, unacknowledged, worst: SEVERITIES[worst - 1] ?? null };
  }

  /**
   * A device's active alarms (the worst first) and their worst severity, or undefined.
   * @param {string} deviceId
   * @returns {DeviceAlarm | undefined}
   */
  ofDevice(deviceId) {
    if (this.derived === null || this.derived.version !== this.version) {
      /** @type {Map<string, DeviceAlarm>} */
      const byDevice = new Map();
      for (const alarm of [...this.byId.values()].sort(compareAlarms)) {
        if (alarm.status === 'cleared') break; // the active ones come first
        const known = byDevice.get(alarm.deviceId);
        if (known === undefined) byDevice.set(alarm.deviceId, { severity: alarm.severity, alarms: [alarm] });
        else known.alarms.push(alarm);
      }
      this.derived = { version: this.version, byDevice };
    }
    return this.derived.byDevice.get(deviceId);
  }
}

/**
 * Whether two copies of an alarm look the same to the page.
 * @param {Alarm} a
 * @param {Alarm} b
 */
function same(a, b) {
  return (
    a.status === b.status &&
    a.acknowledged === b.acknowledged &&
    a.severity === b.severity &&
    a.note === b.note &&
    a.clearedAt === b.clearedAt &&
    a.acknowledgedAt === b.acknowledgedAt &&
    JSON.stringify(a.meta) === JSON.stringify(b.meta)
  );
}
