import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import type { DeviceRecord } from '../devices/types.js';

// SPEC §3: a WiiHey message (key-value JSON with vendor aliases and quirks) → the canonical
// record of schema/record.schema.json, or a rejection with a reason. A rejection is data.

export const REJECTION_REASONS = [
  'too_large',
  'invalid_utf8',
  'not_json',
  'not_object',
  'missing_device_id',
  'invalid_device_id',
  'missing_state',
  'invalid_state',
  'invalid_field',
  'conflicting_keys',
  'timestamp_in_future',
  'topic_not_configured',
  'internal_error',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export type Normalized =
  | { ok: true; record: DeviceRecord }
  | { ok: false; reason: RejectionReason; detail: string };

export interface NormalizeLimits {
  maxMessageBytes: number;
  maxClockSkewSeconds: number;
}

type Field = 'deviceId' | 'appId' | 'state' | 'timestamp' | 'batteryLevel' | 'imei' | 'iccid' | 'csq';

// SPEC §3 table: keys accepted, compared in lower case
const ALIASES: ReadonlyMap<string, Field> = new Map([
  ['deviceid', 'deviceId'],
  ['device', 'deviceId'],
  ['device_id', 'deviceId'],
  ['app-id', 'appId'],
  ['appid', 'appId'],
  ['customerid', 'appId'],
  ['state', 'state'],
  ['timestamp', 'timestamp'],
  ['ts', 'timestamp'],
  ['batterylevel', 'batteryLevel'],
  ['battery', 'batteryLevel'],
  ['imei', 'imei'],
  ['iccid', 'iccid'],
  ['ccid', 'iccid'],
  ['csq', 'csq'],
]);

const require = createRequire(import.meta.url);
const ajv = new Ajv({ allErrors: false, strict: true });
const validateRecord = ajv.compile<DeviceRecord>(require('../../schema/record.schema.json'));

const DIGITS = /^\d+$/;
const INTEGER = /^-?\d+$/;
const MS_DIGITS = 13; // SPEC §3: a 13-digit timestamp is milliseconds

class Invalid {
  constructor(
    readonly reason: RejectionReason,
    readonly detail: string,
  ) {}
}

export function normalize(payload: Buffer, nowSeconds: number, limits: NormalizeLimits): Normalized {
  if (payload.length > limits.maxMessageBytes) {
    return reject('too_large', `${payload.length} bytes, over MAX_MESSAGE_BYTES ${limits.maxMessageBytes}`);
  }
  if (!isUtf8(payload)) return reject('invalid_utf8', 'payload is not valid UTF-8');
  let message: unknown;
  try {
    message = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return reject('not_json', (err as Error).message);
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return reject('not_object', `payload is ${Array.isArray(message) ? 'an array' : message === null ? 'null' : typeof message}`);
  }
  try {
    return { ok: true, record: toRecord(message as Record<string, unknown>, nowSeconds, limits) };
  } catch (err) {
    if (err instanceof Invalid) return reject(err.reason, err.detail);
    throw err;
  }
}

function reject(reason: RejectionReason, detail: string): Normalized {
  return { ok: false, reason, detail };
}

function toRecord(message: Record<string, unknown>, nowSeconds: number, limits: NormalizeLimits): DeviceRecord {
  const found: Partial<Record<Field, unknown>> = {};
  const keyOf: Partial<Record<Field, string>> = {};
  // Object.keys: own keys only, so '__proto__' and 'constructor' stay data (SPEC §3)
  for (const key of Object.keys(message)) {
    const field = ALIASES.get(key.toLowerCase());
    const value = message[key];
    if (field === undefined) {
      // SPEC §2: key-value, values string, number or boolean. Nesting is refused: kept in
      // attributes it would reach every serializer, and deep enough it overflows the stack.
      if (typeof value === 'object' && value !== null) {
        throw new Invalid('invalid_field', `${JSON.stringify(key)} must be a string, number or boolean, not ${Array.isArray(value) ? 'an array' : 'an object'}`);
      }
      continue;
    }
    if (value === null) continue; // a field sent as null is a field not sent
    if (keyOf[field] !== undefined && found[field] !== value) {
      throw new Invalid('conflicting_keys', `${JSON.stringify(keyOf[field])} and ${JSON.stringify(key)} disagree`);
    }
    found[field] = value;
    keyOf[field] = key;
  }

  if (found.deviceId === undefined) throw new Invalid('missing_device_id', 'no DeviceID');
  if (found.state === undefined) throw new Invalid('missing_state', 'no State');
  const timestamp = found.timestamp === undefined ? nowSeconds : toTimestamp(found.timestamp, keyOf.timestamp!);

  const record: DeviceRecord = {
    deviceId: toText(found.deviceId, keyOf.deviceId!, 'invalid_device_id', false),
    appId: found.appId === undefined ? null : toText(found.appId, keyOf.appId!, 'invalid_field', true),
    state: typeof found.state === 'string' ? found.state : invalidType('invalid_state', keyOf.state!, found.state),
    timestamp,
    batteryLevel: found.batteryLevel === undefined ? null : toInteger(found.batteryLevel, keyOf.batteryLevel!),
    imei: found.imei === undefined ? null : toText(found.imei, keyOf.imei!, 'invalid_field', true),
    iccid: found.iccid === undefined ? null : toText(found.iccid, keyOf.iccid!, 'invalid_field', true),
    csq: found.csq === undefined ? null : toInteger(found.csq, keyOf.csq!),
    attributes: message,
  };
  if (!validateRecord(record)) {
    const error = validateRecord.errors![0]!;
    const field = error.instancePath.slice(1) as Field;
    const reason = field === 'deviceId' ? 'invalid_device_id' : field === 'state' ? 'invalid_state' : 'invalid_field';
    throw new Invalid(reason, `${keyOf[field] ?? field} ${error.message ?? 'is invalid'}`);
  }
  if (timestamp > nowSeconds + limits.maxClockSkewSeconds) {
    // SPEC §3: a far-future timestamp would pin the device's state forever
    throw new Invalid(
      'timestamp_in_future',
      `${keyOf.timestamp} ${timestamp} is ${timestamp - nowSeconds} s ahead, over MAX_CLOCK_SKEW_SECONDS ${limits.maxClockSkewSeconds}`,
    );
  }
  return record;
}

function invalidType(reason: RejectionReason, key: string, value: unknown): never {
  throw new Invalid(reason, `${key} must not be ${Array.isArray(value) ? 'an array' : typeof value}`);
}

/** A string; a number becomes a string where the vendor sends either (integers only for ids). */
function toText(value: unknown, key: string, reason: RejectionReason, anyNumber: boolean): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && (anyNumber ? Number.isFinite(value) : Number.isSafeInteger(value))) {
    return String(value);
  }
  return invalidType(reason, key, value);
}

function toInteger(value: unknown, key: string): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && INTEGER.test(value) && value.length <= 16) return Number(value);
  throw new Invalid('invalid_field', `${key} must be an integer or a string of digits, got ${describe(value)}`);
}

function toTimestamp(value: unknown, key: string): number {
  let n: number;
  let digits: number;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    n = value;
    digits = String(value).length;
  } else if (typeof value === 'string' && DIGITS.test(value) && value.length <= 16) {
    n = Number(value);
    digits = value.replace(/^0+(?=\d)/, '').length;
  } else {
    throw new Invalid('invalid_field', `${key} must be Unix seconds or milliseconds, got ${describe(value)}`);
  }
  return digits === MS_DIGITS ? Math.floor(n / 1000) : n;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : typeof value;
}
