import type { Test } from 'tap';
import type { DeviceEvent } from '../../src/devices/events.js';
import type { DeviceStore } from '../../src/devices/store.js';
import type { RegistryEntry } from '../../src/devices/types.js';
import { record } from '../helpers/records.js';
import type { ContractOptions, OpenStore } from './store.contract.js';

// SPEC §11: the registry half of the store contract (store.contract.ts runs it for every store).

const AT = '2026-01-01T00:00:00.000Z';

export function entry(deviceId: string, fields: Partial<RegistryEntry> = {}): RegistryEntry {
  return { deviceId, name: null, address: null, latitude: null, longitude: null, zone: null, tags: [], ...fields };
}

/** What an event says, without its cached wire forms. */
function facts(e: DeviceEvent): Record<string, unknown> {
  return e.kind === 'meta' ? { seq: e.seq, kind: e.kind, deviceId: e.deviceId, device: e.device, meta: e.meta } : { seq: e.seq, kind: e.kind, deviceId: e.deviceId };
}

export function registryContract(t: Test, name: string, open: OpenStore, options: ContractOptions): void {
  t.test(`${name} store: registry entries are set, replaced, read and deleted, each change an event`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    await store.apply(record({ deviceId: 'seen', state: 'open', timestamp: 10 }), AT);
    const main = entry('seen', { name: 'Main St 1', address: 'Main St 1\n10115 Berlin', latitude: 52.5, longitude: -13.4, zone: 'north', tags: ['storm', 'school-route'] });
    const first = await store.putEntries([main, entry('unseen', { zone: 'north' })]);
    t.same([first.created, first.updated, first.unchanged], [2, 0, 0]);
    t.same(first.events.map((e) => [e.kind, e.seq, e.deviceId]), [['meta', 2, 'seen'], ['meta', 3, 'unseen']], 'seqs go on from the devices');
    t.same(first.events[0]!.device?.meta, main, 'the device carries its entry');
    t.equal(first.events[0]!.device?.state, 'open', 'and stays the device it was');
    t.equal(first.events[1]!.device, null, 'a device never heard from has no device');
    t.same(first.events[1]!.meta, entry('unseen', { zone: 'north' }));
    t.same(await store.getEntry('seen'), main);
    t.same((await store.get('seen'))?.meta, main, 'get() has the meta');
    t.equal(await store.get('unseen'), undefined, 'an entry is no device');

    const again = await store.putEntries([main, entry('unseen', { zone: 'south' })]);
    t.same([again.created, again.updated, again.unchanged], [0, 1, 1], 'the same entry again changes nothing');
    t.same(again.events.map((e) => e.deviceId), ['unseen']);
    const kept = await store.putEntries([entry('seen'), entry('new')], { keepExisting: true });
    t.same([kept.created, kept.updated, kept.unchanged], [1, 0, 1], 'keepExisting leaves registered entries alone');
    t.same(await store.getEntry('seen'), main);

    const update = await store.apply(record({ deviceId: 'seen', state: 'close', timestamp: 20 }), AT);
    t.same(update.kind === 'update' && update.event.device.meta, main, 'the next message keeps the meta');

    const deleted = await store.deleteEntry('seen');
    t.same(deleted && facts(deleted), { seq: 7, kind: 'meta', deviceId: 'seen', device: { ...(await store.get('seen'))!, meta: null }, meta: null });
    t.equal((await store.get('seen'))?.meta, null, 'the device lost its meta');
    t.equal(await store.getEntry('seen'), undefined);
    t.equal(await store.deleteEntry('seen'), null, 'deleting what is not there: no event');
    t.equal(await store.lastSeq(), 7);
  });

  t.test(`${name} store: a device registered before it reports takes its entry with its first message`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    const e = entry('later', { latitude: -33.9, longitude: 151.2, zone: 'harbour' });
    await store.putEntries([e]);
    t.same((await store.summary()).registry, { entries: 1, neverSeen: 1 });
    const outcome = await store.apply(record({ deviceId: 'later', timestamp: 10 }), AT);
    t.same(outcome.kind === 'update' && outcome.event.device.meta, e);
    t.same((await store.get('later'))?.meta, e);
    t.same((await store.summary()).registry, { entries: 1, neverSeen: 0 });
    t.same((await store.list({ zone: 'harbour', limit: 10 })).items.map((d) => d.deviceId), ['later'], 'and its zone filters the devices');
  });

  t.test(`${name} store: entries listed in deviceId order, by zone, seen, located, in pages`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    await store.apply(record({ deviceId: 'b', timestamp: 10 }), AT);
    await store.apply(record({ deviceId: 'd', timestamp: 10 }), AT);
    await store.putEntries([
      entry('d', { zone: 'z1', latitude: 1, longitude: 2 }),
      entry('a', { zone: 'z1' }),
      entry('c', { zone: 'z2', latitude: 0, longitude: 0 }),
      entry('b', { zone: 'z1', latitude: 3, longitude: 4 }),
    ]);
    const ids = (page: { items: { entry: RegistryEntry }[] }): string[] => page.items.map((i) => i.entry.deviceId);
    const all = await store.listEntries({ limit: 10 });
    t.same(ids(all), ['a', 'b', 'c', 'd']);
    t.same([all.total, all.lastId], [4, null]);
    t.same(all.items.map((i) => i.device?.deviceId ?? null), [null, 'b', null, 'd'], 'with their devices');
    const z1 = await store.listEntries({ zone: 'z1', limit: 2 });
    t.same([ids(z1), z1.total, z1.lastId], [['a', 'b'], 3, 'b']);
    const z1next = await store.listEntries({ zone: 'z1', limit: 2, after: 'b' });
    t.same([ids(z1next), z1next.total, z1next.lastId], [['d'], 3, null], 'the next page');
    t.same(ids(await store.listEntries({ seen: false, limit: 10 })), ['a', 'c'], 'registered and never seen');
    t.same(ids(await store.listEntries({ seen: true, limit: 10 })), ['b', 'd']);
    const located = await store.listEntries({ located: true, limit: 10 });
    t.same([ids(located), located.total], [['b', 'c', 'd'], 3], 'located: 0, 0 is a place too');
    t.same((await store.summary()).registry, { entries: 4, neverSeen: 2 });
  });

  t.test(`${name} store: devices by zone and by a search of id, name and address`, async (t) => {
    const store = await open(t, { historyLimit: 50 });
    for (const id of ['MH-1', 'mh-2', 'x-3', 'y-4']) await store.apply(record({ deviceId: id, timestamp: 10, state: id === 'y-4' ? 'open' : 'close' }), AT);
    await store.putEntries([
      entry('x-3', { name: 'Schloßstraße Nord', zone: 'Mitte' }),
      entry('y-4', { address: 'ÄUßERE Ring 5', zone: 'Mitte' }),
    ]);
    const ids = async (query: Parameters<DeviceStore['list']>[0]): Promise<[string[], number]> => {
      const page = await store.list(query);
      return [page.items.map((d) => d.deviceId), page.total];
    };
    t.same(await ids({ q: 'mh', limit: 10 }), [['MH-1', 'mh-2'], 2], 'ids, case-insensitive');
    t.same(await ids({ q: 'SCHLOSS', limit: 10 }), [[], 0], 'no folding beyond lower case: ß is not ss');
    t.same(await ids({ q: 'schloß', limit: 10 }), [['x-3'], 1], 'names');
    t.same(await ids({ q: 'äuß', limit: 10 }), [['y-4'], 1], 'addresses, non-ASCII letters lowered too');
    t.same(await ids({ zone: 'Mitte', limit: 10 }), [['x-3', 'y-4'], 2]);
    t.same(await ids({ zone: 'Mitte', state: 'open', limit: 10 }), [['y-4'], 1], 'with the other filters');
    t.same(await ids({ zone: 'Mitte', limit: 1 }), [['x-3'], 2], 'total counts every page');
    t.same(await ids({ zone: 'mitte', limit: 10 }), [[], 0], 'zones are exact');
    t.same(await ids({ q: '%', limit: 10 }), [[], 0], 'no LIKE wildcards');
  });

  if (options.reopen !== undefined) {
    t.test(`${name} store: the registry and its events survive a restart`, async (t) => {
      const first = await open(t, { historyLimit: 50 });
      await first.apply(record({ deviceId: 'a', timestamp: 10 }), AT);
      const e = entry('a', { name: 'A', latitude: 10, longitude: 20, tags: ['t'] });
      const written = await first.putEntries([e, entry('b', { zone: 'z' })]);
      const store = await options.reopen!(t, first);
      t.same(await store.getEntry('a'), e);
      t.same((await store.get('a'))?.meta, e);
      t.same((await store.listEntries({ limit: 10 })).items.map((i) => i.entry.deviceId), ['a', 'b']);
      t.same((await store.recentEvents(2)).map(facts), written.events.map(facts), 'meta events replay after a restart');
      t.equal(await store.lastSeq(), 3);
    });
  }
}
