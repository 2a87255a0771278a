import { startBridge, startScript, type Proc } from '../lib/procs.js';
import { drain, LABEL, lostOf, publishPaced, startReceivers, TOPIC, type Latency, type ReceiverKind, type ReceiverReport, type Receivers } from '../lib/receivers.js';
import { median, ratio, round } from '../lib/stats.js';
import type { Context, Result, Scenario } from '../lib/types.js';

// SPEC §10: MQTT publish to WebSocket / GraphQL subscriber / SSE at 2,000 messages per second:
// p50 under 2 ms, p99 within 2 ms of the bare forwarder's p99. QoS 0, a tick every 10 ms sending
// 20; one client of each API in a receiver process of their own, the bare forwarder's single
// client the same way; after a warm-up, every message's latency, and zero lost.

const RATE = 2000;
const DEVICES = 1000;
const BRIDGE_KINDS: ReceiverKind[] = ['ws', 'graphql', 'sse'];

export interface Run {
  kinds: ReceiverReport['kinds'];
  /** Every client of every kind together. */
  all: Latency | null;
  stamped: number;
  warm: number;
  ms: number;
}

/** One measured stream: a server (the bridge or the forwarder), its receivers, the paced publisher. */
export async function measure(
  ctx: Context,
  url: string,
  server: () => Promise<Proc & { base: string }>,
  kinds: ReceiverKind[],
  clients: number,
  opts: { rate: number; seconds: number; devices: number; warmMs: number },
): Promise<Run> {
  let proc: (Proc & { base: string }) | null = null;
  let receivers: Receivers | null = null;
  try {
    proc = await server();
    receivers = await startReceivers(proc.base, kinds, clients);
    const stamped = Math.round(opts.rate * opts.seconds);
    const sent = await publishPaced(url, { rate: opts.rate, stamped, devices: opts.devices, warmMs: opts.warmMs, receivers });
    const report = await drain(receivers, sent.stamped);
    for (const [kind, k] of Object.entries(report.kinds)) {
      const l = k.latency;
      ctx.log(`    ${LABEL[kind as ReceiverKind]}: p50 ${l?.p50} ms, p99 ${l?.p99} ms, max ${l?.max} ms, lost ${lostOf(k, sent.stamped)} of ${sent.stamped * k.clients}`);
    }
    return { kinds: report.kinds, all: report.all, stamped: sent.stamped, warm: sent.warm, ms: Math.round(sent.ms) };
  } finally {
    await receivers?.stop();
    await proc?.stop();
  }
}

/** The bare forwarder of bench/baselines/forwarder.ts, with the base URL its receivers connect to. */
export async function startForwarder(url: string): Promise<Proc & { base: string }> {
  const proc = await startScript('baselines/forwarder.ts', [url, TOPIC]);
  const port = proc.lines.find((l) => l.startsWith('port '))?.slice(5);
  if (port === undefined) {
    await proc.stop();
    throw new Error(`the forwarder printed no port: ${proc.output()}`);
  }
  return { ...proc, base: `http://127.0.0.1:${port}` };
}

export function bridgeEnv(url: string, name: string): Record<string, string> {
  return {
    MQTT_URL: url,
    WIIHEY_APP_ID: 'bench',
    MQTT_CLIENT_ID: `bench-bridge-${name}-${process.pid}-${Date.now()}`,
    MQTT_CLEAN_SESSION: 'true',
    DATA_DIR: '',
  };
}

export const latency: Scenario = {
  name: 'latency',
  description: 'MQTT publish to /ws, GraphQL subscription and SSE at 2,000 msg/s, beside a bare ws forwarder',
  async run(ctx) {
    const seconds = ctx.quick ? 2 : 10;
    const opts = { rate: RATE, seconds, devices: DEVICES, warmMs: 1000 };
    const bridgeRuns: Run[] = [];
    const baselineRuns: Run[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      const broker = await ctx.broker();
      try {
        baselineRuns.push(await measure(ctx, broker.url, () => startForwarder(broker.url), ['forwarder'], 1, opts));
        bridgeRuns.push(await measure(ctx, broker.url, () => startBridge(bridgeEnv(broker.url, `latency-${run}`)), BRIDGE_KINDS, 1, opts));
      } finally {
        await broker.stop();
      }
    }
    const base = summarize(baselineRuns, ['forwarder']);
    if (base.lost > 0) ctx.log(`  the bare forwarder lost ${base.lost} of ${base.expected}: its p99 is no limit of the stack`);
    return BRIDGE_KINDS.map((kind): Result => {
      const got = summarize(bridgeRuns, [kind]);
      const met = got.p50 < 2 && got.p99 <= base.p99 + 2 && got.lost === 0;
      return {
        scenario: 'latency',
        metric: `latency publish → ${LABEL[kind]}, p99 at ${RATE.toLocaleString('en-US')} msg/s`,
        unit: 'ms',
        bridge: got.p99,
        baseline: base.p99,
        ratio: ratio(got.p99, base.p99),
        goal: 'p50 < 2 ms, p99 ≤ baseline p99 + 2 ms, 0 lost',
        met,
        details: {
          p50: got.p50,
          p99: got.p99,
          max: got.max,
          delivered: got.delivered,
          expected: got.expected,
          lost: got.lost,
          runs: got.runs,
          baseline: { p50: base.p50, p99: base.p99, max: base.max, delivered: base.delivered, expected: base.expected, lost: base.lost, runs: base.runs },
          rate: RATE,
          seconds,
          warmUpMessages: bridgeRuns.map((r) => r.warm),
        },
      };
    });
  },
};

export interface Summary {
  p50: number;
  p99: number;
  max: number;
  delivered: number;
  expected: number;
  lost: number;
  runs: Array<{ p50: number; p99: number; max: number; delivered: number; expected: number; lost: number; sampled: number; publishMs: number }>;
}

/**
 * Medians over the runs of the figures of `kinds`' clients (one kind: its own latencies; several:
 * the latencies of every client of the run together); delivered, expected and lost summed.
 */
export function summarize(runs: Run[], kinds: ReceiverKind[]): Summary {
  const each = runs.map((run) => {
    const reports = kinds.map((kind) => {
      const k = run.kinds[kind];
      if (k === undefined) throw new Error(`no report for ${kind}`);
      return k;
    });
    const latency = reports.length === 1 ? reports[0]!.latency : run.all;
    let delivered = 0;
    let expected = 0;
    let lostCount = 0;
    for (const k of reports) {
      for (const n of k.delivered) delivered += n;
      expected += run.stamped * k.clients;
      lostCount += lostOf(k, run.stamped);
    }
    return {
      p50: latency?.p50 ?? Number.NaN,
      p99: latency?.p99 ?? Number.NaN,
      max: latency?.max ?? Number.NaN,
      delivered,
      expected,
      lost: lostCount,
      sampled: latency?.sampled ?? 0,
      publishMs: run.ms,
    };
  });
  const sum = (pick: (r: (typeof each)[number]) => number): number => each.reduce((n, r) => n + pick(r), 0);
  return {
    p50: round(median(each.map((r) => r.p50))),
    p99: round(median(each.map((r) => r.p99))),
    max: round(median(each.map((r) => r.max))),
    delivered: sum((r) => r.delivered),
    expected: sum((r) => r.expected),
    lost: sum((r) => r.lost),
    runs: each,
  };
}
