import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishBurst } from '../lib/publish.js';
import { startBridge, startScript, waitFor } from '../lib/procs.js';
import { lost, median, perSecond, ratio } from '../lib/stats.js';
import type { Context, Result, Scenario } from '../lib/types.js';

// SPEC §10: ingest, memory only (QoS 0 and 1) ≥ 0.8 of a bare subscriber; with DATA_DIR
// (acknowledged after persist, QoS 1) ≥ 0.7. Messages per second from the first publish until
// the bridge's /stats counts every one accepted, and zero lost. Each run also reads the batch
// sizes the bridge wrote (SPEC §7: one write per batch) from its /metrics histogram.

const TOPIC = 'iot/bench/inbox';
const DEVICES = 1000;

interface Variant {
  metric: string;
  qos: 0 | 1;
  durable: boolean;
  /** SQLITE_SYNCHRONOUS, with DATA_DIR. */
  synchronous?: 'normal' | 'full';
  /** Each device changes state every this many messages (1: every message, the default burst). */
  changeEvery?: number;
  goal: number;
}

const VARIANTS: Variant[] = [
  { metric: 'ingest QoS 0, memory only', qos: 0, durable: false, goal: 0.8 },
  { metric: 'ingest QoS 1, memory only', qos: 1, durable: false, goal: 0.8 },
  { metric: 'ingest QoS 1, DATA_DIR (PUBACK after persist)', qos: 1, durable: true, synchronous: 'normal', goal: 0.7 },
  { metric: 'ingest QoS 1, DATA_DIR, SQLITE_SYNCHRONOUS=full', qos: 1, durable: true, synchronous: 'full', goal: 0.7 },
  // every message above changes its device's state, so with the default alarm settings each one
  // raises or clears a cover_open alarm: the worst case. A fleet's covers mostly report unchanged
  { metric: "ingest QoS 1, DATA_DIR, a fleet's mix (2 % of the messages change state)", qos: 1, durable: true, synchronous: 'normal', changeEvery: 50, goal: 0.7 },
];

/** Batch sizes seen in a run, from the bridge's histogram: bucket bounds, so "p50 ≤ 20". */
interface Batches {
  batches: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

export async function batchSizes(base: string): Promise<Batches | null> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const buckets: [number, number][] = [];
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const bucket = /^wiihey_bridge_ingest_batch_size_bucket\{le="([^"]+)"\} (\d+)/.exec(line);
    if (bucket) buckets.push([bucket[1] === '+Inf' ? Infinity : Number(bucket[1]), Number(bucket[2])]);
    else if (line.startsWith('wiihey_bridge_ingest_batch_size_count ')) count = Number(line.split(' ')[1]);
    else if (line.startsWith('wiihey_bridge_ingest_batch_size_sum ')) sum = Number(line.split(' ')[1]);
  }
  if (count === 0) return null;
  const at = (p: number): number => buckets.find(([, n]) => n >= p * count)?.[0] ?? Infinity;
  return { batches: count, mean: Math.round((sum / count) * 10) / 10, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

export async function baselineRun(ctx: Context, url: string, qos: 0 | 1, count: number): Promise<{ rate: number; lost: number }> {
  const bare = await startScript('baselines/subscriber.ts', [url, TOPIC, String(qos), String(count)]);
  try {
    const started = Date.now();
    const publishing = publishBurst(url, TOPIC, qos, count, DEVICES);
    await waitFor(async () => bare.lines.some((l) => l.startsWith('done')), 300_000, 'the bare subscriber');
    const ms = Date.now() - started;
    await publishing;
    return { rate: perSecond(count, ms), lost: 0 };
  } catch (err) {
    ctx.log(`  baseline: ${(err as Error).message}`);
    return { rate: Number.NaN, lost: count };
  } finally {
    await bare.stop();
  }
}

async function bridgeRun(ctx: Context, url: string, variant: Variant, count: number, run: number): Promise<{ rate: number; lost: number; batches: Batches | null }> {
  const dir = variant.durable ? mkdtempSync(join(tmpdir(), 'wiihey-bench-data-')) : '';
  const bridge = await startBridge({
    MQTT_URL: url,
    WIIHEY_APP_ID: 'bench',
    MQTT_QOS: String(variant.qos),
    MQTT_CLIENT_ID: `bench-bridge-${variant.qos}-${variant.durable}-${run}-${process.pid}`,
    MQTT_CLEAN_SESSION: 'true',
    DATA_DIR: dir,
    SQLITE_SYNCHRONOUS: variant.synchronous ?? 'normal',
  });
  let accepted = 0;
  try {
    const started = Date.now();
    const publishing = publishBurst(url, TOPIC, variant.qos, count, DEVICES, undefined, variant.changeEvery ?? 1);
    await waitFor(
      async () => {
        const stats = (await (await fetch(`${bridge.base}/stats`)).json()) as { messages: { accepted: number } };
        accepted = stats.messages.accepted;
        return accepted >= count;
      },
      variant.qos === 0 ? 60_000 : 300_000,
      'the bridge to accept every message',
    ).catch((err: unknown) => ctx.log(`  bridge: ${(err as Error).message} (${accepted} of ${count})`));
    const ms = Date.now() - started;
    await publishing;
    const batches = await batchSizes(bridge.base);
    if (batches) ctx.log(`  ${variant.metric}, run ${run + 1}: ${batches.batches} batches, mean ${batches.mean}, p50 ≤ ${batches.p50}, p90 ≤ ${batches.p90}, p99 ≤ ${batches.p99} messages`);
    return { rate: accepted >= count ? perSecond(count, ms) : Number.NaN, lost: lost(count, accepted), batches };
  } finally {
    await bridge.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

export const ingest: Scenario = {
  name: 'ingest',
  description: 'MQTT messages per second, QoS 0 and 1, memory only and with DATA_DIR, beside a bare MQTT.js subscriber',
  async run(ctx) {
    const count = ctx.size(100_000);
    const results: Result[] = [];
    const baselines = new Map<number, number[]>();
    for (const variant of VARIANTS) {
      const bridgeRates: number[] = [];
      const batches: (Batches | null)[] = [];
      let lostTotal = 0;
      for (let run = 0; run < ctx.runs; run++) {
        const broker = await ctx.broker();
        if (!baselines.has(variant.qos) || baselines.get(variant.qos)!.length < ctx.runs) {
          const base = await baselineRun(ctx, broker.url, variant.qos, count);
          baselines.set(variant.qos, [...(baselines.get(variant.qos) ?? []), base.rate]);
        }
        const got = await bridgeRun(ctx, broker.url, variant, count, run);
        bridgeRates.push(got.rate);
        batches.push(got.batches);
        lostTotal += got.lost;
        await broker.stop();
      }
      const bridge = median(bridgeRates);
      const baseline = median(baselines.get(variant.qos)!);
      const r = ratio(bridge, baseline);
      results.push({
        scenario: 'ingest',
        metric: variant.metric,
        unit: 'msg/s',
        bridge,
        baseline,
        ratio: r,
        goal: `≥ ${variant.goal} of the bare subscriber, 0 lost`,
        met: r >= variant.goal && lostTotal === 0,
        details: { runs: bridgeRates, baselineRuns: baselines.get(variant.qos), messages: count, lost: lostTotal, batchSizes: batches },
      });
    }
    return results;
  },
};
