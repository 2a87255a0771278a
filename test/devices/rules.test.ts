import t from 'tap';
import { apply, applyWithHistory, compareIds, historyEntry, insertHistory, type Outcome } from '../../src/devices/rules.js';
import type { Device, HistoryEntry } from '../../src/devices/types.js';
import { record } from '../helpers/records.js';
import { ruleCases } from './rules.cases.js';

const AT = '2026-01-01T00:00:00.000Z';
const iso = (seconds: number): string => new Date(seconds * 1000).toISOString();

for (const c of ruleCases) {
  t.test(c.name, async (t) => {
    let current: Device | undefined;
    const history: HistoryEntry[] = [];
    for (const rec of c.history) {
      const outcome = applyWithHistory(current, history, rec, AT, 50);
      if (outcome.kind === 'update') current = outcome.device;
    }
    const outcome: Outcome = applyWithHistory(current, history, c.message, AT, 50);
    t.equal(outcome.kind, c.expected.kind);
    if (outcome.kind !== 'update' || c.expected.kind !== 'update') return;
    t.equal(outcome.changed, c.expected.changed, 'changed');
    t.equal(outcome.previousState, c.expected.previousState, 'event previousState');
    t.equal(outcome.device.state, c.expected.state, 'state');
    t.equal(outcome.device.previousState, c.expected.devicePreviousState, 'device previousState');
    t.equal(outcome.device.lastChangedAt, iso(c.expected.lastChangedAt), 'lastChangedAt');
    t.equal(outcome.device.messages, c.expected.messages, 'messages');
    t.equal(outcome.device.lastSeenAt, iso(c.message.timestamp), 'lastSeenAt is the message timestamp');
    t.equal(outcome.device.silent, false, 'an accepted message clears silence');
  });
}

t.test('a device has every field, null where the message had none', async (t) => {
  const rec = record({ batteryLevel: null, imei: null, iccid: null, csq: null, appId: null });
  const outcome = apply(undefined, rec, AT);
  if (outcome.kind !== 'update') throw new Error('expected an update');
  t.same(Object.keys(outcome.device).sort(), [
    'appId', 'attributes', 'batteryLevel', 'csq', 'deviceId', 'iccid', 'imei', 'lastChangedAt',
    'lastSeenAt', 'messages', 'meta', 'previousState', 'receivedAt', 'silent', 'state', 'timestamp',
  ]);
  t.equal(outcome.device.batteryLevel, null);
  t.equal(outcome.device.receivedAt, AT);
});

t.test('an update never mutates the device it replaces', async (t) => {
  const first = apply(undefined, record({ state: 'close', timestamp: 10 }), AT);
  if (first.kind !== 'update') throw new Error('expected an update');
  const frozen = Object.freeze(first.device);
  const second = apply(frozen, record({ state: 'open', timestamp: 20 }), AT);
  t.equal(second.kind, 'update');
  t.equal(frozen.state, 'close');
});

t.test('history: newest first by timestamp, bounded, late entries in place', async (t) => {
  const history: HistoryEntry[] = [];
  const entry = (ts: number, state = 'open') => historyEntry(record({ timestamp: ts, state }), AT, 'update');
  for (const ts of [10, 20, 30]) t.ok(insertHistory(history, entry(ts), 3));
  t.same(history.map((e) => e.timestamp), [30, 20, 10]);
  t.ok(insertHistory(history, { ...entry(25), kind: 'late' }, 3), 'a late entry goes in its place');
  t.same(history.map((e) => e.timestamp), [30, 25, 20], 'the oldest falls out');
  t.ok(insertHistory(history, entry(5), 3), 'older than all kept: counted, not kept');
  t.same(history.map((e) => e.timestamp), [30, 25, 20]);
  t.notOk(insertHistory(history, entry(25), 3), 'the same timestamp and state again is a duplicate');
  t.ok(insertHistory(history, entry(25, 'close'), 3), 'same timestamp, other state: kept, newer arrival first');
  t.same(history.map((e) => `${e.timestamp}${e.state}`), ['30open', '25close', '25open']);
});

t.test('compareIds is UTF-8 byte order', async (t) => {
  const ids = ['\u{1F600}', '\uFF5E', '\uE000', '\uD7FF', 'a', 'ab', '', '\u{10FFFF}', '\u{10000}'];
  const byBytes = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  t.same([...ids].sort(compareIds), byBytes);
});
