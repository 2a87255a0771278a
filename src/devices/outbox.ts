import type { DeviceEvent, SilentEvent, UpdateEvent } from './events.js';
import { deviceJson } from './wire.js';

// SPEC §5 webhooks: every stateChanged and silent event, for each URL of WEBHOOK_URLS. The store
// enqueues deliveries in the transaction that stores the event (SPEC §7: nothing leaves before
// it is stored), so a pending delivery survives whatever the store survives.

export type WebhookType = 'device.state_changed' | 'device.silent';

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
  /** Deliveries of `url` due at `now`, oldest first. */
  dueDeliveries(url: string, now: number, limit: number): Promise<Delivery[]>;
  /** When the next delivery of `url` falls due, or null when none is pending. */
  nextDueAt(url: string): Promise<number | null>;
  deliveryDone(id: number): Promise<void>;
  deliveryRetry(id: number, attempts: number, nextAttemptAt: number): Promise<void>;
  pendingDeliveries(): Promise<number>;
}

/** The events that become webhooks: a state change (new devices included) and a device falling silent. */
export function webhookType(event: DeviceEvent): WebhookType | null {
  if (event.kind === 'silent') return 'device.silent';
  if (event.kind === 'meta') return null; // SPEC §5 lists the webhook types: a registry change is none
  return event.changed ? 'device.state_changed' : null;
}

/** `{"type":…,"timestamp":<ISO 8601>,"data":{"seq":…,"device":…,"previousState":…}}` (SPEC §5). */
export function webhookBody(event: UpdateEvent | SilentEvent, type: WebhookType, at: string): string {
  const device = (event.wire.device ??= deviceJson(event.device));
  const previousState = event.kind === 'update' ? event.previousState : event.device.state;
  return `{"type":"${type}","timestamp":"${at}","data":{"seq":${event.seq},"device":${device},"previousState":${JSON.stringify(previousState)}}}`;
}

/** SPEC §5: the same on every retry, unique over the store's whole life, and without a `.`. */
export function webhookId(storeId: string, seq: number): string {
  return `msg_${storeId}_${seq}`;
}
