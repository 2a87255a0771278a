import t from 'tap';
import type { DeviceEvent } from '../../src/devices/events.js';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';

// Issue 17: DeviceService.acceptBatch stores a batch in one write and publishes its events in seq
// order, counting each outcome as accept() would; a batch the store refuses publishes nothing.

t.test('acceptBatch: one write, events in seq order, counts as one by one', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  const heard: DeviceEvent[] = [];
  app.devices.events.subscribe((e) => heard.push(e));
  const now = Date.now();
  const outcomes = await app.devices.acceptBatch([
    { record: record({ deviceId: 'a', state: 'close', timestamp: 10 }), receivedAtMs: now },
    { record: record({ deviceId: 'a', state: 'open', timestamp: 11 }), receivedAtMs: now }, // a change, and a cover_open alarm
    { record: record({ deviceId: 'a', state: 'open', timestamp: 11 }), receivedAtMs: now }, // a duplicate in the same batch
    { record: record({ deviceId: 'a', state: 'close', timestamp: 5 }), receivedAtMs: now }, // late
  ]);
  t.same(outcomes.map((o) => o.kind), ['update', 'update', 'duplicate', 'late']);
  app.devices.events.flush();
  t.same(heard.map((e) => [e.seq, e.kind]), [[1, 'update'], [2, 'update'], [3, 'alarm']], 'every event once, in seq order');
  t.same(app.devices.counts, { accepted: 2, duplicate: 1, late: 1 });
});

t.test('a batch the store refuses publishes nothing and counts nothing', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  app.devices.store.applyBatch = async () => {
    throw new Error('disk full');
  };
  const heard: DeviceEvent[] = [];
  app.devices.events.subscribe((e) => heard.push(e));
  await t.rejects(app.devices.acceptBatch([{ record: record({ deviceId: 'b' }), receivedAtMs: Date.now() }]), /disk full/);
  app.devices.events.flush();
  t.same(heard, []);
  t.same(app.devices.counts, { accepted: 0, duplicate: 0, late: 0 });
});
