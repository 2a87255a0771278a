import { startBridge } from '../lib/procs.js';
import type { ReceiverKind } from '../lib/receivers.js';
import { ratio } from '../lib/stats.js';
import type { Context, Result, Scenario } from '../lib/types.js';
import { bridgeEnv, measure, startForwarder, summarize, type Run } from './latency.js';

// SPEC §10, fan-out: 1,000 WebSocket clients and 1,000 GraphQL subscribers, each event serialized
// once. On a 2-core machine at a rate the bare forwarder keeps up with (25 msg/s, 50,000 frames/s):
// nothing lost, p99 within 1.5× of the bare forwarder's (2,000 ws clients) in the same run. The
// receivers run in a process of their own. The size is flags (environment variables):
// BENCH_FANOUT_CLIENTS (per API; default 1,000, --quick 100), BENCH_FANOUT_RATE (msg/s, 25),
// BENCH_FANOUT_SECONDS (20, --quick 3). The absolute goal: 1000 msg/s, p99 under 100 ms.

const DEVICES = 100;
const BRIDGE_KINDS: ReceiverKind[] = ['ws', 'graphql'];
const GOAL = 1.5;
const NOUN: Partial<Record<ReceiverKind, string>> = { ws: '/ws clients', graphql: 'GraphQL subscribers' };

function flag(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, not ${text}`);
  return value;
}

export function fanoutSize(ctx: Context): { clients: number; rate: number; seconds: number } {
  return {
    clients: Math.round(flag('BENCH_FANOUT_CLIENTS', ctx.size(1000))),
    rate: flag('BENCH_FANOUT_RATE', 25),
    seconds: flag('BENCH_FANOUT_SECONDS', ctx.quick ? 3 : 20),
  };
}

export const fanout: Scenario = {
  name: 'fanout',
  description: 'MQTT publish to 1,000 /ws clients and 1,000 GraphQL subscribers at 25 msg/s, beside a bare ws forwarder to 2,000 clients',
  async run(ctx) {
    const { clients, rate, seconds } = fanoutSize(ctx);
    const opts = { rate, seconds, devices: DEVICES, warmMs: 1000 };
    const bridgeRuns: Run[] = [];
    const baselineRuns: Run[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      const broker = await ctx.broker();
      try {
        ctx.log(`  run ${run + 1}: bare forwarder, ${2 * clients} clients`);
        baselineRuns.push(await measure(ctx, broker.url, () => startForwarder(broker.url), ['forwarder'], 2 * clients, opts));
        ctx.log(`  run ${run + 1}: bridge, ${clients} /ws + ${clients} GraphQL`);
        bridgeRuns.push(await measure(ctx, broker.url, () => startBridge(bridgeEnv(broker.url, `fanout-${run}`)), BRIDGE_KINDS, clients, opts));
      } finally {
        await broker.stop();
      }
    }
    const base = summarize(baselineRuns, ['forwarder']);
    if (base.lost > 0) ctx.log(`  the bare forwarder lost ${base.lost} of ${base.expected}: its p99 is no limit of the stack`);
    const n = clients.toLocaleString('en-US');
    const size = `${n} /ws + ${n} GraphQL at ${rate} msg/s`;
    const baseline = { clients: 2 * clients, p50: base.p50, p99: base.p99, max: base.max, delivered: base.delivered, expected: base.expected, lost: base.lost, runs: base.runs };
    // SPEC's figure: the bridge's 2,000 clients beside the forwarder's 2,000; then each API's share
    const rows: Array<{ metric: string; kinds: ReceiverKind[]; goal: boolean }> = [
      { metric: `fan-out ${size}: p99 of all ${(2 * clients).toLocaleString('en-US')} clients`, kinds: BRIDGE_KINDS, goal: true },
      ...BRIDGE_KINDS.map((kind) => ({ metric: `fan-out ${size}: p99 of the ${NOUN[kind]}`, kinds: [kind], goal: false })),
    ];
    return rows.map((row): Result => {
      const got = summarize(bridgeRuns, row.kinds);
      const r = ratio(got.p99, base.p99);
      return {
        scenario: 'fanout',
        metric: row.metric,
        unit: 'ms',
        bridge: got.p99,
        baseline: base.p99,
        ratio: r,
        goal: row.goal ? `0 lost, p99 ≤ ${GOAL}× the bare forwarder's` : '0 lost (the p99 goal is on all clients)',
        met: row.goal ? got.lost === 0 && r <= GOAL : got.lost === 0,
        details: { p50: got.p50, p99: got.p99, max: got.max, delivered: got.delivered, expected: got.expected, lost: got.lost, runs: got.runs, baseline, clients, rate, seconds },
      };
    });
  },
};
