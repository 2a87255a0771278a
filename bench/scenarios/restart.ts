import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { makeDevice } from '../../src/devices/rules.js';
import { DATABASE_FILE, SqliteStore } from '../../src/devices/stores/sqlite.js';
import { deviceJson } from '../../src/devices/wire.js';
import { startBridge } from '../lib/procs.js';
import { median, round } from '../lib/stats.js';
import type { Result, Scenario } from '../lib/types.js';

// SPEC §10: a restart with 1,000,000 devices stored is ready in under 10 s: from the process's
// start until GET /readyz answers 200 (MQTT subscribed, store open).

/** A DATA_DIR holding `count` devices, each with one history entry, written in bulk. */
function prepare(count: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'wiihey-bench-restart-'));
  new SqliteStore({ dir, historyLimit: 50, eventBuffer: 1000, synchronous: 'normal' }).close(); // the schema
  const db = new Database(join(dir, DATABASE_FILE));
  db.pragma('journal_mode = WAL');
  const device = db.prepare('INSERT INTO devices (device_id, state, silent, timestamp, history_count, json) VALUES (?, ?, 0, ?, 1, ?)');
  const history = db.prepare("INSERT INTO history (device_id, timestamp, state, battery_level, csq, received_at, kind) VALUES (?, ?, ?, 9000, 25, ?, 'update')");
  const at = new Date().toISOString();
  const insert = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const deviceId = `d${i}`;
      const state = i % 5 ? 'close' : 'open';
      const attributes = { DeviceID: deviceId, State: state, BatteryLevel: 9000, CSQ: 25, Timestamp: 1_700_000_000 };
      const d = makeDevice({ deviceId, appId: null, state, timestamp: 1_700_000_000, batteryLevel: 9000, imei: null, iccid: null, csq: 25, attributes }, null, at, at, 1, at, null);
      device.run(deviceId, state, 1_700_000_000, deviceJson(d));
      history.run(deviceId, 1_700_000_000, state, at);
    }
  });
  for (let i = 0; i < count; i += 50_000) insert(i, Math.min(count, i + 50_000));
  db.close();
  return dir;
}

export const restart: Scenario = {
  name: 'restart',
  description: 'time from start to /readyz 200 with 100,000 and 1,000,000 devices in DATA_DIR',
  async run(ctx) {
    const results: Result[] = [];
    const broker = await ctx.broker();
    for (const full of [100_000, 1_000_000]) {
      const count = ctx.size(full);
      ctx.log(`  writing ${count} devices into a DATA_DIR`);
      const dir = prepare(count);
      const seconds: number[] = [];
      let devices = 0;
      try {
        for (let run = 0; run < ctx.runs; run++) {
          const started = Date.now();
          const bridge = await startBridge({ MQTT_URL: broker.url, WIIHEY_APP_ID: 'bench', MQTT_CLIENT_ID: `bench-restart-${process.pid}`, DATA_DIR: dir });
          seconds.push((Date.now() - started) / 1000);
          devices = ((await (await fetch(`${bridge.base}/stats`)).json()) as { devices: number }).devices;
          await bridge.stop();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const figure = round(median(seconds), 2);
      results.push({
        scenario: 'restart',
        metric: `start to /readyz 200, ${count.toLocaleString('en-US')} devices stored`,
        unit: 's',
        bridge: figure,
        baseline: null,
        ratio: null,
        goal: '< 10 s with 1,000,000 devices',
        met: full === 1_000_000 && !ctx.quick ? figure < 10 && devices === count : null,
        details: { runs: seconds, devicesAfterRestart: devices, lost: count - devices },
      });
    }
    return results;
  },
};
