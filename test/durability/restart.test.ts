import { request } from 'node:http';
import t from 'tap';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { SqliteStore } from '../../src/devices/stores/sqlite.js';
import { SseParser, type SseBlock } from '../helpers/sse.js';

// SPEC §7: a restart resumes with every device's state and emits nothing it already emitted;
// SSE replay (Last-Event-ID) works across it from the events the store kept.

const ts = 1_800_000_000;

/** The first `count` SSE events (blocks with an `event:`) of GET /events with a Last-Event-ID. */
function readEvents(base: string, lastEventId: string, count: number): Promise<SseBlock[]> {
  return new Promise((resolve, reject) => {
    const blocks: SseBlock[] = [];
    const req = request(`${base}/events`, { headers: { 'last-event-id': lastEventId } }, (res) => {
      const parser = new SseParser();
      res.on('data', (chunk: Buffer) => {
        for (const block of parser.push(chunk)) {
          if (block.event === null || blocks.length === count) continue;
          blocks.push(block);
          if (blocks.length === count) {
            req.destroy();
            resolve(blocks);
          }
        }
      });
    });
    req.on('error', (err) => (blocks.length === count ? undefined : reject(err)));
    req.end();
  });
}

t.test('state, history and seq continue after a restart; SSE replays across it', async (t) => {
  const dir = t.testdir();
  const config = testConfig({ DATA_DIR: dir, ALARMS_ENABLED: 'false' }); // counts device seqs; alarms survive a restart in their own tests
  const first = await buildTestApp(t, config, { connectMqtt: false });
  await first.ready();
  for (let i = 1; i <= 5; i++) await first.devices.accept(record({ deviceId: `d${i % 2}`, state: i % 3 ? 'open' : 'close', timestamp: ts + i }), Date.now());
  const before = (await first.inject('/devices')).json();
  const history = (await first.inject('/devices/d1/history')).json();
  await first.close();

  const second = await buildTestApp(t, config, { connectMqtt: false });
  const emitted: number[] = [];
  second.devices.events.subscribe((e) => emitted.push(e.seq));
  await second.listen({ port: 0, host: '127.0.0.1' });
  t.same((await second.inject('/devices')).json(), before, 'every device as it was');
  t.same((await second.inject('/devices/d1/history')).json(), history, 'and its history');
  t.same(emitted, [], 'nothing is emitted again');
  t.equal((await second.inject('/stats')).json().devices, 2);

  const { port } = second.server.address() as { port: number };
  const replay = await readEvents(`http://127.0.0.1:${port}`, '3', 2);
  t.same(replay.map((b) => b.id), ['4', '5'], 'the events after Last-Event-ID 3, from before the restart');

  const next = await second.devices.accept(record({ deviceId: 'd9', timestamp: ts + 10 }), Date.now());
  t.equal(next.kind === 'update' && next.event.seq, 6, 'the seq continues');
  const redelivered = await second.devices.accept(record({ deviceId: 'd1', state: 'close', timestamp: ts + 3 }), Date.now());
  t.equal(redelivered.kind, 'duplicate', 'a message redelivered after the restart is a duplicate');
});

t.test('memory only (DATA_DIR empty): a restart starts empty', async (t) => {
  const first = await buildTestApp(t, testConfig({ DATA_DIR: '' }), { connectMqtt: false });
  await first.ready();
  await first.devices.accept(record({ deviceId: 'gone' }), Date.now());
  await first.close();
  const second = await buildTestApp(t, testConfig({ DATA_DIR: '' }), { connectMqtt: false });
  t.equal((await second.inject('/stats')).json().devices, 0);
});

t.test('a restart with 100,000 stored devices: ready, every one readable', async (t) => {
  const dir = t.testdir();
  const store = new SqliteStore({ dir, historyLimit: 50, eventBuffer: 1000, synchronous: 'normal' });
  const at = new Date().toISOString();
  for (let i = 0; i < 100_000; i++) await store.apply(record({ deviceId: `dev${String(i).padStart(6, '0')}`, state: i % 7 ? 'close' : 'open', timestamp: ts }), at);
  await store.close();

  const app = await buildTestApp(t, testConfig({ DATA_DIR: dir }), { connectMqtt: false });
  await app.ready();
  const stats = (await app.inject('/stats')).json();
  t.equal(stats.devices, 100_000);
  t.same(stats.byState, { open: 14_286, close: 85_714 });
  let seen = 0;
  for (let cursor: string | null = null, pages = 0; pages < 101; pages++) {
    const page: { items: unknown[]; nextCursor: string | null } = (await app.inject({ url: '/devices', query: { limit: '1000', ...(cursor ? { cursor } : {}) } })).json();
    seen += page.items.length;
    cursor = page.nextCursor;
    if (cursor === null) break;
  }
  t.equal(seen, 100_000, 'every device readable, page by page');
  t.equal((await app.inject('/devices/dev099999')).json().deviceId, 'dev099999');
});
