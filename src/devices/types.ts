// The shapes of SPEC section 4. schema/*.json describe the same shapes for ajv, the REST
// serializer and openapi.yaml; test/schemas.test.ts holds these types and those files together.

/** A WiiHey message after normalization (schema/record.schema.json). */
export interface DeviceRecord {
  deviceId: string;
  appId: string | null;
  state: string;
  /** Unix seconds. */
  timestamp: number;
  batteryLevel: number | null;
  imei: string | null;
  iccid: string | null;
  csq: number | null;
  /** Every original key and value of the message. */
  attributes: Record<string, unknown>;
}

/** The latest known state of a device (schema/device.schema.json). */
export interface Device {
  deviceId: string;
  appId: string | null;
  state: string;
  previousState: string | null;
  batteryLevel: number | null;
  imei: string | null;
  iccid: string | null;
  csq: number | null;
  timestamp: number;
  lastSeenAt: string;
  lastChangedAt: string;
  receivedAt: string;
  silent: boolean;
  messages: number;
  attributes: Record<string, unknown>;
}

export type HistoryKind = 'update' | 'late';

/** One entry of a device's history (schema/history-entry.schema.json). */
export interface HistoryEntry {
  timestamp: number;
  state: string;
  batteryLevel: number | null;
  csq: number | null;
  receivedAt: string;
  kind: HistoryKind;
}
