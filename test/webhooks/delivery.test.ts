import t, { type Test } from 'tap';
import { Webhook } from 'standardwebhooks';
import { parseRetryAfter } from '../../src/webhooks/delivery.js';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, nextEvent, testConfig, withTimeout } from '../helpers/app.js';
import { ManualClock } from '../helpers/clock.js';
import { record } from '../helpers/records.js';
import { startRedis } from '../helpers/redis.js';
import { Receiver, SECRET } from '../helpers/receiver.js';
import { checkFrame } from '../helpers/asyncapi.js';

// SPEC §5 webhooks (Standard Webhooks), against real HTTP receivers.

const ts = 1_800_000_000;

/** /stats' webhooks once `match` holds: checked after each settled attempt. */
function webhookStats(app: FastifyInstance, match: (s: Record<string, number>) => boolean, what: string): Promise<Record<string, number>> {
  return withTimeout(
    new Promise((resolve) => {
      let done = false;
      const check = async (): Promise<void> => {
        if (done) return;
        // a check still under way when the test ends may find the app (and its store) closed
        const stats = (await app.inject('/stats')).json().webhooks as Record<string, number> | undefined;
        if (done || stats === undefined || !match(stats)) return;
        done = true;
        app.webhooks!.off('settled', listener);
        resolve(stats);
      };
      const listener = (): void => {
        void check();
      };
      app.webhooks!.on('settled', listener);
      void check();
    }),
    15_000,
    () => what,
  );
}

/**
 * WEBHOOK_TIMEOUT_SECONDS as by default (15 s), a retry schedule shorter than the default's: a
 * receiver refuses a signature more than 5 minutes off its own clock, and the tests move the
 * bridge's clock (test/helpers/clock.ts), never the receiver's. No test waits for either.
 */
// the delivery mechanics count device events; the first test has the alarms' webhooks on
const WEBHOOKS = { WEBHOOK_SECRET: SECRET, WEBHOOK_RETRY_SECONDS: '5,10,10,10,10,10,10,10,10,10', ALARMS_ENABLED: 'false' };
/** The latest a retry falls due after a failure: its delay plus the ±20 % jitter (delivery.ts). */
const latest = (delayMs: number): number => delayMs * 1.2;

interface StoreKind {
  name: string;
  /** Keeps pending deliveries across a restart (SPEC §7). */
  durable: boolean;
  /** The variables that choose it, once per test (the same ones for a restart in it). */
  env: (t: Test) => Record<string, string>;
}
interface StoreChoice {
  name: string;
  durable: boolean;
  /** The variables for one test: the durable ones in the test's own temp dir, or its own redis-server; undefined: skipped. */
  open: (t: Test) => Promise<Record<string, string> | undefined>;
}
const stores: StoreChoice[] = [
  { name: 'memory', durable: false, open: async () => ({ DATA_DIR: '' }) },
  { name: 'sqlite', durable: true, open: async (t) => ({ DATA_DIR: t.testdir() }) },
  // SPEC §8: the outbox in Redis, claimed by the sender (one replica here)
  {
    name: 'redis',
    durable: true,
    open: async (t) => {
      const redis = await startRedis(t);
      return redis === undefined ? undefined : { REDIS_URL: redis.url, REPLICA_ID: 'hooks' };
    },
  },
];

/** A case run on each store the bridge can have; `durableOnly`: why it is skipped on the others. */
function eachStore(name: string, fn: (t: Test, store: StoreKind) => Promise<void>, durableOnly?: string): void {
  for (const store of stores) {
    t.test(`${name} (${store.name} store)`, { skip: durableOnly !== undefined && !store.durable ? durableOnly : false }, async (t) => {
      const env = await store.open(t);
      if (env === undefined) return;
      await fn(t, { name: store.name, durable: store.durable, env: () => env });
    });
  }
}

eachStore('state changes, silences and alarm transitions are POSTed, signed; heartbeats are not', async (t, store) => {
  const receiver = await Receiver.start(t);
  // the service's clock signs each attempt (webhook-timestamp), and the receiver's library refuses
  // one more than 5 minutes off its own: the clock starts at the real time, and moves 2 minutes
  const clock = new ManualClock(Date.now());
  const base = Math.floor(clock.now() / 1000) - 10;
  const app = await buildTestApp(t, testConfig({ ...store.env(t), ...WEBHOOKS, ALARMS_ENABLED: 'true', WEBHOOK_URLS: receiver.url, SILENCE_AFTER_SECONDS: '60' }), {
    connectMqtt: false,
    clock,
  });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'a', state: 'close', timestamp: base }), clock.now()); // new: a change from null
  await app.devices.accept(record({ deviceId: 'a', state: 'close', timestamp: base + 1 }), clock.now()); // heartbeat
  await app.devices.accept(record({ deviceId: 'a', state: 'open', timestamp: base + 2 }), clock.now()); // change, and a cover_open alarm
  // all answered before the clock moves: moving it past WEBHOOK_TIMEOUT_SECONDS would time out a request in flight
  await webhookStats(app, (s) => s.delivered === 3, 'the two state changes and the alarm delivered');
  const silent = nextEvent(app, (e) => e.kind === 'silent', 'device a falling silent');
  clock.advance(120_000); // the silence check (SILENCE_CHECK_SECONDS, a minute) runs by itself
  await silent;
  await receiver.until((r) => r.accepted.length === 5, 'five deliveries');
  const got = receiver.accepted.sort((a, b) => a.body.data.seq - b.body.data.seq);
  const what = (body: (typeof got)[number]['body']) => {
    if (!body.type.startsWith('alarm.')) return [body.type, body.data.device.state, body.data.previousState];
    const data = body.data as unknown as { transition: string; alarm: { type: string } };
    return [body.type, data.alarm.type, data.transition];
  };
  t.same(got.map((r) => what(r.body)), [
    ['device.state_changed', 'close', null],
    ['device.state_changed', 'open', 'close'],
    ['alarm.raised', 'cover_open', 'raised'],
    ['device.silent', 'open', 'open'],
    ['alarm.raised', 'silent', 'raised'],
  ]);
  t.equal(got[2]!.body.timestamp, new Date((base + 2) * 1000).toISOString(), 'an alarm webhook at its source time (SPEC §12)');
  t.ok(got.every((r) => r.verified), 'every signature verifies with a Standard Webhooks library, alarm.* included');
  t.same(got.map((r) => r.id), got.map((r) => `msg_${app.devices.store.storeId}_${r.body.data.seq}`), 'webhook-id is msg_<storeId>_<seq>');
  t.ok(got.every((r) => !r.id.includes('.')));
  for (const r of got) t.same(checkFrame(r.body.type.startsWith('alarm.') ? 'webhookAlarm' : 'webhook', r.body), [], 'the body matches asyncapi.yaml');
  t.same(await webhookStats(app, (s) => s.delivered === 5, 'five delivered'), { pending: 0, delivered: 5, retried: 0, abandoned: 0, disabledUrls: 0 });
});

eachStore('a receiver down, then slow, then failing: every event arrives once it recovers', async (t, store) => {
  const receiver = await Receiver.start(t);
  const clock = new ManualClock();
  const config = testConfig({ ...store.env(t), ...WEBHOOKS, WEBHOOK_URLS: receiver.url });
  const { timeoutMs, retryScheduleMs } = config.webhooks!;
  const app = await buildTestApp(t, config, { connectMqtt: false, clock });
  await app.ready();
  await receiver.down();
  for (let i = 0; i < 10; i++) await app.devices.accept(record({ deviceId: `d${i}`, state: 'open', timestamp: ts }), clock.now());
  // the senders wake once the batch of events is delivered (devices/events.ts), then fail on the refused connection
  await webhookStats(app, (s) => s.retried === 10, 'each delivery failed once while down');
  await receiver.up();
  receiver.behaviour = () => ({ status: 204, hold: true }); // slower than WEBHOOK_TIMEOUT_SECONDS: never
  clock.advance(latest(retryScheduleMs[0]!)); // every first retry is due: four go out (four in flight per URL)
  await receiver.until((r) => r.received.length === 4, 'four slow requests');
  receiver.behaviour = () => ({ status: 500 });
  clock.advance(timeoutMs); // the four time out; the six others go out, and fail
  await webhookStats(app, (s) => s.retried === 20, 'each delivery failed a second time');
  t.equal(receiver.received.filter((x) => x.status === 0).length, 4, 'the slow answers came too late');
  t.equal(receiver.received.filter((x) => x.status === 500).length, 6, 'the others met the failing receiver');
  receiver.behaviour = () => ({ status: 200 });
  clock.advance(latest(retryScheduleMs[1]!));
  await receiver.until((r) => new Set(r.accepted.map((x) => x.id)).size === 10, 'every event delivered');
  t.ok(receiver.received.every((r) => r.verified), 'every attempt carries a valid signature');
  const stats = await webhookStats(app, (s) => s.delivered === 10, 'ten delivered');
  t.equal(stats.pending, 0);
  t.equal(stats.retried, 20, 'each retried twice: down, then slow or failing');
});

eachStore('a restart resends nothing already delivered, and delivers what was pending', async (t, store) => {
  const receiver = await Receiver.start(t);
  const config = testConfig({ ...store.env(t), ...WEBHOOKS, WEBHOOK_URLS: receiver.url });
  const clock = new ManualClock(); // one clock for both runs, as the wall clock would be
  const first = await buildTestApp(t, config, { connectMqtt: false, clock });
  await first.ready();
  for (let i = 0; i < 5; i++) await first.devices.accept(record({ deviceId: `d${i}`, timestamp: ts }), clock.now());
  await webhookStats(first, (s) => s.delivered === 5, 'the first five');
  receiver.behaviour = () => ({ status: 503 });
  for (let i = 5; i < 8; i++) await first.devices.accept(record({ deviceId: `d${i}`, timestamp: ts }), clock.now());
  await webhookStats(first, (s) => s.retried === 3, 'three failures');
  await first.close();

  receiver.behaviour = () => ({ status: 204 });
  const second = await buildTestApp(t, config, { connectMqtt: false, clock });
  await second.ready();
  clock.advance(latest(config.webhooks!.retryScheduleMs[0]!)); // the pending three fall due
  await receiver.until((r) => new Set(r.accepted.map((x) => x.id)).size === 8, 'the pending three after the restart');
  const ids = receiver.accepted.map((x) => x.id);
  t.equal(ids.length, new Set(ids).size, 'nothing delivered twice');
  t.equal((await webhookStats(second, (s) => s.pending === 0, 'nothing pending')).pending, 0);
}, 'memory only: pending deliveries go with the process (SPEC §7: DATA_DIR keeps them)');

eachStore('a restart never reuses a webhook-id', async (t, store) => {
  const receiver = await Receiver.start(t);
  const config = testConfig({ ...store.env(t), ...WEBHOOKS, WEBHOOK_URLS: receiver.url });
  const clock = new ManualClock(); // unmoved: no attempt can time out
  const first = await buildTestApp(t, config, { connectMqtt: false, clock });
  await first.ready();
  await first.devices.accept(record({ deviceId: 'a', timestamp: ts }), clock.now());
  await webhookStats(first, (s) => s.delivered === 1, "the first run's delivery");
  await first.close();
  const second = await buildTestApp(t, config, { connectMqtt: false, clock });
  await second.ready();
  await second.devices.accept(record({ deviceId: 'b', timestamp: ts }), clock.now());
  const idsOf = (deviceId: string): string[] => receiver.accepted.filter((r) => r.body.data.device.deviceId === deviceId).map((r) => r.id);
  await receiver.until(() => idsOf('b').length === 1, "the second run's delivery");
  // SPEC §5: msg_<storeId>_<seq>; a memory store counts seqs from 1 again, under a new store id
  t.same(idsOf('a').length, 1, 'the first run delivered its event once');
  t.not(idsOf('b')[0], idsOf('a')[0], 'a new event, a new webhook-id: a receiver that deduplicates by it drops nothing');
});

eachStore('one dead receiver never delays another; 410 Gone disables its URL', async (t, store) => {
  const slow = await Receiver.start(t);
  const fast = await Receiver.start(t);
  const gone = await Receiver.start(t);
  slow.behaviour = () => ({ status: 204, hold: true }); // and the clock never moves: it holds its four requests to the end
  gone.behaviour = () => ({ status: 410 });
  const clock = new ManualClock();
  const app = await buildTestApp(t, testConfig({ ...store.env(t), ...WEBHOOKS, WEBHOOK_URLS: `${slow.url},${fast.url},${gone.url}` }), { connectMqtt: false, clock });
  await app.ready();
  for (let i = 0; i < 20; i++) await app.devices.accept(record({ deviceId: `d${i}`, timestamp: ts }), clock.now());
  await fast.until((r) => r.accepted.length === 20, 'all twenty at the fast receiver');
  t.equal(slow.accepted.length, 0, 'the slow one has answered nothing yet');
  await gone.until((r) => r.received.length >= 1, 'the 410');
  t.equal((await webhookStats(app, (s) => s.disabledUrls === 1, 'the URL disabled')).disabledUrls, 1);
  t.ok(gone.received.length <= 4, 'no more deliveries to a URL that answered 410');
});

eachStore('a delivery is abandoned after the last attempt of the schedule', async (t, store) => {
  const receiver = await Receiver.start(t);
  receiver.behaviour = () => ({ status: 500 });
  const clock = new ManualClock();
  // the default schedule, nine retries over three days; no device falls silent meanwhile
  const config = testConfig({ ...store.env(t), WEBHOOK_SECRET: SECRET, WEBHOOK_URLS: receiver.url, SILENCE_AFTER_SECONDS: '604800' });
  const schedule = config.webhooks!.retryScheduleMs;
  const app = await buildTestApp(t, config, { connectMqtt: false, clock });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'x', timestamp: ts }), clock.now());
  for (const [i, delayMs] of schedule.entries()) {
    await webhookStats(app, (s) => s.retried === i + 1, `attempt ${i + 1} failed`);
    clock.advance(latest(delayMs));
  }
  const stats = await webhookStats(app, (s) => s.abandoned === 1, 'the delivery abandoned');
  t.equal(stats.pending, 0);
  t.equal(receiver.received.filter((x) => x.status === 500).length, schedule.length + 1, 'the first attempt and one for each delay of the schedule');
  t.equal(new Set(receiver.received.map((r) => r.id)).size, 1, 'the same webhook-id on every retry');
});

t.test('Retry-After: seconds or a date, capped at a day', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.equal(parseRetryAfter(null, now), null);
  t.equal(parseRetryAfter('120', now), 120_000);
  t.equal(parseRetryAfter('Thu, 01 Jan 2026 00:01:00 GMT', now), 60_000);
  t.equal(parseRetryAfter('999999', now), 86_400_000);
  t.equal(parseRetryAfter('soon', now), null);
});

t.test('a signature made for one attempt does not verify for another timestamp', async (t) => {
  const wh = new Webhook(SECRET);
  const at = new Date();
  const signature = wh.sign('msg_x_1', at, '{"a":1}');
  t.throws(() => wh.verify('{"a":1}', { 'webhook-id': 'msg_x_1', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000) - 600), 'webhook-signature': signature }));
});
