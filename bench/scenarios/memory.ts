import { publishBurst } from '../lib/publish.js';
import { INSPECT_ENV, inspect } from '../lib/inspector.js';
import { rss, startBridge, startScript, waitFor } from '../lib/procs.js';
import { lost, median, ratio, round } from '../lib/stats.js';
import type { Result, Scenario } from '../lib/types.js';

// SPEC §10: 1,000,000 devices in under 1 GiB of resident memory (memory only); a bare Map of
// the device shape takes about 600 MiB, and history and indexes must not multiply it. The goal is
// on resident memory right after the burst (garbage V8 has not collected yet included, as an
// operator sees it); the figure after a full collection, through the inspector, rides along.

const TOPIC = 'iot/bench/inbox';
const GIB = 2 ** 30;

export const memory: Scenario = {
  name: 'memory',
  description: 'resident memory with 100,000 and 1,000,000 devices (memory only), beside a bare Map of the same devices',
  async run(ctx) {
    const results: Result[] = [];
    for (const full of [100_000, 1_000_000]) {
      const count = ctx.size(full);
      const bridgeRss: number[] = [];
      const mapRss: number[] = [];
      const bridgeGrowth: number[] = [];
      const afterGc: number[] = [];
      const mapGrowth: number[] = [];
      let lostTotal = 0;
      for (let run = 0; run < ctx.runs; run++) {
        const map = await startScript('baselines/map.ts', [String(count)]);
        const [, after, before] = map.lines.find((l) => l.startsWith('rss '))!.split(' ');
        mapRss.push(Number(after));
        mapGrowth.push(Number(after) - Number(before));
        await map.stop();

        const broker = await ctx.broker();
        const bridge = await startBridge({ MQTT_URL: broker.url, WIIHEY_APP_ID: 'bench', MQTT_CLIENT_ID: `bench-memory-${run}-${process.pid}`, MQTT_CLEAN_SESSION: 'true', DATA_DIR: '', ...INSPECT_ENV });
        try {
          const empty = rss(bridge.pid);
          await publishBurst(broker.url, TOPIC, 1, count, count);
          let devices = 0;
          await waitFor(
            async () => {
              devices = ((await (await fetch(`${bridge.base}/stats`)).json()) as { devices: number }).devices;
              return devices >= count;
            },
            600_000,
            'every device stored',
            200,
          ).catch((err: unknown) => ctx.log(`  ${(err as Error).message}: ${devices} of ${count}`));
          lostTotal += lost(count, devices);
          const loaded = rss(bridge.pid);
          bridgeRss.push(loaded);
          bridgeGrowth.push(loaded - empty);
          const inspector = await inspect(bridge.output);
          try {
            afterGc.push((await inspector.memory()).rss);
            ctx.log(`  ${count} devices, run ${run + 1}: rss ${round(loaded / 2 ** 20, 0)} MiB after the burst, ${round(afterGc.at(-1)! / 2 ** 20, 0)} MiB after a full GC`);
          } finally {
            inspector.close();
          }
        } finally {
          await bridge.stop();
          await broker.stop();
        }
      }
      const bridge = median(bridgeRss);
      const baseline = median(mapRss);
      results.push({
        scenario: 'memory',
        metric: `resident memory, ${count.toLocaleString('en-US')} devices`,
        unit: 'MiB',
        bridge: round(bridge / 2 ** 20, 0),
        baseline: round(baseline / 2 ** 20, 0),
        ratio: ratio(bridge, baseline),
        goal: full === 1_000_000 ? '< 1 GiB with 1,000,000 devices' : 'bytes per device as with 1,000,000',
        met: full === 1_000_000 && !ctx.quick ? bridge < GIB && lostTotal === 0 : null,
        // per device: what the devices added to the process, beside what they add to a bare Map
        details: {
          bytesPerDevice: Math.round(median(bridgeGrowth) / count),
          baselineBytesPerDevice: Math.round(median(mapGrowth) / count),
          runs: bridgeRss,
          afterFullGcMiB: afterGc.map((b) => round(b / 2 ** 20, 0)),
          lost: lostTotal,
        },
      });
    }
    return results;
  },
};
