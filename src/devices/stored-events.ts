import type { Alarm, AlarmTransition } from './alarms.js';
import { alarmEvent, metaEvent, silentEvent, updateEvent, type DeviceEvent, type EventKind } from './events.js';
import type { Device, RegistryEntry } from './types.js';

// How a durable store keeps an event for replay after a restart (SQLite's events ring, Redis's
// stream): its kind, the update's previousState and changed, and one JSON text. One form for
// every store, so that an event read back is the event that was emitted.

/** An update's or a silence's stored text: the device's JSON. */
export function storedDevice(deviceJson: string): string {
  return deviceJson;
}

/** An alarm event's stored text: the transition, the alarm and the device (JSON, or `null`). */
export function storedAlarm(transition: AlarmTransition, alarmJson: string, deviceJson: string): string {
  return `{"transition":"${transition}","alarm":${alarmJson},"device":${deviceJson}}`;
}

/** A meta event's stored text: the device id, the device (JSON, or `null`) and the entry. */
export function storedMeta(deviceId: string, deviceJson: string, entry: RegistryEntry | null): string {
  return `{"deviceId":${JSON.stringify(deviceId)},"device":${deviceJson},"meta":${JSON.stringify(entry)}}`;
}

/** The event a stored form describes. */
export function eventFromStored(seq: number, kind: EventKind, previousState: string | null, changed: boolean, stored: string): DeviceEvent {
  if (kind === 'alarm') {
    const s = JSON.parse(stored) as { transition: AlarmTransition; alarm: Alarm; device: Device | null };
    return alarmEvent(seq, s.device, s.transition, s.alarm);
  }
  if (kind === 'meta') {
    const s = JSON.parse(stored) as { deviceId: string; device: Device | null; meta: RegistryEntry | null };
    return metaEvent(seq, s.deviceId, s.device, s.meta);
  }
  const device = JSON.parse(stored) as Device;
  return kind === 'silent' ? silentEvent(seq, device) : updateEvent(seq, device, previousState, changed);
}
