import { makeDevice } from '../../src/devices/rules.js';

// The memory limit of the stack: a bare Map of COUNT devices of the bridge's shape (the same
// factory, the same attributes), nothing else. Prints "rss <bytes> <baseline bytes>" then "ready".
// node --import tsx bench/baselines/map.ts COUNT

const count = Number(process.argv[2]);
const before = process.memoryUsage().rss;
const devices = new Map<string, unknown>();
const at = new Date().toISOString();
for (let i = 0; i < count; i++) {
  const deviceId = `d${i}`;
  const attributes = { DeviceID: deviceId, State: 'close', BatteryLevel: 9000, CSQ: 25, IMEI: '868575022027272', Timestamp: 1_700_000_000 };
  const record = { deviceId, appId: null, state: 'close', timestamp: 1_700_000_000, batteryLevel: 9000, imei: '868575022027272', iccid: null, csq: 25, attributes };
  devices.set(deviceId, makeDevice(record, null, at, at, 1, at, null));
}
process.stdout.write(`rss ${process.memoryUsage().rss} ${before}\nready\n`);
setInterval(() => devices.size, 60_000); // stays alive, the Map with it, until stopped
