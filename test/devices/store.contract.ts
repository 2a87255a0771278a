import type { Test } from 'tap';
import fc from 'fast-check';
import type { DeviceEvent } from '../../src/devices/events.js';
import type { DeviceStore, StoreOutcome } from '../../src/devices/store.js';
import { record } from '../helpers/records.js';
import { outboxContract } from './outbox.contract.js';
import { registryContract } from './registry.contract.js';
import { alarmContract } from './alarm.contract.js';
import type { AlarmSettings } from '../../src/devices/alarms.js';
import { ruleCases } from './rules.cases.js';

/** When the bridge marked a device silent (its clock). */
const MARKED_AT = '2026-01-01T00:00:00.000Z';

// One suite for every DeviceStore (memory, SQLite; Redis next), as aedes-persistence's
// abstract.js: a new store is finished when this passes. The device half is here, the outbox
// half (webhooks/outbox.ts, which DeviceStore extends) in test/webhooks/outbox.contract.ts.

export interface StoreOptions {
  /** HISTORY_LIMIT: entries kept per device. */
  historyLimit: number;
  /** WEBHOOK_URLS: each stateChanged and silent event is enqueued for each (none when absent). */
  webhookUrls?: string[];
  /** SPEC §12 thresholds; null: no alarms (the device half's cases count their events without them); the defaults when absent. */
  alarms?: AlarmSettings | null;
}

/** A fresh, empty store with these options, closed when `t` ends. */
export type OpenStore = (t: Test, options: StoreOptions) => Promise<DeviceStore>;

/** Closes `store` and opens its data again with the options it was opened with: a restart. */
export type ReopenStore = (t: Test, store: DeviceStore) => Promise<DeviceStore>;

export interface ContractOptions {
  /**
   * A durable store's restart. Without it the cases about what survives a restart are skipped,
   * and recentEvents() may keep nothing (the event stream's own buffer serves replay then).
   */
  reopen?: ReopenStore;
  /**
   * Checks this store is known to fail, by key, with the reason: they still run, and a failure
   * is reported as a TODO instead of failing the suite. Each key names one check of a case.
   */
  todo?: Record<string, string>;
}

const AT = '2026-01-01T00:00:00.000Z';
const iso = (seconds: number): string => new Date(seconds * 1000).toISOString();

/** What an event says, without its cached wire forms. */
function eventFacts(e: DeviceEvent): Record<string, unknown> {
  return e.kind === 'update'
    ? { seq: e.seq, kind: e.kind, device: e.device, previousState: e.previousState, changed: e.changed }
    : { seq: e.seq, kind: e.kind, device: e.device };
}

export function storeContract(t: Test, name: string, openWithAlarms: OpenStore, options: ContractOptions = {}): void {
  // the device half, the outbox and the registry count their events without alarms; the alarm half has its own
  const open: OpenStore = (t, o) => openWithAlarms(t, { alarms: null, ...o });
  t.test(`${name} store: SPEC §4 rules`, async (t) => {
    for (const c of ruleCases) {
      t.test(c.name, async (t) => {
        const store = await open(t, { historyLimit: 50 });
        for (const rec of c.history) await store.apply(rec, AT);
        const before = await store.get(c.message.deviceId);
        const outcome = await store.apply(c.message, AT);
        t.equal(outcome.kind, c.expected.kind);
        const after = await store.get(c.message.deviceId);
        if (outcome.kind !== 'update' || c.expected.kind !== 'update') {
          t.same(after, before, 'the latest state is untouched');
          return;
        }
        t.equal(outcome.event.changed, c.expected.changed);
        t.equal(outcome.event.previousState, c.expected.previousState);
        t.equal(outcome.event.device?.previousState, c.expected.devicePreviousState);
        t.equal(outcome.event.device?.lastChangedAt, iso(c.expected.lastChangedAt));
        t.equal(outcome.event.device?.messages, c.expected.messages);
        t.same(after, outcome.event.device, 'the store holds what the event carries');
      });
    }
  });

  t.test(`${name} store: seq increases across devices, one per event`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    t.equal(await store.lastSeq(), 0);
    const seqs: number[] = [];
    const push = (o: StoreOutcome): void => {
      if (o.kind === 'update') seqs.push(o.event.seq);
    };
    push(await store.apply(record({ deviceId: 'a', timestamp: 10 }), AT));
    push(await store.apply(record({ deviceId: 'b', timestamp: 10 }), AT));
    push(await store.apply(record({ deviceId: 'a', timestamp: 10 }), AT)); // duplicate: no seq
    push(await store.apply(record({ deviceId: 'a', timestamp: 5 }), AT)); // late: no seq
    push(await store.apply(record({ deviceId: 'a', timestamp: 20 }), AT));
    t.same(seqs, [1, 2, 3]);
    const silent = await store.markSilent(15, 100, MARKED_AT);
    t.same(silent.map((e) => [e.kind, e.seq, e.deviceId]), [['silent', 4, 'b']]);
    t.equal(await store.lastSeq(), 4);
  });

  t.test(`${name} store: list in deviceId order, filters, pages`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    const ids = ['m', 'b', 'z', 'a', 'k', 'c', 'y'];
    for (const [i, id] of ids.entries()) {
      await store.apply(record({ deviceId: id, state: i % 2 === 0 ? 'open' : 'close', timestamp: 100 + i }), AT);
    }
    const all = await store.list({ limit: 100 });
    t.same(all.items.map((d) => d.deviceId), [...ids].sort());
    t.equal(all.total, ids.length);
    t.equal(all.lastId, null, 'one page: no next');

    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const p = await store.list({ limit: 3, after });
      t.equal(p.total, ids.length, 'total counts all pages');
      seen.push(...p.items.map((d) => d.deviceId));
      if (p.lastId === null) break;
      after = p.lastId;
    }
    t.same(seen, [...ids].sort(), 'pages cover every device once');

    await store.apply(record({ deviceId: 'd', state: 'open', timestamp: 200 }), AT);
    const afterC = await store.list({ limit: 2, after: 'c' });
    t.same(afterC.items.map((d) => d.deviceId), ['d', 'k'], 'a device added later takes its place');

    const opened = await store.list({ state: 'open', limit: 100 });
    t.same(opened.items.map((d) => d.deviceId), ['d', 'k', 'm', 'y', 'z']);
    t.equal(opened.total, 5);

    await store.markSilent(103, 100, MARKED_AT); // ids applied at timestamps 100..102: m, b, z
    const silent = await store.list({ silent: true, limit: 100 });
    t.same(silent.items.map((d) => d.deviceId), ['b', 'm', 'z']);
    t.equal(silent.total, 3);
    const loud = await store.list({ silent: false, limit: 100 });
    t.equal(loud.total, 5);
    const silentOpen = await store.list({ silent: true, state: 'open', limit: 100 });
    t.same(silentOpen.items.map((d) => d.deviceId), ['m', 'z']);
    t.equal(silentOpen.total, 2);
    t.same((await store.list({ state: 'nope', limit: 10 })).total, 0);
  });

  t.test(`${name} store: history newest first, bounded, with late entries`, async (t) => {
    const store = await open(t, { historyLimit: 3 });
    t.equal(await store.history('x', 10), undefined, 'unknown device');
    for (const ts of [10, 20, 30, 40]) await store.apply(record({ deviceId: 'x', timestamp: ts, state: ts % 20 ? 'open' : 'close' }), AT);
    await store.apply(record({ deviceId: 'x', timestamp: 35, state: 'late' }), AT);
    const history = await store.history('x', 10);
    t.same(history?.map((e) => [e.timestamp, e.kind]), [[40, 'update'], [35, 'late'], [30, 'update']]);
    t.same((await store.history('x', 1))?.map((e) => e.timestamp), [40], 'limit');
  });

  t.test(`${name} store: silence`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    await store.apply(record({ deviceId: 'old', timestamp: 100 }), AT);
    await store.apply(record({ deviceId: 'new', timestamp: 200 }), AT);
    const events = await store.markSilent(150, 100, MARKED_AT);
    t.same(events.map((e) => e.deviceId), ['old']);
    t.equal(events[0]?.device?.silent, true);
    t.same(await store.markSilent(150, 100, MARKED_AT), [], 'one silent event per silence');
    t.same(await store.summary(), { devices: 2, byState: { close: 2 }, silent: 1, registry: { entries: 0, neverSeen: 0 }, alarms: await noAlarms(store) });
    const back = await store.apply(record({ deviceId: 'old', timestamp: 300 }), AT);
    t.equal(back.kind === 'update' && back.event.device?.silent, false, 'the next message clears it');
    t.equal((await store.summary()).silent, 0);
    t.equal((await store.get('old'))?.silent, false);
  });

  t.test(`${name} store: silence in batches`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    for (let i = 0; i < 5; i++) await store.apply(record({ deviceId: `d${i}`, timestamp: 100 }), AT);
    t.equal((await store.markSilent(200, 2, MARKED_AT)).length, 2);
    t.equal((await store.markSilent(200, 2, MARKED_AT)).length, 2);
    t.equal((await store.markSilent(200, 2, MARKED_AT)).length, 1, 'fewer than the limit: none left');
    t.equal((await store.markSilent(200, 2, MARKED_AT)).length, 0);
    t.equal((await store.summary()).silent, 5);
  });

  t.test(`${name} store: ids in code point order (UTF-8 byte order)`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    // U+FF5E (3 UTF-8 bytes) sorts before U+1F600 (4 bytes), though its UTF-16 unit is larger
    const ids = ['\u{1F600}', '\uFF5E', 'z', 'A', '\u00e9', '10', '9'];
    for (const deviceId of ids) await store.apply(record({ deviceId }), AT);
    const expected = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    t.same((await store.list({ limit: 100 })).items.map((d) => d.deviceId), expected);
    const page = await store.list({ limit: 100, after: '\uFF5E' });
    t.same(page.items.map((d) => d.deviceId), ['\u{1F600}'], 'a cursor resumes in the same order');
  });

  t.test(`${name} store: summary counts states`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    await store.apply(record({ deviceId: 'a', state: 'open', timestamp: 1 }), AT);
    await store.apply(record({ deviceId: 'b', state: 'open', timestamp: 1 }), AT);
    await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 2 }), AT);
    t.same(await store.summary(), { devices: 2, byState: { open: 1, close: 1 }, silent: 0, registry: { entries: 0, neverSeen: 0 }, alarms: await noAlarms(store) });
    await store.apply(record({ deviceId: 'b', state: 'close', timestamp: 2 }), AT);
    t.same((await store.summary()).byState, { close: 2 }, 'a state with no device is gone');
  });

  t.test(`${name} store: keys like __proto__ stay data`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    const attributes = JSON.parse('{"DeviceID":"__proto__","State":"open","__proto__":{"polluted":true},"constructor":"x"}');
    await store.apply(record({ deviceId: '__proto__', state: 'open', attributes }), AT);
    await store.apply(record({ deviceId: 'constructor', state: 'open' }), AT);
    t.equal((await store.get('__proto__'))?.deviceId, '__proto__');
    t.equal((await store.get('hasOwnProperty')), undefined);
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    t.equal((await store.list({ limit: 10 })).total, 2);
  });

  t.test(`${name} store: recentEvents, the newest events it emitted, oldest first, at most limit`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    t.same(await store.recentEvents(10), [], 'nothing emitted, nothing kept');
    const emitted = await emitSome(store);
    t.same(emitted.map((e) => [e.seq, e.kind]), [[1, 'update'], [2, 'update'], [3, 'update'], [4, 'update'], [5, 'silent']]);
    for (const limit of [0, 1, 3, 5, 100]) {
      const recent = await store.recentEvents(limit);
      t.ok(recent.length <= limit, `limit ${limit}: ${recent.length} events`);
      // a suffix of what it emitted: the newest, in seq order, no gap, nothing it did not emit
      t.same(recent.map(eventFacts), emitted.slice(emitted.length - recent.length).map(eventFacts), `limit ${limit}: the newest, oldest first`);
      if (options.reopen) t.equal(recent.length, Math.min(limit, emitted.length), `limit ${limit}: a durable store keeps them`);
    }
  });

  t.test(
    `${name} store: recentEvents after a restart`,
    { skip: options.reopen ? false : `${name} keeps nothing across a restart: no reopen` },
    async (t) => {
      const first = await open(t, { historyLimit: 50 });
      const emitted = await emitSome(first);
      const store = await options.reopen!(t, first);
      t.same((await store.recentEvents(100)).map(eventFacts), emitted.map(eventFacts), 'the events of before the restart, as emitted');
      t.equal(await store.lastSeq(), 5);
      const next = await store.apply(record({ deviceId: 'c', timestamp: 40 }), AT);
      if (next.kind === 'update') emitted.push(next.event);
      t.same((await store.recentEvents(3)).map(eventFacts), emitted.slice(-3).map(eventFacts), 'and new ones follow them, no gap');
    },
  );

  t.test(`${name} store: a batch gives what the same messages one by one give (issue 17)`, async (t) => {
    const messages = fc.array(
      fc.record({
        deviceId: fc.constantFrom('a', 'b', 'c'),
        state: fc.constantFrom('open', 'close', 'offline'),
        timestamp: fc.integer({ min: 100, max: 110 }),
        batteryLevel: fc.constantFrom(900, 1900, 2600, 9000),
      }),
      { maxLength: 25 },
    );
    const sizes = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 10 });
    await fc.assert(
      fc.asyncProperty(messages, sizes, async (ms, cuts) => {
        const records = ms.map((m) => record(m));
        const single = await openWithAlarms(t, { historyLimit: 5 });
        const batched = await openWithAlarms(t, { historyLimit: 5 });
        const one: unknown[] = [];
        for (const r of records) one.push(facts(await single.apply(r, AT)));
        const many: unknown[] = [];
        for (let i = 0, c = 0; i < records.length; i += cuts[c++ % cuts.length]!) {
          const batch = records.slice(i, i + cuts[c % cuts.length]!);
          many.push(...(await batched.applyBatch(batch.map((r) => ({ record: r, receivedAt: AT })))).map(facts));
        }
        t.same(many, one);
        t.same(await batched.summary(), await single.summary());
        t.same((await batched.list({ limit: 10 })).items, (await single.list({ limit: 10 })).items);
        t.same(await batched.history('a', 10), await single.history('a', 10));
        await single.close();
        await batched.close();
      }),
      { numRuns: 40 },
    );
    t.same(await (await open(t, { historyLimit: 5 })).applyBatch([]), [], 'an empty batch is nothing');
  });

  outboxContract(t, name, open, options);
  registryContract(t, name, open, options);
  alarmContract(t, name, openWithAlarms, options);
}

/** What an outcome says, events without their cached wire forms. */
function facts(o: StoreOutcome): unknown {
  if (o.kind !== 'update') return o;
  return { kind: o.kind, event: eventFacts(o.event), alarms: o.alarms.map((a) => ({ seq: a.seq, transition: a.transition, alarm: a.alarm })) };
}

/** The summary's alarms of a store with none (alarms off). */
async function noAlarms(store: DeviceStore): Promise<unknown> {
  const { alarms } = await store.summary();
  if (alarms.active !== 0 || alarms.unacknowledged !== 0) throw new Error('a store without alarms counts some');
  return alarms;
}

/** Emits events 1-5 (four updates, a heartbeat among them, then a silence; a duplicate and a late message emit none) and returns them. */
async function emitSome(store: DeviceStore): Promise<DeviceEvent[]> {
  const emitted: DeviceEvent[] = [];
  const push = (o: StoreOutcome): void => {
    if (o.kind === 'update') emitted.push(o.event);
  };
  push(await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 10 }), AT)); // new
  push(await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 20 }), AT)); // heartbeat: an event too
  push(await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 20 }), AT)); // duplicate: none
  push(await store.apply(record({ deviceId: 'a', state: 'open', timestamp: 15 }), AT)); // late: none
  push(await store.apply(record({ deviceId: 'b', state: 'open', timestamp: 10 }), AT)); // new
  push(await store.apply(record({ deviceId: 'a', state: 'open', timestamp: 30 }), AT)); // change
  emitted.push(...(await store.markSilent(25, 100, MARKED_AT))); // b
  return emitted;
}
