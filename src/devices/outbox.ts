import type { AlarmTransition } from './alarms.js';
import type { AlarmEvent, DeviceEvent } from './events.js';
import { alarmJson, deviceJson } from './wire.js';

// SPEC §5 webhooks: every stateChanged and silent event, for each URL of WEBHOOK_URLS. The store
// enqueues deliveries in the transaction that stores the event (SPEC §7: nothing leaves before
// it is stored), so a pending delivery survives whatever the store survives.

export type WebhookType = 'device.state_changed' | 'device.silent' | `alarm.${AlarmTransition}`;

export interface Delivery {
  id: number;
  url: string;
  seq: number;
  /** The request body, fixed when enqueued: every retry sends the same bytes. */
  body: string;
  attempts: number;
  /** Milliseconds since the epoch. */
  nextAttemptAt: number;
}

/** The part of a store that keeps pending deliveries. */
export interface Outbox {
  /** Deliveries of `url` due at `now`, oldest first. Reading settles nothing. */
  dueDeliveries(url: string, now: number, limit: number): Promise<Delivery[]>;
  /**
   * SPEC §8: the due deliveries a sender takes: as dueDeliveries(), and no other process gets them
   * for `leaseMs` (its attempt under way), unless the sender settles them first. A store of one
   * process returns what dueDeliveries() does: the sender's own in-flight set keeps it from
   * sending one twice. A sender that dies leaves its deliveries to be taken when the lease ends.
   */
  claimDeliveries(url: string, now: number, limit: number, leaseMs: number): Promise<Delivery[]>;
  /** When the next delivery of `url` falls due, or null when none is pending. */
  nextDueAt(url: string): Promise<number | null>;
  deliveryDone(id: number): Promise<void>;
  deliveryRetry(id: number, attempts: number, nextAttemptAt: number): Promise<void>;
  pendingDeliveries(): Promise<number>;
}

/** The events that become webhooks: a state change (new devices included) and a device falling silent. */
export function webhookType(event: DeviceEvent): WebhookType | null {
  switch (event.kind) {
    case 'silent':
      return 'device.silent';
    case 'meta':
      return null; // SPEC §5 lists the webhook types: a registry change is none
    case 'alarm':
      return `alarm.${event.transition}`; // SPEC §12
    case 'update':
      return event.changed ? 'device.state_changed' : null;
  }
}

/** When an alarm transition happened: its source time where it has one (SPEC §12), else the bridge's. */
function alarmTime(event: AlarmEvent, at: string): string {
  const { alarm } = event;
  if (event.transition === 'raised') return alarm.raisedAt;
  if (event.transition === 'cleared') return alarm.clearedAt ?? at;
  if (event.transition === 'acknowledged') return alarm.acknowledgedAt ?? at;
  return at;
}

/** `{"type":…,"timestamp":<ISO 8601>,"data":{"seq":…,"device":…,"previousState":…}}` (SPEC §5). */
export function webhookBody(event: DeviceEvent, type: WebhookType, at: string): string {
  if (event.kind === 'alarm') {
    // SPEC §12: the alarm with the device's registry entry in it, so a receiver can dispatch a crew
    const alarm = (event.wire.device ??= alarmJson(event.alarm));
    return `{"type":"${type}","timestamp":"${alarmTime(event, at)}","data":{"seq":${event.seq},"transition":"${event.transition}","alarm":${alarm}}}`;
  }
  if (event.kind === 'meta') throw new Error('a meta event is no webhook');
  const device = (event.wire.device ??= deviceJson(event.device));
  const previousState = event.kind === 'update' ? event.previousState : event.device.state;
  return `{"type":"${type}","timestamp":"${at}","data":{"seq":${event.seq},"device":${device},"previousState":${JSON.stringify(previousState)}}}`;
}

/** SPEC §5: the same on every retry, unique over the store's whole life, and without a `.`. */
export function webhookId(storeId: string, seq: number): string {
  return `msg_${storeId}_${seq}`;
}
