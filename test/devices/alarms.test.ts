import t from 'tap';
import {
  acknowledge,
  applyChanges,
  clearByHand,
  NO_ALARMS,
  onMessage,
  onSilent,
  onTime,
  type AlarmSettings,
  type AppliedChange,
  type DeviceAlarms,
} from '../../src/devices/alarms.js';
import { apply, markSilent } from '../../src/devices/rules.js';
import type { Device } from '../../src/devices/types.js';
import { ALARM_DEFAULTS, alarmCases, type AlarmCase, type ExpectedTransition } from './alarm.cases.js';

// SPEC §12: the pure alarm rules against their cases, driven the way a store drives them: each
// accepted update through onMessage, each sweep through onTime, each new silence through onSilent.

const AT = '2026-01-01T00:00:00.000Z';
const seconds = (iso: string | null): number | undefined => (iso === null ? undefined : Date.parse(iso) / 1000);

function run(c: AlarmCase): { transitions: AppliedChange[]; alarms: DeviceAlarms } {
  const settings: AlarmSettings = { ...ALARM_DEFAULTS, ...c.settings };
  let device: Device | undefined;
  let alarms = NO_ALARMS;
  let n = 0;
  const transitions: AppliedChange[] = [];
  const take = (changes: Parameters<typeof applyChanges>[2]): void => {
    const done = applyChanges('a', alarms, changes, null, AT, () => `a${++n}`);
    alarms = done.after;
    transitions.push(...done.applied);
  };
  for (const step of c.steps) {
    if ('message' in step) {
      const outcome = apply(device, step.message, AT);
      if (outcome.kind !== 'update') continue; // late and duplicate messages touch no alarm
      take(onMessage(device, outcome.device, alarms, settings));
      device = outcome.device;
    } else if ('sweepAt' in step) {
      take(onTime(device!, alarms, settings, step.sweepAt));
    } else if ('silenceAt' in step) {
      if (device!.silent || device!.timestamp >= step.silenceAt - settings.silenceAfterSeconds) continue;
      device = markSilent(device!);
      take(onSilent(device, alarms, settings));
    } else if ('clearByHand' in step) {
      const alarm = clearByHand(alarms.active[step.clearByHand]!, AT)!;
      const active = { ...alarms.active };
      delete active[step.clearByHand];
      alarms = { active, suppressed: new Set([...alarms.suppressed, step.clearByHand]) };
      transitions.push({ transition: 'cleared', alarm });
    } else {
      const current = alarms.active[step.acknowledge]!;
      const alarm = acknowledge(current, step.note ?? null, AT);
      if (alarm === null) continue;
      alarms = { ...alarms, active: { ...alarms.active, [step.acknowledge]: alarm } };
      transitions.push({ transition: 'acknowledged', alarm });
    }
  }
  return { transitions, alarms };
}

/** A transition as the cases write it. */
export function described({ transition, alarm }: AppliedChange): ExpectedTransition {
  const clearedAt = transition === 'cleared' && alarm.clearedAt !== AT ? seconds(alarm.clearedAt) : undefined;
  return { transition, type: alarm.type, severity: alarm.severity, raisedAt: seconds(alarm.raisedAt)!, ...(clearedAt === undefined ? {} : { clearedAt }) };
}

for (const c of alarmCases) {
  t.test(c.name, async (t) => {
    t.same(run(c).transitions.map(described), c.expected);
  });
}

t.test('one cause, one alarm: each raise its own id; a raise while one is active changes nothing', async (t) => {
  const c = alarmCases.find((x) => x.name.startsWith('cleared by hand'))!;
  const { transitions } = run(c);
  const raised = transitions.filter((x) => x.transition === 'raised').map((x) => x.alarm.alarmId);
  t.equal(new Set(raised).size, raised.length, 'a raise after the clear opens a new alarm');
  const again = applyChanges('a', run(alarmCases[1]!).alarms, [{ kind: 'raise', type: 'cover_open', severity: 'major', raisedAt: AT }], null, AT, () => 'x');
  t.same(again.applied, [], 'a raise while one is uncleared changes nothing');
});

t.test('every key of an alarm is present, null where unused', async (t) => {
  const { transitions } = run(alarmCases[0]!);
  t.same(Object.keys(transitions[0]!.alarm).sort(), [
    'acknowledged', 'acknowledgedAt', 'alarmId', 'clearedAt', 'clearedReceivedAt', 'deviceId', 'meta', 'note', 'raisedAt', 'raisedReceivedAt', 'severity', 'status', 'type',
  ]);
  t.same([transitions[0]!.alarm.status, transitions[1]!.alarm.status], ['active', 'cleared']);
  t.equal(transitions[1]!.alarm.clearedReceivedAt, AT, 'the bridge time beside the source time');
});
