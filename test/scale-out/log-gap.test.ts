import t from 'tap';
import { createClient } from 'redis';
import { RedisStore } from '../../src/devices/stores/redis.js';
import type { RedisCommander } from '../../src/devices/stores/redis-commit.js';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { startRedis } from '../helpers/redis.js';
import { record } from '../helpers/records.js';
import { SseParser, type SseBlock } from '../helpers/sse.js';
import { SeqRecorder } from './recorders.js';

// SPEC §8: where the shared log no longer reaches back to the last event a replica read (it was
// cut off longer than the stream keeps), its live clients are told, never left with a silent
// gap: /ws, SSE and graphql-ws clients are closed, and an SSE client coming back with its
// Last-Event-ID gets `event: reset`. A bridge in this process, whose log reader is held back
// while another replica writes and the stream is trimmed.

const AT = '2026-01-01T00:00:00.000Z';

/** A reader whose next commands wait while it is held. */
class HeldReader implements RedisCommander {
  #held: Promise<void> | null = null;
  #release: () => void = () => {};
  #parked: () => void = () => {};
  /** Resolves once a command waits at the hold. */
  parked: Promise<void> = Promise.resolve();
  constructor(private readonly inner: RedisCommander) {}

  hold(): void {
    this.#held = new Promise((resolve) => (this.#release = resolve));
    this.parked = new Promise((resolve) => (this.#parked = resolve));
  }

  release(): void {
    this.#held = null;
    this.#release();
  }

  async sendCommand(args: string[]): Promise<unknown> {
    if (this.#held !== null) {
      this.#parked();
      await this.#held;
    }
    return this.inner.sendCommand(args);
  }
}

t.test('the log no longer reaches back: every live client is told, and a replay gets a reset', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const connect = async () => {
    const c = createClient({ url: server.url, socket: { reconnectStrategy: false } });
    c.on('error', () => {});
    await c.connect();
    t.teardown(() => c.destroy());
    return c;
  };
  const options = { prefix: 'gap:', historyLimit: 5, eventBuffer: 100, alarms: null };
  const client = await connect();
  const reader = new HeldReader(await connect());
  const store = await RedisStore.open({ ...options, client, reader });
  const other = await RedisStore.open({ ...options, client: await connect() }); // another replica's writes
  const app = await buildTestApp(t, testConfig({ WS_MAX_BUFFERED_BYTES: String(64 * 1024 * 1024) }), { store, connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const recorders = await Promise.all([SeqRecorder.ws(t, base, '/ws'), SeqRecorder.sse(t, base, '/events'), SeqRecorder.graphql(t, base, 'graphql-ws')]);

  const write = async (from: number, to: number) => {
    const batch = [];
    for (let i = from; i < to; i++) batch.push({ record: record({ deviceId: `g${i % 50}`, timestamp: 1_700_000_000 + i }), receivedAt: AT });
    await other.applyBatch(batch);
  };
  await write(0, 10);
  await Promise.all(recorders.map((r) => r.until(10, 10_000)));
  // held: the read under way (if any) brings the 11th, the next one waits at the hold
  reader.hold();
  await write(10, 11);
  await reader.parked;
  const had = app.devices.events.lastSeq; // 10 or 11: what the replica read before it was cut off
  await Promise.all(recorders.map((r) => r.until(had, 10_000)));
  await write(11, 1500);
  await client.sendCommand(['XTRIM', 'gap:ev', 'MAXLEN', '0']); // the log moved on without this replica
  await write(1500, 1501);
  reader.release();

  await Promise.all(recorders.map((r) => r.until(Number.MAX_SAFE_INTEGER, 10_000).catch(() => {})));
  for (const r of recorders) {
    t.not(r.ended, null, `${r.name} was told (${r.ended})`);
    t.same(r.problems(had), [], `${r.name}: nothing after what the replica had read, no silent gap`);
  }
  t.equal(app.devices.logGaps, 1, 'the gap is counted');
  t.match(await (await fetch(`${base}/metrics`)).text(), /^wiihey_bridge_event_log_gaps_total 1$/m, 'in /metrics too');
  // a client coming back with the last id it had
  const res = await fetch(`${base}/events`, { headers: { 'last-event-id': String(had) } });
  const parser = new SseParser();
  const reader2 = res.body!.getReader();
  const blocks: SseBlock[] = [];
  while (!blocks.some((b) => b.event === 'reset')) blocks.push(...parser.push((await reader2.read()).value!));
  await reader2.cancel();
  t.equal(blocks.find((b) => b.event === 'reset')?.data, '{"lastSeq":1501}', 'a reset to the state as of now');
  // and the replica goes on with what comes next
  const next = await SeqRecorder.ws(t, base, '/ws again');
  await write(1501, 1502);
  await next.until(1, 10_000);
  t.same(next.seqs, [1502]);
});

t.test('an entry of the log this version cannot read is skipped, the clients reset, and the replica goes on', async (t) => {
  const server = await startRedis(t);
  if (server === undefined) return;
  const client = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const reader = createClient({ url: server.url, socket: { reconnectStrategy: false } });
  reader.on('error', () => {});
  await reader.connect();
  t.teardown(() => reader.destroy());
  const options = { prefix: 'odd:', historyLimit: 5, eventBuffer: 100, alarms: null };
  const store = await RedisStore.open({ ...options, client, reader });
  const app = await buildTestApp(t, testConfig({}), { store, connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const ws = await SeqRecorder.ws(t, base, '/ws');
  await store.apply(record({ deviceId: 'a', timestamp: 10 }), AT);
  await ws.until(1, 10_000);
  // as another version of the bridge might write it during a rolling upgrade
  await client.sendCommand(['XADD', 'odd:ev', '2-0', 'k', 'update', 'c', '1', 'j', '{not json']);
  await client.sendCommand(['SET', 'odd:seq', '2']);
  await ws.until(Number.MAX_SAFE_INTEGER, 15_000).catch(() => {});
  t.match(ws.ended, /closed 1013/, 'the live client is told');
  const again = await SeqRecorder.ws(t, base, '/ws again');
  await store.apply(record({ deviceId: 'a', timestamp: 20 }), AT);
  await again.until(1, 10_000);
  t.same(again.seqs, [3], 'the replica follows the log past the entry');
});
