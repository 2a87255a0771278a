/// <reference lib="es2024.string" />
// String.prototype.isWellFormed: Node 20 has it; the ES2022 lib this project targets does not declare it
import type { RegistryEntry } from './types.js';
import { codePoints } from '../text.js';

// SPEC §11: what a registry entry may hold. One pure check for every way an entry comes in
// (PUT /registry/{deviceId}, a JSON import element, a CSV row turned into an object of strings),
// so the three can never disagree. A refusal is a reason that starts with the field's name.

/** Upper bounds in Unicode code points (SPEC §11: "strings bounded", "at most 32 tags"). */
export const REGISTRY_LIMITS = { name: 200, address: 500, zone: 100, tag: 64, tags: 32 } as const;

/** The entry's keys in the one order REST, CSV headers, exports and GraphQL use (SPEC §11). */
export const ENTRY_FIELDS = ['deviceId', 'name', 'address', 'latitude', 'longitude', 'zone', 'tags'] as const;

export type CheckedEntry = { ok: true; entry: RegistryEntry } | { ok: false; reason: string };

// SPEC §3: the same bound ingest holds a deviceId to (schema/record.schema.json), so every id a
// device can report can be registered, and no id that could never report can
const MAX_ID_LENGTH = 128;

/** Why a value is not a deviceId, or null when it is one. */
export function deviceIdProblem(id: unknown): string | null {
  if (typeof id !== 'string') return 'deviceId must be a string';
  if (id.length === 0 || (id.length > MAX_ID_LENGTH && codePoints(id) > MAX_ID_LENGTH)) return `deviceId must be 1 to ${MAX_ID_LENGTH} characters`;
  if (!id.isWellFormed()) return 'deviceId must be well-formed Unicode (no lone surrogate)';
  if (controlAt(id, false)) return 'deviceId must not hold control characters';
  return null;
}

type TextField = 'name' | 'address' | 'zone';

/**
 * The entry `input` describes for `deviceId`, or why it is refused. A field left out or null is
 * null (tags: []); unknown keys are ignored (SPEC §11: PUT replaces the whole entry).
 */
export function checkEntry(deviceId: string, input: unknown): CheckedEntry {
  const idProblem = deviceIdProblem(deviceId);
  if (idProblem !== null) return refuse(idProblem);
  if (!isPlainObject(input)) return refuse('entry must be a JSON object');
  const given = (key: string): unknown => (Object.hasOwn(input, key) ? input[key] : undefined);
  // SPEC §11: "the path names the device"; a body naming another one is a mistake, not a rename
  const bodyId = given('deviceId');
  if (bodyId !== undefined && bodyId !== deviceId) return refuse('deviceId in the body must match the path');

  const name = text('name', given('name'));
  if (isRefusal(name)) return name;
  const address = text('address', given('address'));
  if (isRefusal(address)) return address;
  const latitude = coordinate('latitude', given('latitude'), 90);
  if (isRefusal(latitude)) return latitude;
  const longitude = coordinate('longitude', given('longitude'), 180);
  if (isRefusal(longitude)) return longitude;
  // a marker needs both: one coordinate alone is a half-typed row, not a place
  if ((latitude === null) !== (longitude === null)) return refuse('latitude and longitude go together: set both or neither');
  const zone = text('zone', given('zone'));
  if (isRefusal(zone)) return zone;
  const tags = tagList(given('tags'));
  if (isRefusal(tags)) return tags;
  return { ok: true, entry: { deviceId, name, address, latitude, longitude, zone, tags } };
}

/** Deep equality of two entries, tags in order. */
export function sameEntry(a: RegistryEntry, b: RegistryEntry): boolean {
  return (
    a.deviceId === b.deviceId &&
    a.name === b.name &&
    a.address === b.address &&
    a.latitude === b.latitude &&
    a.longitude === b.longitude &&
    a.zone === b.zone &&
    a.tags.length === b.tags.length &&
    a.tags.every((tag, i) => tag === b.tags[i])
  );
}

type Refusal = { ok: false; reason: string };

function refuse(reason: string): Refusal {
  return { ok: false, reason };
}

function isRefusal(value: unknown): value is Refusal {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A text field: null, or a non-empty bounded string. Text such as `<img onerror=…>` or
 * right-to-left marks is stored as written: SPEC §11 has it escaped where it is shown.
 */
function text(field: TextField, value: unknown): string | null | Refusal {
  if (value === undefined || value === null || value === '') return null; // "" is no name, as null is
  if (typeof value !== 'string') return refuse(`${field} must be a string or null`);
  const max = REGISTRY_LIMITS[field];
  if (value.length > max && codePoints(value) > max) return refuse(`${field} must be at most ${max} characters`);
  if (!value.isWellFormed()) return refuse(`${field} must be well-formed Unicode (no lone surrogate)`);
  // addresses span lines ("Hauptstr. 5\n10115 Berlin") and names are pasted from such text
  if (controlAt(value, field !== 'zone')) {
    return refuse(field === 'zone' ? 'zone must not hold control characters' : `${field} must not hold control characters other than line feed and tab`);
  }
  return value;
}

/** A WGS 84 coordinate in degrees, bounds included; -0 is 0 (one value, one export text). */
function coordinate(field: 'latitude' | 'longitude', value: unknown, bound: number): number | null | Refusal {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !(value >= -bound && value <= bound)) return refuse(`${field} must be a number from -${bound} to ${bound}`);
  return value === 0 ? 0 : value;
}

function tagList(value: unknown): string[] | Refusal {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return refuse('tags must be an array of strings');
  if (value.length > REGISTRY_LIMITS.tags) return refuse(`tags must be at most ${REGISTRY_LIMITS.tags}`);
  const seen = new Set<string>();
  for (const tag of value as unknown[]) {
    if (typeof tag !== 'string') return refuse('tags must be an array of strings');
    if (tag.length === 0 || (tag.length > REGISTRY_LIMITS.tag && codePoints(tag) > REGISTRY_LIMITS.tag)) {
      return refuse(`tags must each be 1 to ${REGISTRY_LIMITS.tag} characters`);
    }
    // SPEC §11: `|` separates the tags of a CSV cell, so a tag holding one could not come back
    if (tag.includes('|')) return refuse("tags must not hold '|'");
    if (!tag.isWellFormed()) return refuse('tags must be well-formed Unicode (no lone surrogate)');
    if (controlAt(tag, false)) return refuse('tags must not hold control characters');
    if (seen.has(tag)) return refuse(`tags must not repeat '${tag}'`);
    seen.add(tag);
  }
  return (value as string[]).slice(); // the order written; a copy the caller cannot change under us
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Whether the text holds U+0000–U+001F or U+007F (as schema/record.schema.json's deviceId pattern). */
function controlAt(value: string, allowLineFeedAndTab: boolean): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) {
      if (allowLineFeedAndTab && (c === 0x0a || c === 0x09)) continue;
      return true;
    }
  }
  return false;
}
