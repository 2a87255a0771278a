import type { AlarmSettings, AlarmTransition, AlarmType, Severity } from '../../src/devices/alarms.js';
import type { DeviceRecord } from '../../src/devices/types.js';
import { record } from '../helpers/records.js';

// SPEC §12, one case a row, as data: the alarm rules' unit test and every store's contract run
// them, so the memory store, SQLite and (next) Redis answer to the same rows. Each step is a
// message, a sweep at a time (timed raises and escalation), a silence check, or a clear by hand;
// `expected` lists every transition the steps cause, in order.

export type AlarmStep =
  | { message: DeviceRecord }
  /** The sweep at this Unix time: timed raises and escalations (SPEC §12). */
  | { sweepAt: number }
  /** The silence check at this Unix time (SPEC §4: silent after SILENCE_AFTER_SECONDS). */
  | { silenceAt: number }
  /** An operator clears the device's active alarm of this type. */
  | { clearByHand: AlarmType }
  /** An operator acknowledges it. */
  | { acknowledge: AlarmType; note?: string };

export interface ExpectedTransition {
  transition: AlarmTransition;
  type: AlarmType;
  severity: Severity;
  /** Unix seconds of raisedAt. */
  raisedAt: number;
  /** Unix seconds of clearedAt, for a clear caused by a message (a clear by hand has the bridge's time). */
  clearedAt?: number;
}

export interface AlarmCase {
  name: string;
  settings?: Partial<AlarmSettings>;
  steps: AlarmStep[];
  expected: ExpectedTransition[];
}

const T = 1_700_000_000;
const HOUR = 3600;
const ok = { batteryLevel: 9000 }; // far from every battery threshold

export const ALARM_DEFAULTS: AlarmSettings = {
  openAfterSeconds: 0,
  openCriticalSeconds: HOUR,
  batteryLow: 2000,
  batteryMargin: 500,
  batteryCritical: 1000,
  silenceAfterSeconds: 345_600,
};

const m = (state: string, timestamp: number, fields: Partial<DeviceRecord> = ok): AlarmStep => ({ message: record({ deviceId: 'a', state, timestamp, ...fields }) });

export const alarmCases: AlarmCase[] = [
  {
    name: 'cover_open, no delay: raised at the open message, cleared by a newer close',
    steps: [m('close', T), m('open', T + 10), m('close', T + 70)],
    expected: [
      { transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T + 10 },
      { transition: 'cleared', type: 'cover_open', severity: 'major', raisedAt: T + 10, clearedAt: T + 70 },
    ],
  },
  {
    name: 'a new device that reports open raises at once',
    steps: [m('open', T)],
    expected: [{ transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T }],
  },
  {
    name: 'open then close within the delay: no alarm',
    settings: { openAfterSeconds: 300 },
    steps: [m('open', T), { sweepAt: T + 100 }, m('close', T + 200), { sweepAt: T + 400 }],
    expected: [],
  },
  {
    name: 'open past the delay: raised by the sweep at open + delay, whenever the sweep runs',
    settings: { openAfterSeconds: 300 },
    steps: [m('open', T), { sweepAt: T + 299 }, { sweepAt: T + 1000 }, { sweepAt: T + 1060 }],
    expected: [{ transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T + 300 }],
  },
  {
    name: 'open past the delay: a heartbeat raises it too, at open + delay',
    settings: { openAfterSeconds: 300 },
    steps: [m('open', T), m('open', T + 400)],
    expected: [{ transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T + 300 }],
  },
  {
    name: 'escalation: major, then critical after ALARM_OPEN_CRITICAL_SECONDS, once',
    steps: [m('open', T), { sweepAt: T + HOUR - 1 }, { sweepAt: T + HOUR }, { sweepAt: T + 2 * HOUR }, m('close', T + 3 * HOUR)],
    expected: [
      { transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T },
      { transition: 'escalated', type: 'cover_open', severity: 'critical', raisedAt: T },
      { transition: 'cleared', type: 'cover_open', severity: 'critical', raisedAt: T, clearedAt: T + 3 * HOUR },
    ],
  },
  {
    name: 'a delay past the critical time: raised and escalated by one sweep (after a restart, say)',
    settings: { openAfterSeconds: 600, openCriticalSeconds: 1800 },
    steps: [m('open', T), { sweepAt: T + 5000 }],
    expected: [
      { transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T + 600 },
      { transition: 'escalated', type: 'cover_open', severity: 'critical', raisedAt: T + 600 },
    ],
  },
  {
    name: 'a duplicate open raises nothing twice',
    steps: [m('open', T), m('open', T), m('open', T + 10)],
    expected: [{ transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T }],
  },
  {
    name: 'a late close older than the open clears nothing',
    steps: [m('close', T), m('open', T + 100), m('close', T + 50)],
    expected: [{ transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T + 100 }],
  },
  {
    name: 'a late open older than the close raises nothing',
    steps: [m('close', T + 100), m('open', T + 50)],
    expected: [],
  },
  {
    name: 'cleared by hand: the open is ignored until a new open raises again',
    steps: [m('open', T), { clearByHand: 'cover_open' }, m('open', T + 10), { sweepAt: T + 2 * HOUR }, m('close', T + 20), m('open', T + 30)],
    expected: [
      { transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T },
      { transition: 'cleared', type: 'cover_open', severity: 'major', raisedAt: T },
      { transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T + 30 },
    ],
  },
  {
    name: 'acknowledged, then cleared: both transitions, acknowledgement kept',
    steps: [m('open', T), { acknowledge: 'cover_open', note: 'crew on the way' }, { acknowledge: 'cover_open', note: 'again' }, m('close', T + 60)],
    expected: [
      { transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T },
      { transition: 'acknowledged', type: 'cover_open', severity: 'major', raisedAt: T },
      { transition: 'cleared', type: 'cover_open', severity: 'major', raisedAt: T, clearedAt: T + 60 },
    ],
  },
  {
    name: 'battery oscillating around the threshold: one alarm, not many (hysteresis)',
    steps: [
      m('close', T, { batteryLevel: 1990 }),
      m('close', T + 10, { batteryLevel: 2010 }),
      m('close', T + 20, { batteryLevel: 1995 }),
      m('close', T + 30, { batteryLevel: 2490 }),
      m('close', T + 40, { batteryLevel: 2500 }),
      m('close', T + 50, { batteryLevel: 2400 }),
    ],
    expected: [
      { transition: 'raised', type: 'battery_low', severity: 'warning', raisedAt: T },
      { transition: 'cleared', type: 'battery_low', severity: 'warning', raisedAt: T, clearedAt: T + 40 },
    ],
  },
  {
    name: 'battery below critical: raised critical, or a warning escalated',
    steps: [m('close', T, { batteryLevel: 1500 }), m('close', T + 10, { batteryLevel: 999 }), m('close', T + 20, { batteryLevel: 1500 })],
    expected: [
      { transition: 'raised', type: 'battery_low', severity: 'warning', raisedAt: T },
      { transition: 'escalated', type: 'battery_low', severity: 'critical', raisedAt: T },
    ],
  },
  {
    name: 'a message without a battery level changes no battery alarm',
    steps: [m('close', T, { batteryLevel: 500 }), m('close', T + 10, { batteryLevel: null })],
    expected: [{ transition: 'raised', type: 'battery_low', severity: 'critical', raisedAt: T }],
  },
  {
    name: 'offline from the platform raises silent; the next message in another state clears it',
    steps: [m('close', T), m('offline', T + 100), m('offline', T + 200), m('close', T + 300)],
    expected: [
      { transition: 'raised', type: 'silent', severity: 'major', raisedAt: T + 100 },
      { transition: 'cleared', type: 'silent', severity: 'major', raisedAt: T + 100, clearedAt: T + 300 },
    ],
  },
  {
    name: 'silence, then a message: raised at the deadline, cleared by the message',
    settings: { silenceAfterSeconds: 1000 },
    steps: [m('close', T), { silenceAt: T + 999 }, { silenceAt: T + 5000 }, { silenceAt: T + 6000 }, m('close', T + 7000)],
    expected: [
      { transition: 'raised', type: 'silent', severity: 'major', raisedAt: T + 1000 },
      { transition: 'cleared', type: 'silent', severity: 'major', raisedAt: T + 1000, clearedAt: T + 7000 },
    ],
  },
  {
    name: 'an open cover falling silent: both alarms, each cleared by its own cause',
    settings: { silenceAfterSeconds: 1000 },
    steps: [m('open', T), { silenceAt: T + 2000 }, m('open', T + 3000), m('close', T + 3100)],
    expected: [
      { transition: 'raised', type: 'cover_open', severity: 'major', raisedAt: T },
      { transition: 'raised', type: 'silent', severity: 'major', raisedAt: T + 1000 },
      { transition: 'cleared', type: 'silent', severity: 'major', raisedAt: T + 1000, clearedAt: T + 3000 },
      { transition: 'cleared', type: 'cover_open', severity: 'major', raisedAt: T, clearedAt: T + 3100 },
    ],
  },
];
