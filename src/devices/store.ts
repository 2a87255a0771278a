import type { DeviceEvent, UpdateEvent } from './events.js';
import type { Outbox } from './outbox.js';
import type { Device, DeviceRecord, HistoryEntry } from './types.js';

// The device store: the memory store now, SQLite (DATA_DIR) and Redis (REDIS_URL) next.
// Every implementation runs test/devices/store.contract.ts. Async throughout, since the
// durable ones are; an event leaves the store only once its effect is stored (SPEC §7).

export type StoreOutcome = { kind: 'update'; event: UpdateEvent } | { kind: 'duplicate' } | { kind: 'late' };

export interface ListQuery {
  state?: string | undefined;
  silent?: boolean | undefined;
  /** Only devices whose id sorts after this one. */
  after?: string | undefined;
  limit: number;
}

export interface DevicePage {
  items: Device[];
  /** Devices matching the filter, on all pages. */
  total: number;
  /** The last deviceId of this page when more follow, else null. */
  lastId: string | null;
}

export interface StoreSummary {
  devices: number;
  byState: Record<string, number>;
  silent: number;
}

/**
 * The store also keeps the webhook outbox (webhooks/outbox.ts): apply() and markSilent()
 * enqueue a delivery per webhook URL for each event that becomes a webhook, in the same write.
 */
export interface DeviceStore extends Outbox {
  /** Created once with the store's data and kept with it (webhook ids derive from it, SPEC §5). */
  readonly storeId: string;
  /** The seq of the newest event this store emitted. */
  lastSeq(): Promise<number>;
  /** Applies SPEC §4 to one message atomically; an update gets the next seq. */
  apply(record: DeviceRecord, receivedAt: string): Promise<StoreOutcome>;
  get(deviceId: string): Promise<Device | undefined>;
  list(query: ListQuery): Promise<DevicePage>;
  /** Newest first; undefined for an unknown device. */
  history(deviceId: string, limit: number): Promise<HistoryEntry[] | undefined>;
  /**
   * Marks up to `limit` devices silent whose timestamp is older than `cutoff` (Unix seconds) and
   * that are not silent yet; one event each. Fewer than `limit` events: none is left.
   */
  markSilent(cutoff: number, limit: number, markedAt: string): Promise<DeviceEvent[]>;
  summary(): Promise<StoreSummary>;
  /** The newest events it kept, oldest first (at most `limit`): replay survives a restart. */
  recentEvents(limit: number): Promise<DeviceEvent[]>;
  close(): Promise<void>;
}
