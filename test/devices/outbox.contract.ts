import type { Test } from 'tap';
import type { DeviceEvent } from '../../src/devices/events.js';
import type { DeviceStore, StoreOutcome } from '../../src/devices/store.js';
import { deviceJson } from '../../src/devices/wire.js';
import type { Delivery } from '../../src/devices/outbox.js';
import type { ContractOptions, OpenStore } from './store.contract.js';
import { record } from '../helpers/records.js';

/** When the bridge marked a device silent (its clock). */
const MARKED_AT = '2026-01-01T00:00:00.000Z';

// The outbox half of the store contract (DeviceStore extends Outbox, src/webhooks/outbox.ts): run
// by storeContract() for every store. The store enqueues (apply, markSilent) and the senders of
// webhooks/delivery.ts read and settle: dueDeliveries, nextDueAt, deliveryDone (delivered, or
// abandoned after the last attempt), deliveryRetry. Disabling a URL (410 Gone) is the sender's:
// the outbox keeps that URL's deliveries pending, and the cases below hold it to that.

const A = 'http://a.example/hook';
const B = 'http://b.example/hook';
const AT = '2026-01-01T00:00:00.000Z';

interface Body {
  type: string;
  timestamp: string;
  data: { seq: number; device: unknown; previousState: string | null };
}

const bodyOf = (d: Delivery): Body => JSON.parse(d.body) as Body;
const seqs = (ds: Delivery[]): number[] => ds.map((d) => d.seq);

/** The reason of a known failure (ContractOptions.todo), or false: an assertion's `todo` option. */
const knownFailure = (options: ContractOptions, key: string): string | false => options.todo?.[key] ?? false;

export function outboxContract(t: Test, name: string, open: OpenStore, options: ContractOptions): void {
  t.test(`${name} store: the outbox gets a delivery per webhook URL for each state change and silence, with the event`, async (t) => {
    const store = await open(t, { historyLimit: 50, webhookUrls: [A, B] });
    t.equal(await store.pendingDeliveries(), 0);
    t.same(await store.dueDeliveries(A, Date.now(), 10), []);
    t.equal(await store.nextDueAt(A), null, 'nothing pending: no next');

    const events: DeviceEvent[] = [];
    // each check right after the write returns: the deliveries are stored with the event, not after it
    const step = async (outcome: StoreOutcome | DeviceEvent[], pending: number, what: string): Promise<void> => {
      if (Array.isArray(outcome)) events.push(...outcome);
      else if (outcome.kind === 'update') events.push(outcome.event);
      t.equal(await store.pendingDeliveries(), pending, what);
    };
    await step(await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 10 }), AT), 2, 'a new device: a state change, one per URL');
    await step(await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 20 }), AT), 2, 'a heartbeat: none');
    await step(await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 20 }), AT), 2, 'a duplicate: none');
    await step(await store.apply(record({ deviceId: 'a', state: 'open', timestamp: 15 }), AT), 2, 'a late message: none');
    await step(await store.apply(record({ deviceId: 'a', state: 'open', timestamp: 30 }), AT), 4, 'a state change');
    await step(await store.markSilent(100, 100, MARKED_AT), 6, 'a silence');
    t.same(events.map((e) => [e.seq, e.kind]), [[1, 'update'], [2, 'update'], [3, 'update'], [4, 'silent']]);

    const now = Date.now();
    const dueA = await store.dueDeliveries(A, now, 10);
    const dueB = await store.dueDeliveries(B, now, 10);
    t.same(seqs(dueA), [1, 3, 4], 'due at once, in the order of their events');
    t.same(seqs(dueB), [1, 3, 4]);
    t.ok(dueA.every((d) => d.url === A && d.attempts === 0 && d.nextAttemptAt <= now), 'for its URL, not attempted yet');
    t.ok((await store.nextDueAt(A))! <= now, 'the next is due now');
    t.same(dueB.map((d) => d.body), dueA.map((d) => d.body), 'the same bytes for every URL');
    t.equal(new Set([...dueA, ...dueB].map((d) => d.id)).size, 6, 'every delivery its own id');

    const [changed, moved, silent] = dueA.map(bodyOf);
    const device = (e: DeviceEvent): unknown => JSON.parse(deviceJson(e.device!));
    t.same(changed, { type: 'device.state_changed', timestamp: AT, data: { seq: 1, device: device(events[0]!), previousState: null } });
    t.same(moved, { type: 'device.state_changed', timestamp: AT, data: { seq: 3, device: device(events[2]!), previousState: 'close' } });
    t.equal(silent!.type, 'device.silent');
    t.same(silent!.data, { seq: 4, device: device(events[3]!), previousState: 'open' }, 'a silence: previousState is the state it fell silent in');
    t.equal(new Date(silent!.timestamp).toISOString(), silent!.timestamp, 'an ISO 8601 timestamp');
  });

  t.test(`${name} store: the outbox stays empty without webhook URLs`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    await store.apply(record({ deviceId: 'a', state: 'close', timestamp: 10 }), AT);
    await store.apply(record({ deviceId: 'a', state: 'open', timestamp: 20 }), AT);
    await store.markSilent(100, 100, MARKED_AT);
    t.equal(await store.pendingDeliveries(), 0);
    t.same(await store.dueDeliveries(A, Date.now(), 10), []);
    t.equal(await store.nextDueAt(A), null);
  });

  t.test(`${name} store: the outbox gives due deliveries of one URL, oldest first, up to the limit`, async (t) => {
    const store = await open(t, { historyLimit: 50, webhookUrls: [A] });
    for (let i = 0; i < 5; i++) await store.apply(record({ deviceId: `d${i}` }), AT);
    const now = Date.now();
    t.same(seqs(await store.dueDeliveries(A, now, 2)), [1, 2], 'the limit');
    t.same(seqs(await store.dueDeliveries(A, now, 10)), [1, 2, 3, 4, 5], 'fewer than the limit: all');
    t.same(await store.dueDeliveries(B, now, 10), [], 'only its URL');
    t.same(await store.dueDeliveries(A, now, 0), [], 'a limit of 0', { todo: knownFailure(options, 'a limit of 0') });
    t.same(seqs(await store.dueDeliveries(A, now, 2)), [1, 2], 'reading settles nothing: the same again');
  });

  t.test(`${name} store: the outbox holds a retried delivery until its time, then in the order they fell due`, async (t) => {
    const store = await open(t, { historyLimit: 50, webhookUrls: [A] });
    for (const id of ['a', 'b', 'c', 'd']) await store.apply(record({ deviceId: id }), AT);
    const now = Date.now();
    const [d1, d2, d3, d4] = await store.dueDeliveries(A, now, 10);
    await store.deliveryRetry(d1!.id, 1, now + 60_000);
    await store.deliveryRetry(d2!.id, 2, now + 30_000);
    t.same(seqs(await store.dueDeliveries(A, now, 10)), [3, 4], 'a retry is not due before its time');
    t.ok((await store.nextDueAt(A))! <= now, 'the others are still due now');
    await store.deliveryDone(d3!.id);
    await store.deliveryDone(d4!.id);
    t.equal(await store.nextDueAt(A), now + 30_000, 'the next due: the soonest retry');
    t.same(await store.dueDeliveries(A, now + 29_999, 10), []);
    t.same(await store.dueDeliveries(A, now + 30_000, 10), [{ ...d2!, attempts: 2, nextAttemptAt: now + 30_000 }], 'due at its time: its attempts, the same id, seq and body');
    const order = knownFailure(options, 'due order after a retry');
    t.same(seqs(await store.dueDeliveries(A, now + 60_000, 10)), [2, 1], 'both due: the one due first comes first', { todo: order });
    t.same(seqs(await store.dueDeliveries(A, now + 60_000, 1)), [2], 'and the limit takes it', { todo: order });
  });

  t.test(`${name} store: the outbox forgets delivered and abandoned deliveries`, async (t) => {
    const store = await open(t, { historyLimit: 50, webhookUrls: [A] });
    await store.apply(record({ deviceId: 'a' }), AT);
    await store.apply(record({ deviceId: 'b' }), AT);
    const now = Date.now();
    const [d1, d2] = await store.dueDeliveries(A, now, 10);
    await store.deliveryDone(d1!.id); // delivered
    t.equal(await store.pendingDeliveries(), 1);
    t.same(await store.dueDeliveries(A, now, 10), [d2], 'the delivered one is gone');
    await store.deliveryRetry(d2!.id, 1, now + 1000);
    await store.deliveryDone(d2!.id); // abandoned after its last attempt (delivery.ts settles it so too)
    t.equal(await store.pendingDeliveries(), 0);
    t.same(await store.dueDeliveries(A, now + 86_400_000, 10), [], 'nothing left, however late');
    t.equal(await store.nextDueAt(A), null);
    // a settlement for a delivery already gone changes nothing and does not throw
    await store.deliveryDone(d1!.id);
    await store.deliveryRetry(d2!.id, 2, now);
    t.equal(await store.pendingDeliveries(), 0, 'a delivery once settled does not come back');
    await store.apply(record({ deviceId: 'c' }), AT);
    const [d3] = await store.dueDeliveries(A, now, 10);
    t.equal(d3?.seq, 3, 'the next event is enqueued as before');
  });

  t.test(`${name} store: the outbox keeps each URL's deliveries apart: one disabled or failing never touches another`, async (t) => {
    const store = await open(t, { historyLimit: 50, webhookUrls: [A, B] });
    for (const id of ['a', 'b', 'c']) await store.apply(record({ deviceId: id }), AT);
    const now = Date.now();
    for (const d of await store.dueDeliveries(B, now, 10)) await store.deliveryDone(d.id);
    const dueA = await store.dueDeliveries(A, now, 10);
    t.same(dueA.map((d) => [d.seq, d.attempts]), [[1, 0], [2, 0], [3, 0]], "B's deliveries settled, A's untouched");
    // A answers 410 Gone: the sender stops asking until the next start (SPEC §5), its deliveries stay
    t.equal(await store.nextDueAt(B), null);
    t.ok((await store.nextDueAt(A))! <= now, "A's still due");
    for (const d of dueA) await store.deliveryRetry(d.id, 1, now + 60_000); // or A fails
    t.same(await store.dueDeliveries(B, now, 10), [], "A's retries are not B's");
    await store.apply(record({ deviceId: 'd' }), AT);
    t.same(seqs(await store.dueDeliveries(B, now, 10)), [4], 'B gets the next event at once');
    t.same(seqs(await store.dueDeliveries(A, now, 10)), [4], 'and so does A, behind nothing of its own');
    t.equal(await store.pendingDeliveries(), 5, 'pending counts every URL');
  });

  t.test(`${name} store: the outbox hands out copies`, async (t) => {
    const store = await open(t, { historyLimit: 50, webhookUrls: [A] });
    await store.apply(record({ deviceId: 'a' }), AT);
    const now = Date.now();
    const [d] = await store.dueDeliveries(A, now, 10);
    const before = { ...d! };
    Object.assign(d!, { attempts: 7, nextAttemptAt: now + 1000, body: '{}' });
    t.same(await store.dueDeliveries(A, now, 10), [before], 'changing what it returned changes nothing stored');
  });

  t.test(
    `${name} store: the outbox keeps pending deliveries across a restart, as they were`,
    { skip: options.reopen ? false : `${name} keeps nothing across a restart: no reopen` },
    async (t) => {
      const first = await open(t, { historyLimit: 50, webhookUrls: [A, B] });
      await first.apply(record({ deviceId: 'a', state: 'close', timestamp: 10 }), AT);
      await first.apply(record({ deviceId: 'b', state: 'close', timestamp: 50 }), AT);
      await first.apply(record({ deviceId: 'a', state: 'open', timestamp: 20 }), AT);
      await first.markSilent(30, 100, MARKED_AT); // a
      const now = Date.now();
      const [delivered, retried] = await first.dueDeliveries(A, now, 10);
      await first.deliveryDone(delivered!.id);
      await first.deliveryRetry(retried!.id, 3, now + 5000);
      const later = now + 10_000;
      const read = async (store: DeviceStore) => ({
        a: await store.dueDeliveries(A, later, 10),
        b: await store.dueDeliveries(B, later, 10),
        dueNowA: seqs(await store.dueDeliveries(A, now, 10)),
        nextA: await store.nextDueAt(A),
        nextB: await store.nextDueAt(B),
        pending: await store.pendingDeliveries(),
      });
      const before = await read(first);
      t.same(before.dueNowA, [3, 4], 'before: A has one delivered, one waiting to retry');
      t.equal(before.pending, 7);

      const store = await options.reopen!(t, first);
      t.same(await read(store), before, 'the same deliveries: ids, bodies, attempts, retry times');
      const kept = new Set((await store.recentEvents(100)).map((e) => e.seq));
      const pending = [...(await store.dueDeliveries(A, later, 10)), ...(await store.dueDeliveries(B, later, 10))];
      t.ok(pending.every((d) => kept.has(d.seq)), 'each pending delivery was stored with its event');

      await store.apply(record({ deviceId: 'c', timestamp: 60 }), AT);
      const fresh = (await store.dueDeliveries(B, later, 10)).filter((d) => d.seq === 5);
      t.equal(fresh.length, 1, 'a new event after the restart is enqueued');
      t.notOk(pending.some((d) => d.id === fresh[0]?.id), 'with an id of its own');
      t.equal(await store.pendingDeliveries(), 9);
    },
  );
}
