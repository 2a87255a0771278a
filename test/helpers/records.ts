import type { DeviceRecord } from '../../src/devices/types.js';

/** A normalized record with every field set; override what the test is about. */
export function record(overrides: Partial<DeviceRecord> = {}): DeviceRecord {
  const base: DeviceRecord = {
    deviceId: 'd1',
    appId: 'a6157a33',
    state: 'close',
    timestamp: 1_700_000_000,
    batteryLevel: 9000,
    imei: '351756051523999',
    iccid: '89014103243534707921',
    csq: 20,
    attributes: {},
  };
  const rec = { ...base, ...overrides };
  if (overrides.attributes === undefined) {
    rec.attributes = { DeviceID: rec.deviceId, State: rec.state, Timestamp: rec.timestamp };
  }
  return rec;
}
