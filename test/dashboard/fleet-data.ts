import type { FastifyInstance } from 'fastify';
import { record } from '../helpers/records.js';

// Demo-like fleets, loaded straight into the store (no MQTT): deterministic, relative to `now`.

/** A small deterministic PRNG (mulberry32), so that the screenshot shows the same fleet every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` manhole sensors with a few days of history each: mostly closed, some open, a few offline,
 * batteries from nearly empty to full, some silent (call app.devices.sweepSilence() after).
 */
export async function loadDemoFleet(app: FastifyInstance, count: number, nowMs: number, seed = 8): Promise<string[]> {
  const random = prng(seed);
  const now = Math.floor(nowMs / 1000);
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const deviceId = Math.floor(random() * 0xffffffff).toString(16).padStart(8, '0');
    ids.push(deviceId);
    const quiet = random() < 0.1; // a sensor that stopped talking five or six days ago
    let ts = now - (quiet ? 6 : 3) * 86400 - Math.floor(random() * 86400);
    const last = quiet ? now - 5 * 86400 - Math.floor(random() * 80000) : now - Math.floor(random() * 2 * 86400);
    let battery = 4000 + Math.floor(random() * 6000);
    if (random() < 0.12) battery = 300 + Math.floor(random() * 1500);
    const drain = Math.floor(random() * 60);
    const csq = random() < 0.06 ? 99 : 4 + Math.floor(random() * 28);
    const finalState = random() < 0.22 ? 'open' : random() < 0.08 ? 'offline' : 'close';
    const messages = 2 + Math.floor(random() * 5);
    for (let m = 0; m < messages; m++) {
      const isLast = m === messages - 1;
      ts = isLast ? last : ts + Math.floor(random() * Math.max(60, (last - ts) / (messages - m)));
      if (ts >= last && !isLast) ts = last - (messages - m) * 60;
      const state = isLast ? finalState : random() < 0.6 ? 'close' : 'open';
      battery -= drain;
      const batteryLevel = Math.max(0, battery);
      const imei = `3517560515${String(100000 + n).slice(1)}`;
      const iccid = `890141032435347${String(100000 + n).slice(1)}`;
      const attributes = { CustomerID: 'a6157a33', DeviceID: deviceId, Timestamp: ts, State: state, BatteryLevel: batteryLevel, IMEI: imei, CCID: iccid, CSQ: csq };
      await app.devices.accept(
        record({ deviceId, state, timestamp: ts, batteryLevel, csq, imei, iccid, attributes }),
        ts * 1000 + 700 + Math.floor(random() * 800),
      );
    }
  }
  return ids;
}

/** `count` devices d00001…, one message each, for the scale test. */
export async function loadManyDevices(app: FastifyInstance, count: number, nowMs: number): Promise<string[]> {
  const ids: string[] = [];
  const now = Math.floor(nowMs / 1000);
  for (let n = 1; n <= count; n++) {
    const deviceId = `d${String(n).padStart(5, '0')}`;
    ids.push(deviceId);
    await app.devices.accept(record({ deviceId, state: n % 3 === 0 ? 'open' : 'close', timestamp: now - n, batteryLevel: (n * 37) % 10001, csq: n % 32 }), nowMs);
  }
  return ids;
}
