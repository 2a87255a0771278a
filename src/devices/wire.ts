import { createRequire } from 'node:module';
import fastJson from 'fast-json-stringify';
import type { DeviceEvent } from './events.js';
import type { Device } from './types.js';

// The wire forms of SPEC §5, built once per event and shared by every client (STYLE: hot paths).
// The device's JSON comes from schema/device.schema.json, the shape REST serves too.

const require = createRequire(import.meta.url);
const stringifyDevice = fastJson(require('../../schema/device.schema.json'));

export function deviceJson(device: Device): string {
  return stringifyDevice(device);
}

function eventDeviceJson(event: DeviceEvent): string {
  return (event.wire.device ??= stringifyDevice(event.device));
}

/** The /ws frame: `{"type":"update","seq":n,"device":…,"previousState":…,"changed":…}` or `{"type":"silent",…}`. */
export function wsFrame(event: DeviceEvent): string {
  if (event.wire.ws !== null) return event.wire.ws;
  const device = eventDeviceJson(event);
  return (event.wire.ws =
    event.kind === 'update'
      ? `{"type":"update","seq":${event.seq},"device":${device},"previousState":${JSON.stringify(event.previousState)},"changed":${event.changed}}`
      : `{"type":"silent","seq":${event.seq},"device":${device}}`);
}

/** The /events block: `id`, `event` and one `data` line of JSON, ended by a blank line. */
export function sseBlock(event: DeviceEvent): string {
  if (event.wire.sse !== null) return event.wire.sse;
  const device = eventDeviceJson(event);
  const data =
    event.kind === 'update'
      ? `{"device":${device},"previousState":${JSON.stringify(event.previousState)},"changed":${event.changed}}`
      : `{"device":${device}}`;
  // JSON never contains a raw newline, so one data line carries it whole
  return (event.wire.sse = `id: ${event.seq}\nevent: ${event.kind}\ndata: ${data}\n\n`);
}
