/// <reference lib="es2024.string" />
// String.prototype.isWellFormed: Node 20 has it; the ES2022 lib this project targets does not declare it
import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import type { DeviceRecord } from '../devices/types.js';
import { mayHideDigits, numberTokens, sameNumber } from './exact-numbers.js';

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
const recordSchema = require('../../schema/record.schema.json') as { properties: Record<Field, object> };
const validateRecord = ajv.compile<DeviceRecord>(recordSchema);
// one field's rules, for two aliases of it: each is held to them before the two are compared
const validateField = new Map([...new Set(ALIASES.values())].map((field) => [field, ajv.compile(recordSchema.properties[field])]));

const DIGITS = /^\d+$/;
const INTEGER = /^-?\d+$/;
const MS_DIGITS = 13; // SPEC §3: a 13-digit timestamp is milliseconds

class Invalid {
  constructor(
    readonly reason: RejectionReason,
    readonly detail: string,
  ) {}
}

/** A JSON number that no double holds (SPEC §3: never store a different number), as the payload wrote it. */
class NumberText {
  constructor(readonly text: string) {}
}

export function normalize(payload: Buffer, nowSeconds: number, limits: NormalizeLimits): Normalized {
  if (payload.length > limits.maxMessageBytes) {
    return reject('too_large', `${payload.length} bytes, over MAX_MESSAGE_BYTES ${limits.maxMessageBytes}`);
  }
  if (!isUtf8(payload)) return reject('invalid_utf8', 'payload is not valid UTF-8');
  const text = payload.toString('utf8');
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch (err) {
    return reject('not_json', (err as Error).message);
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return reject('not_object', `payload is ${Array.isArray(message) ? 'an array' : message === null ? 'null' : typeof message}`);
  }
  try {
    return { ok: true, record: toRecord(message as Record<string, unknown>, text, nowSeconds, limits, null) };
  } catch (err) {
    if (err instanceof Invalid) return reject(err.reason, err.detail);
    throw err;
  }
}

function reject(reason: RejectionReason, detail: string): Normalized {
  return { ok: false, reason, detail };
}

/**
 * `numbers` is null on the fast path (JSON.parse alone). Once a number of the message may not be
 * the number its payload wrote, the message is read again with the source text of its numbers.
 */
function toRecord(
  message: Record<string, unknown>,
  text: string,
  nowSeconds: number,
  limits: NormalizeLimits,
  numbers: ReadonlyMap<string, string> | null,
): DeviceRecord {
  const found: Partial<Record<Field, unknown>> = {};
  const keyOf: Partial<Record<Field, string>> = {};
  let textChecked = false;
  // Object.keys: own keys only, so '__proto__' and 'constructor' stay data (SPEC §3)
  for (const key of Object.keys(message)) {
    let value = message[key];
    if (typeof value === 'number') {
      if (numbers === null) {
        if (!Number.isSafeInteger(value) || (!textChecked && mayHideDigits(text))) {
          return toRecord(message, text, nowSeconds, limits, numberTokens(text));
        }
        textChecked = true;
      } else {
        const token = numbers.get(key);
        if (token !== undefined && !sameNumber(token, value)) {
          // SPEC §3: every original value is kept; one that no double holds, as the text of its digits
          value = new NumberText(token);
          Object.defineProperty(message, key, { value: token, writable: true, enumerable: true, configurable: true });
        }
      }
    }
    const field = ALIASES.get(key.toLowerCase());
    if (field === undefined) {
      // SPEC §2: key-value, values string, number or boolean. Nesting is refused: kept in
      // attributes it would reach every serializer, and deep enough it overflows the stack.
      if (typeof value === 'object' && value !== null && !(value instanceof NumberText)) {
        throw new Invalid('invalid_field', `${JSON.stringify(key)} must be a string, number or boolean, not ${Array.isArray(value) ? 'an array' : 'an object'}`);
      }
      continue;
    }
    if (value === null) continue; // a field sent as null is a field not sent
    const first = keyOf[field];
    if (first !== undefined) {
      // SPEC §3: aliases agree when their values normalize to the same value (Battery 5 and
      // BatteryLevel "5"); an alias whose value is invalid is refused for that, not as a conflict
      if (checked(field, found[field], first) !== checked(field, value, key)) {
        throw new Invalid('conflicting_keys', `${JSON.stringify(first)} and ${JSON.stringify(key)} disagree`);
      }
      continue;
    }
    found[field] = value;
    keyOf[field] = key;
  }

  if (found.deviceId === undefined) throw new Invalid('missing_device_id', 'no DeviceID');
  if (found.state === undefined) throw new Invalid('missing_state', 'no State');
  const timestamp = found.timestamp === undefined ? nowSeconds : toTimestamp(found.timestamp, keyOf.timestamp!);

  const record: DeviceRecord = {
    deviceId: toDeviceId(found.deviceId, keyOf.deviceId!),
    appId: found.appId === undefined ? null : toText(found.appId, keyOf.appId!, true),
    state: toState(found.state, keyOf.state!),
    timestamp,
    batteryLevel: found.batteryLevel === undefined ? null : toInteger(found.batteryLevel, keyOf.batteryLevel!),
    imei: found.imei === undefined ? null : toText(found.imei, keyOf.imei!, false),
    iccid: found.iccid === undefined ? null : toText(found.iccid, keyOf.iccid!, false),
    csq: found.csq === undefined ? null : toInteger(found.csq, keyOf.csq!),
    attributes: message,
  };
  if (!validateRecord(record)) {
    const error = validateRecord.errors![0]!;
    const field = error.instancePath.slice(1) as Field;
    throw new Invalid(reasonFor(field), `${keyOf[field] ?? field} ${error.message ?? 'is invalid'}`);
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

function reasonFor(field: Field): RejectionReason {
  return field === 'deviceId' ? 'invalid_device_id' : field === 'state' ? 'invalid_state' : 'invalid_field';
}

/** One key's value as its field's value, held to the field's rules of schema/record.schema.json. */
function checked(field: Field, value: unknown, key: string): string | number {
  const normalized = convert(field, value, key);
  const validate = validateField.get(field)!;
  if (!validate(normalized)) throw new Invalid(reasonFor(field), `${key} ${validate.errors![0]!.message ?? 'is invalid'}`);
  return normalized;
}

function convert(field: Field, value: unknown, key: string): string | number {
  switch (field) {
    case 'deviceId':
      return toDeviceId(value, key);
    case 'state':
      return toState(value, key);
    case 'appId':
      return toText(value, key, true);
    case 'imei':
    case 'iccid':
      return toText(value, key, false);
    case 'timestamp':
      // a 13-digit value and its seconds agree: both are the same record (SPEC §3 compares normalized values)
      return toTimestamp(value, key);
    case 'batteryLevel':
    case 'csq':
      return toInteger(value, key);
  }
}

function invalidType(reason: RejectionReason, key: string, value: unknown): never {
  throw new Invalid(reason, `${key} must not be ${value instanceof NumberText ? 'a number' : Array.isArray(value) ? 'an array' : typeof value}`);
}

/** SPEC §3: an id or state with a lone surrogate could never be asked for by name. */
function wellFormed(value: string, key: string): string {
  if (value.isWellFormed()) return value;
  throw new Invalid('invalid_field', `${key} is not well-formed Unicode (a lone surrogate)`);
}

/** A string, or an integer as its digits (one beyond 2^53 as the payload wrote them). */
function toDeviceId(value: unknown, key: string): string {
  if (typeof value === 'string') return wellFormed(value, key);
  // below 1e21 String() writes an integer's digits, never an exponent
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) < 1e21) return String(value);
  if (value instanceof NumberText && INTEGER.test(value.text)) return value.text;
  return invalidType('invalid_device_id', key, value);
}

function toState(value: unknown, key: string): string {
  return typeof value === 'string' ? wellFormed(value, key) : invalidType('invalid_state', key, value);
}

/** A string; a number becomes a string (SPEC §3 for appId, IMEI and ICCID), one no double holds as written. */
function toText(value: unknown, key: string, id: boolean): string {
  if (typeof value === 'string') return id ? wellFormed(value, key) : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (value instanceof NumberText) return value.text;
  return invalidType('invalid_field', key, value);
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
  if (value instanceof NumberText) value = value.text;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : typeof value;
}
