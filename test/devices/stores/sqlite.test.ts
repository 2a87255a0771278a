import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import type { DeviceStore } from '../../../src/devices/store.js';
import { DATABASE_FILE, MIGRATIONS, SqliteStore, StoreOpenError, type SqliteStoreOptions } from '../../../src/devices/stores/sqlite.js';
import { record } from '../../helpers/records.js';
import { apply } from '../../../src/devices/rules.js';
import { storeContract } from '../store.contract.js';

/** When the bridge marked a device silent (its clock). */
const MARKED_AT = '2026-01-01T00:00:00.000Z';

const AT = '2026-01-01T00:00:00.000Z';
const options = (dir: string, overrides: Partial<SqliteStoreOptions> = {}): SqliteStoreOptions => ({
  dir,
  historyLimit: 50,
  eventBuffer: 1000,
  synchronous: 'normal',
  alarms: null, // the alarm half of the contract covers alarms; these count the device events alone
  ...overrides,
});

/** The options each store of the contract was opened with, for its reopen. */
const opened = new WeakMap<DeviceStore, SqliteStoreOptions>();
const openWith = (t: Test, opts: SqliteStoreOptions): SqliteStore => {
  const store = new SqliteStore(opts);
  opened.set(store, opts);
  t.teardown(() => store.close());
  return store;
};
storeContract(t, 'sqlite', async (t, { historyLimit, webhookUrls, alarms }) => openWith(t, options(t.testdir(), { historyLimit, webhookUrls, alarms })), {
  reopen: async (t, store) => {
    await store.close();
    return openWith(t, opened.get(store)!);
  },
});

t.test('everything survives a reopen: devices, history, counters, seq, store id, recent events', async (t) => {
  const dir = t.testdir();
  const first = new SqliteStore(options(dir, { eventBuffer: 3 }));
  await first.apply(record({ deviceId: 'a', state: 'open', timestamp: 10 }), AT);
  await first.apply(record({ deviceId: 'b', state: 'close', timestamp: 10 }), AT);
  await first.apply(record({ deviceId: 'a', state: 'close', timestamp: 20 }), AT);
  await first.apply(record({ deviceId: 'a', state: 'open', timestamp: 15 }), AT); // late
  await first.markSilent(15, 100, MARKED_AT); // b
  const before = { a: await first.get('a'), history: await first.history('a', 10), summary: await first.summary(), id: first.storeId };
  await first.close();

  const second = new SqliteStore(options(dir, { eventBuffer: 3 }));
  t.teardown(() => second.close());
  t.same(await second.get('a'), before.a);
  t.same(await second.history('a', 10), before.history);
  t.same(await second.summary(), before.summary);
  t.equal(second.storeId, before.id, 'the store id is created once and kept');
  t.equal(await second.lastSeq(), 4);
  const recent = await second.recentEvents(10);
  t.same(recent.map((e) => [e.seq, e.kind, e.deviceId]), [[2, 'update', 'b'], [3, 'update', 'a'], [4, 'silent', 'b']], 'the last EVENT_BUFFER events');
  const next = await second.apply(record({ deviceId: 'c', timestamp: 30 }), AT);
  t.equal(next.kind === 'update' && next.event.seq, 5, 'the seq continues');
  t.equal((await second.apply(record({ deviceId: 'a', state: 'close', timestamp: 20 }), AT)).kind, 'duplicate', 'a redelivery after the restart is a duplicate');
});

t.test('a second store on the same DATA_DIR is refused', async (t) => {
  const dir = t.testdir();
  const first = new SqliteStore(options(dir));
  t.teardown(() => first.close());
  t.throws(() => new SqliteStore(options(dir)), new StoreOpenError(`DATA_DIR ${dir} is in use by another wiihey-bridge process`));
  // and from another process, as in production
  const script = `import('${new URL('../../../src/devices/stores/sqlite.ts', import.meta.url).href}').then(({ SqliteStore }) => {
    try { new SqliteStore({ dir: ${JSON.stringify(dir)}, historyLimit: 5, eventBuffer: 5, synchronous: 'normal' }); console.log('opened'); }
    catch (err) { console.log(err.message); }
  })`;
  const other = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(other.stdout.trim(), `DATA_DIR ${dir} is in use by another wiihey-bridge process`);
});

t.test('an unusable DATA_DIR is refused with one line', async (t) => {
  const notDb = t.testdir({ [DATABASE_FILE]: 'this is not a database, it is a text file that is long enough to have a header' });
  t.throws(() => new SqliteStore(options(notDb)), { name: 'StoreOpenError', message: `DATA_DIR ${notDb}: ${DATABASE_FILE} is not a wiihey-bridge database` });

  const newer = t.testdir();
  const db = new Database(join(newer, DATABASE_FILE));
  db.pragma('user_version = 99');
  db.close();
  t.throws(() => new SqliteStore(options(newer)), { message: new RegExp(`holds schema version 99, newer than this wiihey-bridge knows \\(${MIGRATIONS.length}\\)`) });

  const file = join(t.testdir(), 'a-file');
  writeFileSync(file, 'x');
  t.throws(() => new SqliteStore(options(join(file, 'sub'))), { message: /cannot be created \(ENOTDIR\)/ });

  if (process.getuid?.() !== 0) {
    const readOnly = t.testdir();
    mkdirSync(join(readOnly, 'ro'));
    chmodSync(join(readOnly, 'ro'), 0o500);
    t.throws(() => new SqliteStore(options(join(readOnly, 'ro'))), { name: 'StoreOpenError' });
  }
});

t.test('EVENT_BUFFER 0 keeps no events, and the seq still continues', async (t) => {
  const dir = t.testdir();
  const first = new SqliteStore(options(dir, { eventBuffer: 0 }));
  await first.apply(record({ deviceId: 'a', timestamp: 10 }), AT);
  await first.close();
  const second = new SqliteStore(options(dir, { eventBuffer: 0 }));
  t.teardown(() => second.close());
  t.same(await second.recentEvents(10), []);
  t.equal(await second.lastSeq(), 1);
});

t.test('EVENT_BUFFER lowered to 0 between runs: the seq continues where the kept events ended', async (t) => {
  const dir = t.testdir();
  const first = new SqliteStore(options(dir, { eventBuffer: 10 }));
  for (const deviceId of ['a', 'b', 'c']) await first.apply(record({ deviceId, timestamp: 10 }), AT);
  await first.close();
  const second = new SqliteStore(options(dir, { eventBuffer: 0 }));
  t.teardown(() => second.close());
  t.equal(await second.lastSeq(), 3, 'not back to 0: seqs, webhook ids and alarm ids are never given twice');
  const next = await second.apply(record({ deviceId: 'd', timestamp: 10 }), AT);
  t.equal(next.kind === 'update' ? next.event.seq : null, 4);
});

t.test('EVENT_BUFFER changed between runs: recentEvents still ends at the newest event, without a gap', async (t) => {
  // SPEC §5: replay never skips an event silently; the events kept seed the replay buffer at start
  const seqsOf = async (dir: string, eventBuffer: number, devices: string[]): Promise<number[]> => {
    const store = new SqliteStore(options(dir, { eventBuffer }));
    try {
      for (const deviceId of devices) await store.apply(record({ deviceId, timestamp: 10 }), AT);
      return (await store.recentEvents(eventBuffer)).map((e) => e.seq);
    } finally {
      await store.close();
    }
  };
  const ids = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `d${from + i}`);
  const contiguousTo = (seqs: number[], last: number): boolean => seqs.length > 0 && seqs.every((s, i) => s === last - seqs.length + 1 + i);

  const raised = t.testdir();
  t.same(await seqsOf(raised, 3, ids(1, 10)), [8, 9, 10]);
  const afterRaise = await seqsOf(raised, 10, ids(11, 11));
  t.ok(contiguousTo(afterRaise, 11), `raised from 3 to 10, one event later: ${afterRaise.join(',')}`);

  const lowered = t.testdir();
  t.same(await seqsOf(lowered, 10, ids(1, 10)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.same(await seqsOf(lowered, 3, ids(11, 11)), [9, 10, 11]);
  const afterLowerRaise = await seqsOf(lowered, 10, []);
  t.ok(contiguousTo(afterLowerRaise, 11), `lowered to 3 for one event, raised to 10 again: ${afterLowerRaise.join(',')}`);
});

t.test('a DATA_DIR of before the registry (schema 2) is migrated: every device and kept event gains meta null', async (t) => {
  const dir = t.testdir();
  const db = new Database(join(dir, DATABASE_FILE));
  db.exec(MIGRATIONS[0]!);
  db.exec(MIGRATIONS[1]!);
  db.pragma('user_version = 2');
  const outcome = apply(undefined, record({ deviceId: 'old', timestamp: 10 }), AT);
  if (outcome.kind !== 'update') throw new Error('expected an update');
  const { meta: _meta, ...before } = outcome.device;
  const json = JSON.stringify(before);
  db.prepare('INSERT INTO devices (device_id, state, silent, timestamp, history_count, json) VALUES (?, ?, 0, 10, 1, ?)').run('old', before.state, json);
  db.prepare("INSERT INTO events (slot, seq, kind, previous_state, changed, device) VALUES (1, 1, 'update', NULL, 1, ?)").run(json);
  db.close();
  const store = new SqliteStore(options(dir));
  t.teardown(() => store.close());
  t.same(await store.get('old'), { ...before, meta: null });
  t.same((await store.recentEvents(10)).map((e) => e.device), [{ ...before, meta: null }]);
  await store.putEntries([{ deviceId: 'old', name: 'n', address: null, latitude: null, longitude: null, zone: 'z', tags: [] }]);
  t.same((await store.list({ zone: 'z', limit: 10 })).items.map((d) => d.deviceId), ['old'], 'and the zone filter finds it once it is registered');
});

t.test('a batch is one transaction: a write failing in its middle leaves nothing of it (issue 17)', async (t) => {
  const dir = t.testdir();
  const store = new SqliteStore(options(dir, { alarms: undefined }));
  t.teardown(() => store.close());
  await store.apply(record({ deviceId: 'before', state: 'open', timestamp: 10 }), AT);
  const summary = await store.summary();
  const seq = await store.lastSeq();
  // a second connection adds a trigger that fails the third message's history row, as a full disk would
  const db = new Database(join(dir, DATABASE_FILE));
  await store.close();
  db.exec("CREATE TRIGGER poison BEFORE INSERT ON history WHEN NEW.device_id = 'poison' BEGIN SELECT RAISE(ABORT, 'disk full'); END");
  db.close();
  const again = new SqliteStore(options(dir, { alarms: undefined }));
  t.teardown(() => again.close());
  const batch = ['x', 'y', 'poison', 'z'].map((deviceId, i) => ({ record: record({ deviceId, state: 'open', timestamp: 20 + i }), receivedAt: AT }));
  await t.rejects(again.applyBatch(batch), /disk full/);
  t.same(await again.summary(), summary, 'no device, no count, no alarm of the batch');
  t.equal(await again.lastSeq(), seq, 'no seq handed out');
  t.equal(await again.get('x'), undefined, 'not even the messages before the failing one');
  const ok = await again.applyBatch(batch.filter((b) => b.record.deviceId !== 'poison'));
  t.same(ok.map((o) => o.kind === 'update' && [o.event.seq, o.alarms.map((a) => a.seq)]), [[seq + 1, [seq + 2]], [seq + 3, [seq + 4]], [seq + 5, [seq + 6]]], 'the seqs go on where they were, each open with its alarm');
});
