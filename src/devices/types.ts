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
  /** The device's registry entry (SPEC §11), or null when it has none. */
  meta: RegistryEntry | null;
}

/**
 * What the platform does not send: where a device is and what it is called (SPEC §11,
 * schema/registry-entry.schema.json). The same names in REST, `meta`, CSV headers and GraphQL.
 */
export interface RegistryEntry {
  deviceId: string;
  name: string | null;
  address: string | null;
  /** WGS 84 degrees, -90..90; set together with longitude, or both null. */
  latitude: number | null;
  /** WGS 84 degrees, -180..180. */
  longitude: number | null;
  zone: string | null;
  tags: string[];
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
