import { ingestRun } from '../lib/ingest-run.js';
import { median, ratio } from '../lib/stats.js';
import type { Result, Scenario } from '../lib/types.js';

// SPEC §10, §12: alarms cost ingest at most 5 %: the same ingest with alarms on and off, one run,
// in two mixes. "worst case": the ingest scenario's burst, each device between open and close
// every round, so that every message raises or clears a cover_open alarm (two events a message
// instead of one). "a fleet": each device changes state every 50th message and heartbeats
// otherwise, as real covers do; 2 % of the messages raise or clear an alarm.

const DEVICES = 1000;

interface Mix {
  metric: string;
  changeEvery: number;
}

const MIXES: Mix[] = [
  { metric: 'ingest QoS 1, memory only, alarms on: a fleet (2 % of the messages raise or clear one)', changeEvery: 50 },
  { metric: 'ingest QoS 1, memory only, alarms on: worst case (every message raises or clears one)', changeEvery: 1 },
];

export const alarms: Scenario = {
  name: 'alarms',
  description: 'ingest with alarms on beside alarms off (SPEC §10: at most 5 % apart), a fleet and the worst case',
  async run(ctx) {
    const count = ctx.size(100_000);
    const results: Result[] = [];
    for (const mix of MIXES) {
      const rates = { on: [] as number[], off: [] as number[] };
      let lostTotal = 0;
      for (let run = 0; run < ctx.runs; run++) {
        // alternated within each run, each on a fresh broker, so that drift of the machine hits both
        for (const on of run % 2 === 0 ? [false, true] : [true, false]) {
          const broker = await ctx.broker();
          const env = { MQTT_CLIENT_ID: `bench-alarms-${on}-${mix.changeEvery}-${run}-${process.pid}`, ALARMS_ENABLED: String(on) };
          const got = await ingestRun(broker.url, env, count, DEVICES, undefined, mix.changeEvery);
          (on ? rates.on : rates.off).push(got.rate);
          lostTotal += got.lost;
          await broker.stop();
        }
      }
      const r = ratio(median(rates.on), median(rates.off));
      results.push({
        scenario: 'alarms',
        metric: mix.metric,
        unit: 'msg/s',
        bridge: median(rates.on),
        baseline: median(rates.off),
        ratio: r,
        goal: '≥ 0.95 of the same ingest with ALARMS_ENABLED=false, 0 lost',
        met: r >= 0.95 && lostTotal === 0,
        details: { runsOn: rates.on, runsOff: rates.off, messages: count, devices: DEVICES, changeEvery: mix.changeEvery, lost: lostTotal },
      });
    }
    return results;
  },
};
