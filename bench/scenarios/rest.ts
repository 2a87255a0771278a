import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishBurst } from '../lib/publish.js';
import { startBridge, startScript, waitFor, type Proc } from '../lib/procs.js';
import { median, ratio, round } from '../lib/stats.js';
import type { Result, Scenario } from '../lib/types.js';

// SPEC §10: REST GET /devices/{id} at least 0.9 of a bare Fastify route answering with the same
// bytes; GET /devices?limit=100 has no goal of its own and is reported beside its own bare route.
// Requests per second with autocannon (50 connections, no pipelining) from the bench process, so
// the load generator shares the machine with whichever server it measures, alike for both.

// autocannon ships no types (and @types/autocannon is not a dependency): the little used here
const require = createRequire(import.meta.url);
interface Histogram {
  average: number;
  p50: number;
  p99: number;
}
interface AutocannonResult {
  requests: Histogram;
  latency: Histogram;
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (opts: { url: string; connections: number; pipelining: number; duration: number }) => Promise<AutocannonResult>;
const autocannon = require('autocannon') as Autocannon;

const TOPIC = 'iot/bench/inbox';
const DEVICES = 1000;
const CONNECTIONS = 50;

interface Target {
  metric: string;
  path: string;
  /** Minimum ratio to the bare route, or null: reported, no goal of its own. */
  goal: number | null;
}

const TARGETS: Target[] = [
  { metric: 'GET /devices/{id}', path: '/devices/d42', goal: 0.9 },
  { metric: 'GET /devices?limit=100', path: '/devices?limit=100', goal: null },
];

interface Run {
  rps: number;
  /** autocannon's percentiles are whole milliseconds; the mean is not. */
  mean: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(url: string, seconds: number): Promise<Run> {
  const r = await autocannon({ url, connections: CONNECTIONS, pipelining: 1, duration: seconds });
  return { rps: Math.round(r.requests.average), mean: r.latency.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts };
}

/** The bridge's exact response text, after checking it is a 200. */
async function body(url: string): Promise<string> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text}`);
  return text;
}

function summary(runs: Run[]) {
  return {
    mean: round(median(runs.map((r) => r.mean))),
    p50: round(median(runs.map((r) => r.p50))),
    p99: round(median(runs.map((r) => r.p99))),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    errors: runs.reduce((n, r) => n + r.errors, 0),
  };
}

export const rest: Scenario = {
  name: 'rest',
  description: 'REST GET /devices/{id} and GET /devices?limit=100, requests per second with autocannon, beside a bare Fastify route',
  async run(ctx) {
    const seconds = ctx.quick ? 2 : 10;
    const broker = await ctx.broker();
    const dir = mkdtempSync(join(tmpdir(), 'wiihey-bench-rest-'));
    const procs: Proc[] = [];
    try {
      const bridge = await startBridge({ MQTT_URL: broker.url, WIIHEY_APP_ID: 'bench', MQTT_CLIENT_ID: `bench-rest-${process.pid}`, DATA_DIR: '' });
      procs.push(bridge);
      await publishBurst(broker.url, TOPIC, 1, DEVICES, DEVICES);
      await waitFor(
        async () => ((await (await fetch(`${bridge.base}/stats`)).json()) as { devices: number }).devices >= DEVICES,
        60_000,
        `the bridge to hold ${DEVICES} devices`,
      );

      // the baseline answers with the bridge's bytes, checked below, so only the stack differs
      const texts = await Promise.all(TARGETS.map((t) => body(bridge.base + t.path)));
      const file = join(dir, 'rest.json');
      writeFileSync(file, JSON.stringify({ device: JSON.parse(texts[0]!), list: JSON.parse(texts[1]!) }));
      const bare = await startScript('baselines/rest.ts', [file]);
      procs.push(bare);
      const port = bare.lines.find((l) => l.startsWith('port '))?.slice(5);
      if (!port) throw new Error(`baselines/rest.ts printed no port: ${bare.output()}`);
      const bareBase = `http://127.0.0.1:${port}`;
      for (const [i, t] of TARGETS.entries()) {
        if ((await body(bareBase + t.path)) !== texts[i]) throw new Error(`the bare route's ${t.path} differs from the bridge's`);
      }

      const results: Result[] = [];
      for (const [i, t] of TARGETS.entries()) {
        // a discarded warm-up each (JIT, connections), then alternate who goes first, so that
        // noise on the shared machine falls on both alike
        await load(bridge.base + t.path, 1);
        await load(bareBase + t.path, 1);
        const bridgeRuns: Run[] = [];
        const bareRuns: Run[] = [];
        for (let run = 0; run < ctx.runs; run++) {
          const order = run % 2 === 0 ? (['bridge', 'bare'] as const) : (['bare', 'bridge'] as const);
          for (const who of order) {
            if (who === 'bridge') bridgeRuns.push(await load(bridge.base + t.path, seconds));
            else bareRuns.push(await load(bareBase + t.path, seconds));
          }
        }
        const b = summary(bridgeRuns);
        const base = summary(bareRuns);
        const bridgeRps = median(bridgeRuns.map((r) => r.rps));
        const bareRps = median(bareRuns.map((r) => r.rps));
        const r = ratio(bridgeRps, bareRps);
        // a non-2xx or failed request makes the figure meaningless, goal or not
        const clean = b.non2xx + b.errors + base.non2xx + base.errors === 0;
        results.push({
          scenario: 'rest',
          metric: t.metric,
          unit: 'req/s',
          bridge: bridgeRps,
          baseline: bareRps,
          ratio: r,
          goal: t.goal === null ? 'none of its own (beside a bare Fastify route), 0 non-2xx' : `≥ ${t.goal} of the bare Fastify route, 0 non-2xx`,
          met: t.goal === null ? (clean ? null : false) : clean && r >= t.goal,
          details: {
            bridgeMeanMs: b.mean,
            bridgeP50Ms: b.p50,
            bridgeP99Ms: b.p99,
            baselineMeanMs: base.mean,
            baselineP50Ms: base.p50,
            baselineP99Ms: base.p99,
            runs: bridgeRuns.map((x) => x.rps),
            baselineRuns: bareRuns.map((x) => x.rps),
            bridgeNon2xx: b.non2xx,
            baselineNon2xx: base.non2xx,
            bridgeErrors: b.errors,
            baselineErrors: base.errors,
            responseBytes: Buffer.byteLength(texts[i]!),
            connections: CONNECTIONS,
            seconds,
          },
        });
        ctx.log(`  ${t.metric}: bridge ${bridgeRps} req/s (p50 ${b.p50} ms, p99 ${b.p99} ms), bare ${bareRps} req/s (p50 ${base.p50} ms, p99 ${base.p99} ms)`);
      }
      return results;
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
