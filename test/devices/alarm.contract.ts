import type { Test } from 'tap';
import type { AlarmSettings, AppliedChange } from '../../src/devices/alarms.js';
import type { AlarmEvent, DeviceEvent } from '../../src/devices/events.js';
import type { DeviceStore } from '../../src/devices/store.js';
import { record } from '../helpers/records.js';
import { ALARM_DEFAULTS, alarmCases, type ExpectedTransition } from './alarm.cases.js';
import type { ContractOptions, OpenStore } from './store.contract.js';

// SPEC §12: the alarm half of the store contract. Every store answers to the alarm cases (the
// rows test/devices/alarms.test.ts holds the pure rules to), through its own API: messages through
// apply(), the sweep through sweepAlarms(), silence through markSilent(), operators through
// acknowledgeAlarm() and clearAlarm().

const AT = '2026-06-01T00:00:00.000Z';
const seconds = (iso: string | null): number | undefined => (iso === null ? undefined : Date.parse(iso) / 1000);

function described(e: AlarmEvent): ExpectedTransition {
  const clearedAt = e.transition === 'cleared' && e.alarm.clearedAt !== AT ? seconds(e.alarm.clearedAt) : undefined;
  return { transition: e.transition, type: e.alarm.type, severity: e.alarm.severity, raisedAt: seconds(e.alarm.raisedAt)!, ...(clearedAt === undefined ? {} : { clearedAt }) };
}

const alarmsOf = (events: readonly DeviceEvent[]): AlarmEvent[] => events.filter((e): e is AlarmEvent => e.kind === 'alarm');

async function active(store: DeviceStore, type: AppliedChange['alarm']['type']) {
  const page = await store.listAlarms({ deviceId: 'a', type, status: 'active', limit: 10 });
  if (page.items.length !== 1) throw new Error(`expected one active ${type} alarm, found ${page.items.length}`);
  return page.items[0]!;
}

export function alarmContract(t: Test, name: string, open: OpenStore, options: ContractOptions): void {
  t.test(`${name} store: SPEC §12 alarm cases`, async (t) => {
    for (const c of alarmCases) {
      t.test(c.name, async (t) => {
        const settings: AlarmSettings = { ...ALARM_DEFAULTS, ...c.settings };
        const store = await open(t, { historyLimit: 50, alarms: settings });
        const events: AlarmEvent[] = [];
        let lastSeq = 0;
        const take = (got: readonly DeviceEvent[]): void => {
          for (const e of got) {
            if (e.seq <= lastSeq) throw new Error(`seq ${e.seq} after ${lastSeq}`);
            lastSeq = e.seq;
          }
          events.push(...alarmsOf(got));
        };
        for (const step of c.steps) {
          if ('message' in step) {
            const outcome = await store.apply(step.message, AT);
            if (outcome.kind === 'update') take([outcome.event, ...outcome.alarms]);
          } else if ('sweepAt' in step) {
            take(await store.sweepAlarms(step.sweepAt, 1000, AT));
          } else if ('silenceAt' in step) {
            take(await store.markSilent(step.silenceAt - settings.silenceAfterSeconds, 1000, AT));
          } else if ('clearByHand' in step) {
            const update = await store.clearAlarm((await active(store, step.clearByHand)).alarmId, AT);
            if (update.kind === 'changed') take([update.event]);
          } else {
            const update = await store.acknowledgeAlarm((await active(store, step.acknowledge)).alarmId, step.note ?? null, AT);
            if (update.kind === 'changed') take([update.event]);
          }
        }
        t.same(events.map(described), c.expected);
        for (const e of events) t.same(await store.getAlarm(e.alarm.alarmId) !== undefined, true);
      });
    }
  });

  t.test(`${name} store: alarms are listed newest first, filtered, paged, summed up`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    const T = 1_700_000_000;
    await store.apply(record({ deviceId: 'x', state: 'open', timestamp: T, batteryLevel: 500 }), AT); // cover_open + battery_low critical
    await store.apply(record({ deviceId: 'y', state: 'open', timestamp: T + 10, batteryLevel: 9000 }), AT); // cover_open
    await store.apply(record({ deviceId: 'y', state: 'close', timestamp: T + 20, batteryLevel: 9000 }), AT); // cleared
    await store.apply(record({ deviceId: 'z', state: 'offline', timestamp: T + 5, batteryLevel: 9000 }), AT); // silent
    const all = await store.listAlarms({ limit: 10 });
    t.same(all.items.map((a) => [a.deviceId, a.type, a.status]), [
      ['y', 'cover_open', 'cleared'],
      ['z', 'silent', 'active'],
      ['x', 'battery_low', 'active'],
      ['x', 'cover_open', 'active'],
    ], 'newest raisedAt first; one time: the newest id first');
    t.equal(all.total, 4);
    const first = await store.listAlarms({ limit: 2 });
    const next = await store.listAlarms({ limit: 2, after: first.last! });
    t.same([...first.items, ...next.items].map((a) => a.alarmId), all.items.map((a) => a.alarmId), 'pages meet');
    t.equal(next.last, null);
    t.same((await store.listAlarms({ status: 'active', limit: 10 })).items.map((a) => a.deviceId), ['z', 'x', 'x']);
    t.same((await store.listAlarms({ type: 'battery_low', severity: 'critical', limit: 10 })).total, 1);
    t.same((await store.listAlarms({ deviceId: 'y', limit: 10 })).items.map((a) => a.type), ['cover_open']);
    const x = (await store.listAlarms({ deviceId: 'x', type: 'cover_open', limit: 1 })).items[0]!;
    const acked = await store.acknowledgeAlarm(x.alarmId, 'on it', '2026-06-01T00:01:00.000Z');
    t.equal(acked.kind === 'changed' && acked.event.alarm.note, 'on it');
    t.equal((await store.acknowledgeAlarm(x.alarmId, 'again', AT)).kind, 'unchanged', 'acknowledging is idempotent');
    t.same((await store.listAlarms({ acknowledged: false, limit: 10 })).total, 3);
    t.equal((await store.acknowledgeAlarm('a999999', null, AT)).kind, 'unknown');
    t.equal((await store.clearAlarm('nope', AT)).kind, 'unknown');
    t.same((await store.summary()).alarms, {
      active: 3,
      unacknowledged: 3,
      byType: { cover_open: 1, battery_low: 1, silent: 1 },
      bySeverity: {
        cover_open: { warning: 0, major: 1, critical: 0 },
        battery_low: { warning: 0, major: 0, critical: 1 },
        silent: { warning: 0, major: 1, critical: 0 },
      },
    });
    const cleared = await store.clearAlarm(x.alarmId, AT);
    t.same(cleared.kind === 'changed' && [cleared.event.alarm.status, cleared.event.alarm.acknowledged], ['cleared', true], 'the acknowledgement stays through the clear');
    t.equal((await store.clearAlarm(x.alarmId, AT)).kind, 'unchanged');
    t.equal((await store.summary()).alarms.active, 2);
  });

  t.test(`${name} store: a device keeps HISTORY_LIMIT cleared alarms, the newest, and every active one`, async (t) => {
    const store = await open(t, { historyLimit: 3 });
    const T = 1_700_000_000;
    for (let i = 0; i < 10; i++) {
      await store.apply(record({ deviceId: 'f', state: 'open', timestamp: T + 2 * i }), AT);
      await store.apply(record({ deviceId: 'f', state: 'close', timestamp: T + 2 * i + 1 }), AT);
    }
    await store.apply(record({ deviceId: 'f', state: 'open', timestamp: T + 100 }), AT);
    const kept = await store.listAlarms({ deviceId: 'f', limit: 100 });
    t.same(kept.items.map((a) => [a.status, Date.parse(a.raisedAt) / 1000 - T]), [['active', 100], ['cleared', 18], ['cleared', 16], ['cleared', 14]]);
    t.equal((await store.summary()).alarms.unacknowledged, 4, 'the forgotten ones no longer count');
  });

  t.test(`${name} store: an alarm carries the device's registry entry`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    const entry = { deviceId: 'm', name: 'Market Sq', address: 'Market Sq 1', latitude: 1, longitude: 2, zone: 'north', tags: [] };
    await store.putEntries([entry]);
    const outcome = await store.apply(record({ deviceId: 'm', state: 'open', timestamp: 1_700_000_000 }), AT);
    t.same(outcome.kind === 'update' && outcome.alarms[0]?.alarm.meta, entry);
    t.same((await store.listAlarms({ zone: 'north', limit: 10 })).total, 1, 'and its zone filters the alarms');
  });

  if (options.reopen !== undefined) {
    t.test(`${name} store: alarms and hand-cleared causes survive a restart`, async (t) => {
      const first = await open(t, { historyLimit: 50 });
      const T = 1_700_000_000;
      const raised = await first.apply(record({ deviceId: 'a', state: 'open', timestamp: T }), AT);
      const alarm = raised.kind === 'update' ? raised.alarms[0]!.alarm : null;
      await first.apply(record({ deviceId: 'b', state: 'close', timestamp: T, batteryLevel: 100 }), AT);
      await first.clearAlarm((await first.listAlarms({ deviceId: 'b', limit: 1 })).items[0]!.alarmId, AT);
      const acked = await first.acknowledgeAlarm(alarm!.alarmId, 'crew on site', AT);
      const store = await options.reopen!(t, first);
      t.same(await store.getAlarm(alarm!.alarmId), acked.kind === 'changed' ? acked.event.alarm : null, 'the acknowledgement and its note survive a restart');
      t.equal((await store.summary()).alarms.active, 1);
      const heartbeat = await store.apply(record({ deviceId: 'a', state: 'open', timestamp: T + 10 }), AT);
      t.same(heartbeat.kind === 'update' && heartbeat.alarms, [], 'the open alarm is still there: no second one');
      const low = await store.apply(record({ deviceId: 'b', state: 'close', timestamp: T + 10, batteryLevel: 100 }), AT);
      t.same(low.kind === 'update' && low.alarms, [], 'the hand-cleared battery stays ignored');
      const recent = await store.recentEvents(100);
      t.same(alarmsOf(recent).map((e) => [e.transition, e.alarm.alarmId]), [['raised', alarm!.alarmId], ['raised', 'a4'], ['cleared', 'a4'], ['acknowledged', alarm!.alarmId]], 'alarm events replay after a restart');
    });
  }
}
