import fastJson from 'fast-json-stringify';
import { loadSchema } from '../schemas.js';
import type { Alarm } from './alarms.js';
import type { AlarmEvent, DeviceEvent, MetaEvent, SilentEvent, UpdateEvent } from './events.js';
import type { Device } from './types.js';

// The wire forms of SPEC §5, built once per event and shared by every client (STYLE: hot paths).
// The device's JSON comes from schema/device.schema.json, the shape REST serves too.

const stringifyDevice = fastJson(loadSchema('device.schema.json'));
const stringifyAlarm = fastJson(loadSchema('alarm.schema.json'));

export function alarmJson(alarm: Alarm): string {
  return stringifyAlarm(alarm);
}

/** SPEC §12: the alarm event's payload after its type and seq. */
function alarmFields(event: AlarmEvent): string {
  return `"transition":"${event.transition}","alarm":${(event.wire.device ??= stringifyAlarm(event.alarm))}`;
}

export function deviceJson(device: Device): string {
  return stringifyDevice(device);
}

/** The event's device as JSON ("null" for a meta event of a device never heard from). An alarm event's wire.device holds its alarm's JSON. */
export function eventDeviceJson(event: UpdateEvent | SilentEvent | MetaEvent): string {
  return (event.wire.device ??= event.device === null ? 'null' : stringifyDevice(event.device));
}

/** SPEC §11: the meta event's payload after its type and seq (the entry beside the device, which may be null). */
function metaFields(event: MetaEvent): string {
  return `"deviceId":${JSON.stringify(event.deviceId)},"device":${eventDeviceJson(event)},"meta":${event.device === null ? JSON.stringify(event.meta) : stringifyMeta(event.device)}`;
}

/** The device's meta as JSON, from the device's own serialization (no second serializer). */
function stringifyMeta(device: Device): string {
  return device.meta === null ? 'null' : JSON.stringify(device.meta);
}

/**
 * The /ws frame: `{"type":"update","seq":n,"device":…,"previousState":…,"changed":…}`,
 * `{"type":"silent",…}` or `{"type":"meta","seq":n,"deviceId":…,"device":…,"meta":…}`.
 */
export function wsFrame(event: DeviceEvent): string {
  if (event.wire.ws !== null) return event.wire.ws;
  switch (event.kind) {
    case 'update':
      return (event.wire.ws = `{"type":"update","seq":${event.seq},"device":${eventDeviceJson(event)},"previousState":${JSON.stringify(event.previousState)},"changed":${event.changed}}`);
    case 'silent':
      return (event.wire.ws = `{"type":"silent","seq":${event.seq},"device":${eventDeviceJson(event)}}`);
    case 'meta':
      return (event.wire.ws = `{"type":"meta","seq":${event.seq},${metaFields(event)}}`);
    case 'alarm':
      return (event.wire.ws = `{"type":"alarm","seq":${event.seq},${alarmFields(event)}}`);
  }
}

/** The /events block: `id`, `event` and one `data` line of JSON, ended by a blank line. */
export function sseBlock(event: DeviceEvent): string {
  if (event.wire.sse !== null) return event.wire.sse;
  const data =
    event.kind === 'update'
      ? `{"device":${eventDeviceJson(event)},"previousState":${JSON.stringify(event.previousState)},"changed":${event.changed}}`
      : event.kind === 'silent'
        ? `{"device":${eventDeviceJson(event)}}`
        : event.kind === 'meta'
          ? `{${metaFields(event)}}`
          : `{${alarmFields(event)}}`;
  // JSON never contains a raw newline, so one data line carries it whole
  return (event.wire.sse = `id: ${event.seq}\nevent: ${event.kind}\ndata: ${data}\n\n`);
}
