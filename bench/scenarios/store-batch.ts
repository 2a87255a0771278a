import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/devices/stores/sqlite.js';
import type { DeviceRecord } from '../../src/devices/types.js';
import { round } from '../lib/stats.js';
import type { Result, Scenario } from '../lib/types.js';

// Issue 17's first question: what a message costs the SQLite store alone when messages are
// written one transaction each (today: a PUBACK waits for its own commit) and in batches of the
// broker's in-flight window (Mosquitto's default 20; 100 in the bench's broker). In process, no
// MQTT: the store's applyBatch() over the same messages, at SQLITE_SYNCHRONOUS normal and full.

const DEVICES = 1000;
const SIZES = [1, 20, 100];

function records(count: number): DeviceRecord[] {
  const out: DeviceRecord[] = [];
  for (let i = 0; i < count; i++) {
    const round = Math.floor(i / DEVICES);
    const deviceId = `d${i % DEVICES}`;
    const state = round % 2 ? 'open' : 'close';
    out.push({ deviceId, appId: null, state, timestamp: 1_700_000_000 + round, batteryLevel: 9000, imei: '868575022027272', iccid: null, csq: 25, attributes: { DeviceID: deviceId, State: state } });
  }
  return out;
}

async function perMessageUs(size: number, synchronous: 'normal' | 'full', messages: DeviceRecord[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'wiihey-bench-batch-'));
  const store = new SqliteStore({ dir, historyLimit: 50, eventBuffer: 1000, synchronous, alarms: null });
  try {
    const at = new Date().toISOString();
    const started = performance.now();
    for (let i = 0; i < messages.length; i += size) {
      await store.applyBatch(messages.slice(i, i + size).map((record) => ({ record, receivedAt: at })));
    }
    return ((performance.now() - started) * 1000) / messages.length;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const storeBatch: Scenario = {
  name: 'store-batch',
  description: 'the SQLite store alone: microseconds a message, one transaction each beside batches of 20 and 100 (issue 17)',
  async run(ctx) {
    const messages = records(ctx.size(20_000));
    const results: Result[] = [];
    for (const synchronous of ['normal', 'full'] as const) {
      const single = await perMessageUs(1, synchronous, messages);
      for (const size of SIZES) {
        const us = size === 1 ? single : await perMessageUs(size, synchronous, messages);
        results.push({
          scenario: 'store-batch',
          metric: `SQLite applyBatch, batches of ${size}, SQLITE_SYNCHRONOUS=${synchronous}`,
          unit: 'µs/msg',
          bridge: round(us, 1),
          baseline: size === 1 ? null : round(single, 1),
          ratio: size === 1 ? null : round(single / us, 2),
          goal: 'none of its own: what batching saves the store (issue 17)',
          met: null,
          details: { messages: messages.length, devices: DEVICES },
        });
      }
    }
    return results;
  },
};
