/// <reference lib="es2024.string" />
// String.prototype.isWellFormed: Node 20 has it; the ES2022 lib this project targets does not declare it
import type { DeviceEvent, EventKind } from '../devices/events.js';
import type { Device } from '../devices/types.js';
import { BRG_ERR_INVALID_FILTER } from '../errors.js';
import { codePoints } from '../text.js';

// The filters every live API shares (SPEC §5): a set of device ids and a set of states, each
// null for "any". `?deviceId=a,b&state=open` on /ws and /events; arrays in /ws subscribe frames.

export interface EventFilter {
  deviceIds: ReadonlySet<string> | null;
  states: ReadonlySet<string> | null;
  /** SPEC §5 /ws `types`: which kinds of event (update, silent, meta); null: all. */
  types: ReadonlySet<EventKind> | null;
}

export const MATCH_ALL: EventFilter = { deviceIds: null, states: null, types: null };

/** At most this many ids or states in one filter. */
export const MAX_FILTER_ITEMS = 1000;

/** Whether a device belongs in a snapshot for this filter. */
export function matchesDevice(filter: EventFilter, device: Device): boolean {
  return (
    (filter.deviceIds === null || filter.deviceIds.has(device.deviceId)) &&
    (filter.states === null || filter.states.has(device.state))
  );
}

/**
 * Whether an event goes to a client with this filter. A meta event of a device never heard from
 * has no state: only clients without a state filter get it (SPEC §11: clients without a filter
 * receive meta events).
 */
export function matches(filter: EventFilter, event: DeviceEvent): boolean {
  return (
    (filter.types === null || filter.types.has(event.kind)) &&
    (filter.deviceIds === null || filter.deviceIds.has(event.deviceId)) &&
    (filter.states === null || (event.device !== null && filter.states.has(event.device.state)))
  );
}

/** A comma-separated query value (`a,b`) as a set; undefined or empty: null (any). */
export function parseList(value: string | undefined): Set<string> | null {
  if (value === undefined || value === '') return null;
  const items = value.split(',').filter((item) => item !== '');
  return items.length === 0 ? null : new Set(items);
}

// SPEC §3: in code points, as ajv's maxLength counts them for the ids and states ingest accepts
const MAX_ID_LENGTH = 128;
const MAX_STATE_LENGTH = 64;

/** Why a list of ids or states is not a filter, or null when it is one. */
export function listProblem(items: Iterable<string>, what: 'deviceId' | 'state'): string | null {
  const max = what === 'deviceId' ? MAX_ID_LENGTH : MAX_STATE_LENGTH;
  let n = 0;
  for (const item of items) {
    if (++n > MAX_FILTER_ITEMS) return `more than ${MAX_FILTER_ITEMS} values of ${what}`;
    // UTF-16 units are never fewer than code points: only a long one needs counting
    if (item.length > max && codePoints(item) > max) return `a ${what} longer than ${max} characters`;
    // SPEC §3: ingest refuses ids and states with a lone surrogate, so such a filter could never match
    if (!item.isWellFormed()) return `a ${what} that is not well-formed Unicode (a lone surrogate)`;
  }
  return null;
}

/** `?deviceId=a,b&state=open` as a filter; a BRG_ERR_INVALID_FILTER (400) when it is not one. */
export function queryFilter(query: { deviceId?: string | undefined; state?: string | undefined }): EventFilter {
  const deviceIds = parseList(query.deviceId);
  const states = parseList(query.state);
  const problem = (deviceIds && listProblem(deviceIds, 'deviceId')) ?? (states && listProblem(states, 'state'));
  if (problem) throw new BRG_ERR_INVALID_FILTER(problem);
  return { deviceIds, states, types: null };
}
