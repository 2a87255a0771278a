import { cpuSeconds } from '../lib/cpu.js';
import { startBridge, startScript, waitFor } from '../lib/procs.js';
import { publishBurst } from '../lib/publish.js';
import { DEVICE_KINDS, everyClientHas, startDeviceReceivers, type DeviceReceiverReport, type DeviceReceivers } from '../lib/device-receivers.js';
import { sleep } from '../lib/receivers.js';
import { lost, median, perSecond, ratio, round } from '../lib/stats.js';
import type { Context, Scenario } from '../lib/types.js';

// Issue 14 item 2: fan-out off the PUBACK path, measured. Ingest QoS 1, memory only, as
// scenarios/ingest.ts measures it (a burst of messages over 1,000 devices, messages per second
// from the first publish until the bridge's /stats counts every one accepted, zero lost), in one
// run: (a) the bridge with no live client; (b) the bridge with 1,000 /ws clients and 1,000 GraphQL
// `deviceUpdated` subscribers connected, each filtered to ONE of the 1,000 devices (client i of
// each API on d<i>: a "device page"; each event reaches about two clients), the receivers in a
// process of their own; beside a bare MQTT.js subscriber (bench/baselines/subscriber.ts). For (b)
// every client must get every update of its device, in seq order: a lost, duplicated, misordered
// or misrouted frame fails the run. The 2,000 clients unfiltered (every event × 2,000 frames) is
// not measured: at ingest rates that is 40 to 60 million frames a second, far past what a bare
// `ws` forwarder carries on this machine (BENCHMARKS.md).

const TOPIC = 'iot/bench/inbox';
const DEVICES = 1000;
/** The warm-up's timestamps (publishBurst: base + round); the measured burst's come after them. */
const BASE = 1_700_000_000;
const GOAL = 0.8;

interface BridgeRun {
  rate: number;
  lost: number;
  /** For (b): frames missing at a client, summed client by client. */
  deliveryLost: number;
  /** For (b): frames over what a client should have (duplicates). */
  extra: number;
  outOfOrder: number;
  otherDevice: number;
  unreadable: number;
  closed: number;
  /** For (b): ms from the last message accepted until every client had every update of its device, or null. */
  drainMs: number | null;
  warmRounds: number;
  /** CPU seconds the bridge used from the first publish until every message was accepted. */
  bridgeCpu: number;
  /** For (b): CPU seconds the receivers' process used meanwhile. */
  receiversCpu: number | null;
}

async function baselineRun(ctx: Context, url: string, count: number): Promise<number> {
  const bare = await startScript('baselines/subscriber.ts', [url, TOPIC, '1', String(count)]);
  try {
    const started = Date.now();
    const publishing = publishBurst(url, TOPIC, 1, count, DEVICES);
    await waitFor(async () => bare.lines.some((l) => l.startsWith('done')), 300_000, 'the bare subscriber');
    const ms = Date.now() - started;
    await publishing;
    return perSecond(count, ms);
  } catch (err) {
    ctx.log(`    baseline: ${(err as Error).message}`);
    return Number.NaN;
  } finally {
    await bare.stop();
  }
}

/** Updates of device d<k> in a burst of `count` messages over DEVICES devices (publishBurst: message i is d<i % DEVICES>). */
function perDevice(k: number, count: number): number {
  return k < count ? Math.floor((count - 1 - k) / DEVICES) + 1 : 0;
}

async function accepted(base: string): Promise<number> {
  const stats = (await (await fetch(`${base}/stats`)).json()) as { messages: { accepted: number } };
  return stats.messages.accepted;
}

async function bridgeRun(ctx: Context, url: string, clients: number, count: number, name: string): Promise<BridgeRun> {
  const bridge = await startBridge({
    MQTT_URL: url,
    WIIHEY_APP_ID: 'bench',
    MQTT_QOS: '1',
    MQTT_CLIENT_ID: `bench-bridge-${name}-${process.pid}-${Date.now()}`,
    MQTT_CLEAN_SESSION: 'true',
    DATA_DIR: '',
    // 2,000 connections from one address: no per-address stream bound, no rate limit
    MAX_STREAMS_PER_ADDRESS: '0',
    RATE_LIMIT_PER_MINUTE: '0',
  });
  let receivers: DeviceReceivers | null = null;
  try {
    if (clients > 0) receivers = await startDeviceReceivers(bridge.base, clients, DEVICES);
    // warm-up, with or without clients alike: one update per device (the devices exist, the code
    // is hot), repeated until every client has one (a GraphQL subscribe is live a little after its
    // connection_ack), then the bridge is left to deliver the last of it
    let warm = 0;
    let rounds = 0;
    for (;;) {
      await publishBurst(url, TOPIC, 1, DEVICES, DEVICES, BASE + rounds);
      rounds++;
      warm += DEVICES;
      await waitFor(async () => (await accepted(bridge.base)) >= warm, 60_000, 'the bridge to accept the warm-up');
      if (receivers === null) break;
      const r = receivers;
      const ready = await waitFor(async () => everyClientHas(await r.poll(), () => 1), 5_000, 'every client to get a warm-up update', 100)
        .then(() => true)
        .catch(() => false);
      if (ready) break;
      if (rounds >= 5) throw new Error(`after ${rounds} warm-up rounds some clients still had no update: ${summary(await r.poll())}`);
    }
    await sleep(300);
    const before = receivers === null ? null : await receivers.poll();

    let got = 0;
    const cpu0 = cpuSeconds(bridge.pid);
    const receiversCpu0 = receivers === null ? Number.NaN : cpuSeconds(receivers.child.pid!);
    const started = Date.now();
    const publishing = publishBurst(url, TOPIC, 1, count, DEVICES, BASE + rounds);
    await waitFor(
      async () => {
        got = (await accepted(bridge.base)) - warm;
        return got >= count;
      },
      300_000,
      'the bridge to accept every message',
    ).catch((err: unknown) => ctx.log(`    bridge: ${(err as Error).message} (${got} of ${count})`));
    const allAccepted = Date.now();
    const ms = allAccepted - started;
    const bridgeCpu = round(cpuSeconds(bridge.pid) - cpu0);
    const receiversCpu = receivers === null ? null : round(cpuSeconds(receivers.child.pid!) - receiversCpu0);
    await publishing;
    const run: BridgeRun = {
      rate: got >= count ? perSecond(count, ms) : Number.NaN,
      lost: lost(count, got),
      deliveryLost: 0,
      extra: 0,
      outOfOrder: 0,
      otherDevice: 0,
      unreadable: 0,
      closed: 0,
      drainMs: null,
      warmRounds: rounds,
      bridgeCpu,
      receiversCpu,
    };
    if (receivers === null || before === null) return run;

    // every client: every update of its device since the warm-up, or nothing more for 3 s
    const expect = (kind: 'ws' | 'graphql', i: number): number => before.kinds[kind].updates[i]! + perDevice(i % DEVICES, count);
    let last = Number.NaN;
    let lastChange = Date.now();
    let done = false;
    for (;;) {
      const now = await receivers.poll();
      if (everyClientHas(now, expect)) {
        done = true;
        break;
      }
      const total = DEVICE_KINDS.reduce((sum, kind) => sum + now.kinds[kind].updates.reduce((a, b) => a + b, 0), 0);
      if (total !== last) {
        last = total;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > 3000) break;
      await sleep(50);
    }
    run.drainMs = done ? Date.now() - allAccepted : null;
    const final = await receivers.finish();
    for (const kind of DEVICE_KINDS) {
      const k = final.kinds[kind];
      k.updates.forEach((updates, i) => {
        const want = perDevice(i % DEVICES, count);
        const delivered = updates - before.kinds[kind].updates[i]!;
        run.deliveryLost += lost(want, delivered);
        run.extra += Math.max(0, delivered - want);
      });
      run.outOfOrder += k.outOfOrder;
      run.otherDevice += k.otherDevice;
      run.unreadable += k.unreadable;
      run.closed += k.closed;
    }
    return run;
  } finally {
    await receivers?.stop();
    await bridge.stop();
  }
}

function summary(report: DeviceReceiverReport): string {
  return DEVICE_KINDS.map((kind) => {
    const k = report.kinds[kind];
    return `${kind}: ${k.connected}/${k.clients} connected, ${k.updates.filter((u) => u === 0).length} without an update, ${k.closed} closed`;
  }).join('; ');
}

function describe(run: BridgeRun): string {
  const rate = Number.isNaN(run.rate) ? '–' : run.rate.toLocaleString('en-US');
  const cpu = `bridge CPU ${run.bridgeCpu} s${run.receiversCpu === null ? '' : `, receivers CPU ${run.receiversCpu} s`}`;
  return `${rate} msg/s, ${cpu}, lost ${run.lost}, delivery lost ${run.deliveryLost}, extra ${run.extra}, out of order ${run.outOfOrder}, other device ${run.otherDevice}, unreadable ${run.unreadable}, closed ${run.closed}, drained ${run.drainMs ?? '–'} ms after the last accept`;
}

export const ingestClients: Scenario = {
  name: 'ingest-clients',
  description:
    'ingest QoS 1, memory only, with no client and with 1,000 /ws + 1,000 GraphQL clients each on one device, beside a bare MQTT.js subscriber',
  async run(ctx) {
    const count = ctx.size(100_000);
    const clients = ctx.size(1000);
    const baselineRates: number[] = [];
    const bare: BridgeRun[] = [];
    const withClients: BridgeRun[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      const broker = await ctx.broker();
      try {
        ctx.log(`  run ${run + 1}: bare subscriber, ${count} messages`);
        baselineRates.push(await baselineRun(ctx, broker.url, count));
        ctx.log(`    ${baselineRates[baselineRates.length - 1]} msg/s`);
        // alternate which bridge goes first: neither always meets a warmer machine
        const order = run % 2 === 0 ? [0, clients] : [clients, 0];
        for (const n of order) {
          ctx.log(`  run ${run + 1}: bridge, ${n === 0 ? 'no live client' : `${n} /ws + ${n} GraphQL clients, each on one device`}`);
          const got = await bridgeRun(ctx, broker.url, n, count, `ingest-clients-${n}-${run}`);
          ctx.log(`    ${describe(got)}`);
          (n === 0 ? bare : withClients).push(got);
        }
      } finally {
        await broker.stop();
      }
    }
    const baseline = median(baselineRates);
    const a = median(bare.map((r) => r.rate));
    const b = median(withClients.map((r) => r.rate));
    const sum = (runs: BridgeRun[], key: 'lost' | 'deliveryLost' | 'extra' | 'outOfOrder' | 'otherDevice' | 'unreadable' | 'closed'): number =>
      runs.reduce((s, r) => s + r[key], 0);
    const n = clients.toLocaleString('en-US');
    const lostA = sum(bare, 'lost');
    const lostB = sum(withClients, 'lost') + sum(withClients, 'deliveryLost');
    const errorsB = sum(withClients, 'extra') + sum(withClients, 'outOfOrder') + sum(withClients, 'otherDevice') + sum(withClients, 'unreadable') + sum(withClients, 'closed');
    // CPU the bridge spent per message (µs), from /proc: what the figure costs the bridge itself
    const cpuPerMessage = (runs: BridgeRun[]): number => round(median(runs.map((r) => (r.bridgeCpu * 1e6) / count)), 1);
    const clientDetails = {
      clients: { ws: clients, graphql: clients },
      filter: `each client on one device: client i of each API on d<i>, of the ${DEVICES.toLocaleString('en-US')} the burst updates (each event reaches ${clients >= DEVICES ? 'two clients' : `two clients for ${clients} of the devices, none for the rest`})`,
      updatesPerClient: perDevice(0, count),
      framesExpected: 2 * Array.from({ length: clients }, (_, i) => perDevice(i % DEVICES, count)).reduce((x, y) => x + y, 0),
      ingestLost: sum(withClients, 'lost'),
      deliveryLost: sum(withClients, 'deliveryLost'),
      duplicates: sum(withClients, 'extra'),
      outOfOrder: sum(withClients, 'outOfOrder'),
      otherDevice: sum(withClients, 'otherDevice'),
      unreadable: sum(withClients, 'unreadable'),
      closed: sum(withClients, 'closed'),
      drainMs: withClients.map((r) => r.drainMs),
      bridgeCpuSeconds: withClients.map((r) => r.bridgeCpu),
      bridgeCpuUsPerMessage: cpuPerMessage(withClients),
      receiversCpuSeconds: withClients.map((r) => r.receiversCpu),
      warmRounds: withClients.map((r) => r.warmRounds),
    };
    const withMetric = `ingest QoS 1, memory only, ${n} /ws + ${n} GraphQL clients connected, each on one device`;
    return [
      {
        scenario: 'ingest-clients',
        metric: 'ingest QoS 1, memory only, no live client',
        unit: 'msg/s',
        bridge: a,
        baseline,
        ratio: ratio(a, baseline),
        goal: `≥ ${GOAL} of the bare subscriber, 0 lost`,
        met: ratio(a, baseline) >= GOAL && lostA === 0,
        details: { runs: bare.map((r) => r.rate), baselineRuns: baselineRates, messages: count, devices: DEVICES, lost: lostA, bridgeCpuSeconds: bare.map((r) => r.bridgeCpu), bridgeCpuUsPerMessage: cpuPerMessage(bare) },
      },
      {
        scenario: 'ingest-clients',
        metric: withMetric,
        unit: 'msg/s',
        bridge: b,
        baseline,
        ratio: ratio(b, baseline),
        goal: 'none of its own (issue 14); every client every update of its device, in seq order',
        met: null,
        details: { runs: withClients.map((r) => r.rate), baselineRuns: baselineRates, messages: count, devices: DEVICES, lost: lostB, bridgeErrors: errorsB, ...clientDetails },
      },
      {
        scenario: 'ingest-clients',
        metric: `${withMetric}, against no live client`,
        unit: 'msg/s',
        bridge: b,
        baseline: a,
        ratio: ratio(b, a),
        goal: 'none of its own (issue 14: fan-out off the PUBACK path)',
        met: null,
        details: {
          runs: withClients.map((r) => r.rate),
          baselineRuns: bare.map((r) => r.rate),
          messages: count,
          lost: lostB,
          bridgeErrors: errorsB,
          bridgeCpuUsPerMessage: { withClients: cpuPerMessage(withClients), without: cpuPerMessage(bare) },
        },
      },
    ];
  },
};
