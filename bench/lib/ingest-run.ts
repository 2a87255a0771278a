import { publishBurst } from './publish.js';
import { startBridge, waitFor } from './procs.js';
import { lost, perSecond } from './stats.js';

// One ingest run for the scenarios that compare a feature on and off in the same run (SPEC §10:
// registry and alarms cost ingest at most 5 %): a fresh bridge (QoS 1, memory only), `prepare`
// once it listens, then `count` messages over `devices` devices, timed from the first publish
// until /stats counts every one accepted.

export const TOPIC = 'iot/bench/inbox';

export async function ingestRun(
  url: string,
  env: Record<string, string>,
  count: number,
  devices: number,
  prepare: (base: string) => Promise<void> = async () => {},
  changeEvery = 1,
): Promise<{ rate: number; lost: number }> {
  const bridge = await startBridge({ MQTT_URL: url, WIIHEY_APP_ID: 'bench', MQTT_QOS: '1', MQTT_CLEAN_SESSION: 'true', DATA_DIR: '', ...env });
  let accepted = 0;
  try {
    await prepare(bridge.base);
    const started = Date.now();
    const publishing = publishBurst(url, TOPIC, 1, count, devices, undefined, changeEvery);
    await waitFor(
      async () => {
        accepted = ((await (await fetch(`${bridge.base}/stats`)).json()) as { messages: { accepted: number } }).messages.accepted;
        return accepted >= count;
      },
      300_000,
      'the bridge to accept every message',
    ).catch(() => {});
    const ms = Date.now() - started;
    await publishing;
    return { rate: accepted >= count ? perSecond(count, ms) : Number.NaN, lost: lost(count, accepted) };
  } finally {
    await bridge.stop();
  }
}
