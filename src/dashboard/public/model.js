// The dashboard's pure logic: no DOM, no network, no clock of its own (time is an argument), so
// that node's tap imports this very file (test/dashboard/model.test.ts). Its types are the JSDoc
// below: src/dashboard/public/tsconfig.json checks them, and the tests' TypeScript reads them.

/**
 * @import { Device, HistoryEntry, RegistryEntry } from '../../devices/types.js'
 * @typedef {'deviceId' | 'name' | 'state' | 'battery' | 'signal' | 'lastSeen' | 'lastChanged'} SortKey
 * @typedef {'asc' | 'desc'} SortDir
 * @typedef {{ state: string, silent: '' | 'yes' | 'no', lowBattery: boolean, search: string }} Filter
 * @typedef {{ bars: 0 | 1 | 2 | 3 | 4 | null, dbm: number | null, label: string }} Signal
 * @typedef {{ state: string, from: number, to: number, messages: number }} Period
 * @typedef {{ total: number, states: [string, number][], silent: number, lowBattery: number }} Summary
 */
/**
 * @template T
 * @typedef {{ rows: T[], page: number, pages: number, from: number, to: number, total: number }} Page
 */

/** Below this battery percentage a device counts as "low battery". */
export const LOW_BATTERY_PERCENT = 20;

/** States with a colour of their own (SPEC §2: the manhole cover sensor, and the platform's offline). */
const KNOWN_STATES = new Set(['open', 'close', 'offline']);

/**
 * A CSS-safe class for a state: never the device's own string.
 * @param {string} state
 */
export function stateClass(state) {
  return KNOWN_STATES.has(state) ? `state-${state}` : 'state-other';
}

/**
 * BatteryLevel (0 to 10000, SPEC §2) as a whole percentage, or null.
 * @param {number | null} level
 * @returns {number | null}
 */
export function batteryPercent(level) {
  if (typeof level !== 'number' || !Number.isFinite(level)) return null;
  return Math.round(Math.min(10000, Math.max(0, level)) / 100);
}

/** @param {Pick<Device, 'batteryLevel'>} device */
export function isLowBattery(device) {
  const pct = batteryPercent(device.batteryLevel);
  return pct !== null && pct < LOW_BATTERY_PERCENT;
}

/**
 * CSQ (modem convention: 0 to 31, 99 = unknown; the vendor's own example says 32) as 0 to 4 bars,
 * with the usual reading of 3GPP TS 27.007: dBm = 2 × CSQ − 113.
 * @param {number | null} csq
 * @returns {Signal}
 */
export function signal(csq) {
  if (typeof csq !== 'number' || csq === 99 || csq < 0 || csq > 32) return { bars: null, dbm: null, label: 'unknown' };
  const dbm = 2 * Math.min(csq, 31) - 113;
  /** @type {Signal['bars']} */
  let bars;
  let quality;
  if (csq < 2) [bars, quality] = [0, 'none'];
  else if (csq < 10) [bars, quality] = [1, 'marginal'];
  else if (csq < 15) [bars, quality] = [2, 'ok'];
  else if (csq < 20) [bars, quality] = [3, 'good'];
  else [bars, quality] = [4, 'excellent'];
  return { bars, dbm, label: `${quality}, CSQ ${csq} (${dbm} dBm)` };
}

/**
 * "3 d 4 h", "12 min", "40 s": a duration in seconds, the two largest units.
 * @param {number} seconds
 */
export function formatDuration(seconds) {
  let s = Math.max(0, Math.round(seconds));
  /** @type {[string, number][]} */
  const units = [
    ['d', 86400],
    ['h', 3600],
    ['min', 60],
    ['s', 1],
  ];
  const parts = [];
  for (const [name, size] of units) {
    if (s >= size || (parts.length === 0 && size === 1)) {
      parts.push(`${Math.floor(s / size)} ${name}`);
      s %= size;
    }
    if (parts.length === 2) break;
    if (parts.length === 1 && s === 0) break;
  }
  return parts.join(' ');
}

/**
 * "just now", "5 min ago", "3 d ago", "in 2 min" (a clock ahead of ours): `then` and `now` in ms.
 * @param {number} then
 * @param {number} now
 */
export function relativeTime(then, now) {
  const seconds = Math.round((now - then) / 1000);
  if (Math.abs(seconds) < 10) return 'just now';
  const abs = Math.abs(seconds);
  let text;
  if (abs < 60) text = `${abs} s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)} min`;
  else if (abs < 86400) text = `${Math.floor(abs / 3600)} h`;
  else text = `${Math.floor(abs / 86400)} d`;
  return seconds > 0 ? `${text} ago` : `in ${text}`;
}

// states and other words sort as people read them
const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/**
 * Device ids in the order of GET /devices: Unicode code points (UTF-8 bytes, as SQLite and Redis
 * sort), so hex ids like 07af0527 stay in place. Not `<`, which compares UTF-16 units and puts
 * characters above U+FFFF before U+E000–U+FFFF. The comparison of src/devices/rules.ts compareIds,
 * copied: the page imports nothing from src/ (test/dashboard/model.test.ts holds the two alike).
 * @param {string} a
 * @param {string} b
 */
export function compareIds(a, b) {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // surrogates (U+D800–DFFF) encode code points above U+FFFF: move them above U+E000–FFFF
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * The sortable columns and the value each sorts by (null sorts last, whatever the direction).
 * @type {Record<SortKey, ((d: Device) => string | number | null) | null>}
 */
export const SORT_KEYS = {
  deviceId: null,
  name: (d) => d.meta?.name ?? null,
  state: (d) => d.state,
  battery: (d) => d.batteryLevel,
  signal: (d) => signal(d.csq).dbm,
  lastSeen: (d) => d.timestamp,
  lastChanged: (d) => Date.parse(d.lastChangedAt),
};

/**
 * A new array of `devices`, sorted by `key` ('asc' or 'desc'), ties by deviceId ascending.
 * @param {Device[]} devices
 * @param {SortKey} key
 * @param {SortDir} dir
 */
export function sortDevices(devices, key, dir) {
  const value = SORT_KEYS[key];
  const sign = dir === 'desc' ? -1 : 1;
  const out = devices.slice();
  if (!value) return out.sort((a, b) => sign * compareIds(a.deviceId, b.deviceId));
  // the values once per device, not once per comparison: 10,000 devices sort in a few ms
  const keyed = out.map((d) => ({ d, v: value(d) }));
  keyed.sort((a, b) => {
    if (a.v !== b.v) {
      if (a.v === null || a.v === undefined || Number.isNaN(a.v)) return 1;
      if (b.v === null || b.v === undefined || Number.isNaN(b.v)) return -1;
      // one column's values share one type
      const c = typeof a.v === 'string' ? collator.compare(a.v, /** @type {string} */ (b.v)) : a.v - /** @type {number} */ (b.v);
      if (c !== 0) return sign * c;
    }
    return compareIds(a.d.deviceId, b.d.deviceId);
  });
  return keyed.map((k) => k.d);
}

/**
 * The filter of the table: state ('' for any), silent ('' any, 'yes', 'no'), lowBattery (boolean),
 * search (a part of the deviceId, the name or the address, any case: SPEC §11 GET /devices?q=).
 * @type {Readonly<Filter>}
 */
export const NO_FILTER = Object.freeze({ state: '', silent: '', lowBattery: false, search: '' });

/**
 * @param {Device} device
 * @param {Filter} filter
 */
export function matches(device, filter) {
  if (filter.state && device.state !== filter.state) return false;
  if (filter.silent === 'yes' && !device.silent) return false;
  if (filter.silent === 'no' && device.silent) return false;
  if (filter.lowBattery && !isLowBattery(device)) return false;
  return matchesSearch(device.deviceId, device.meta, filter.search);
}

/**
 * Whether a part of the id, the name or the address is `search` (any case; '' matches all).
 * @param {string} deviceId
 * @param {RegistryEntry | null | undefined} meta
 * @param {string} search
 */
export function matchesSearch(deviceId, meta, search) {
  const q = search.trim().toLowerCase();
  if (!q) return true;
  return deviceId.toLowerCase().includes(q) || (meta?.name?.toLowerCase().includes(q) ?? false) || (meta?.address?.toLowerCase().includes(q) ?? false);
}

/**
 * Whether a registered device that never reported shows under `filter`: it has no state, battery
 * or silence to match, so only while none of those is asked for.
 * @param {RegistryEntry} entry
 * @param {Filter} filter
 */
export function matchesUnseen(entry, filter) {
  if (filter.state || filter.silent || filter.lowBattery) return false;
  return matchesSearch(entry.deviceId, entry, filter.search);
}

/**
 * Where a registry entry puts its device on the map, [latitude, longitude], or null (no entry, or
 * no coordinates: no marker).
 * @param {RegistryEntry | null | undefined} meta
 * @returns {[number, number] | null}
 */
export function position(meta) {
  if (!meta) return null;
  const { latitude, longitude } = meta;
  if (typeof latitude !== 'number' || typeof longitude !== 'number' || !Number.isFinite(latitude) || !Number.isFinite(longitude)) return null;
  return [latitude, longitude];
}

/**
 * A marker's CSS classes, never the device's own strings: the state's shape and colour (SPEC §11:
 * colour and shape, not colour alone), and a hollow dashed look for a silent device. `null`: a
 * device registered and never heard from.
 * @param {Pick<Device, 'state' | 'silent'> | null} device
 */
export function markerClass(device) {
  if (device === null) return 'mk mk-unseen';
  const kind = device.state === 'open' || device.state === 'close' || device.state === 'offline' ? device.state : 'other';
  return device.silent ? `mk mk-${kind} mk-silent` : `mk mk-${kind}`;
}

/**
 * @param {Device[]} devices
 * @param {Filter} filter
 */
export function filterDevices(devices, filter) {
  return devices.filter((d) => matches(d, filter));
}

/**
 * Counts for the summary on top: all devices, by state (most first), silent, low battery.
 * @param {Device[]} devices
 * @returns {Summary}
 */
export function summarize(devices) {
  /** @type {Map<string, number>} */
  const byState = new Map();
  let silent = 0;
  let lowBattery = 0;
  for (const d of devices) {
    byState.set(d.state, (byState.get(d.state) ?? 0) + 1);
    if (d.silent) silent++;
    if (isLowBattery(d)) lowBattery++;
  }
  const states = [...byState.entries()].sort((a, b) => b[1] - a[1] || compareIds(a[0], b[0]));
  return { total: devices.length, states, silent, lowBattery };
}

/**
 * One page of `list`: page numbers from 1, clamped to the pages there are.
 * @template T
 * @param {T[]} list
 * @param {number} page
 * @param {number} size
 * @returns {Page<T>}
 */
export function pageOf(list, page, size) {
  const pages = Math.max(1, Math.ceil(list.length / size));
  const p = Math.min(Math.max(1, page), pages);
  const start = (p - 1) * size;
  const rows = list.slice(start, start + size);
  return { rows, page: p, pages, from: rows.length ? start + 1 : 0, to: start + rows.length, total: list.length };
}

/**
 * Whether `candidate` is at least as new as `known` (two copies of one device): the newer message
 * wins (SPEC §4), then the later arrival; a silent flag on the same message counts as newer.
 * @param {Device} candidate
 * @param {Device | undefined} known
 */
export function isNewer(candidate, known) {
  if (known === undefined) return true;
  if (candidate.timestamp !== known.timestamp) return candidate.timestamp > known.timestamp;
  if (candidate.receivedAt !== known.receivedAt) return candidate.receivedAt > known.receivedAt;
  return candidate.silent || !known.silent;
}

/**
 * A device's history (newest first, as GET /devices/{id}/history gives it) as periods of one state,
 * oldest first: from the first message in that state to the first message in the next one; the
 * last period runs until `until` (Unix seconds). Late messages take their place by timestamp.
 * @param {Pick<HistoryEntry, 'timestamp' | 'state'>[]} items
 * @param {number} until
 */
export function historyPeriods(items, until) {
  const sorted = items.slice().sort((a, b) => a.timestamp - b.timestamp);
  /** @type {Period[]} */
  const periods = [];
  for (const item of sorted) {
    const last = periods[periods.length - 1];
    if (last !== undefined && last.state === item.state) {
      last.messages++;
      continue;
    }
    if (last !== undefined) last.to = item.timestamp;
    periods.push({ state: item.state, from: item.timestamp, to: item.timestamp, messages: 1 }); // `to`: set by the next period or `until`
  }
  const last = periods[periods.length - 1];
  if (last !== undefined) last.to = Math.max(last.from, until);
  return periods;
}

/**
 * The battery readings of a history, oldest first: [{ t: Unix seconds, pct }].
 * @param {Pick<HistoryEntry, 'timestamp' | 'batteryLevel'>[]} items
 */
export function batterySeries(items) {
  return items
    .flatMap((i) => {
      const pct = batteryPercent(i.batteryLevel);
      return pct === null ? [] : [{ t: i.timestamp, pct }];
    })
    .sort((a, b) => a.t - b.t);
}

/**
 * Reconnect delay in ms for attempt 0, 1, 2…: doubling from 500 ms to 15 s, with jitter (random in [0, 1)).
 * @param {number} attempt
 * @param {number} random
 */
export function backoff(attempt, random) {
  const base = Math.min(15_000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.75 + 0.5 * random));
}

/**
 * The /ws URL of the page at `location` ({ protocol, host }), with the key as ?apiKey= (SPEC §9).
 * @param {{ protocol: string, host: string }} location
 * @param {string | null} apiKey
 */
export function liveUrl(location, apiKey) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = apiKey ? `?apiKey=${encodeURIComponent(apiKey)}` : '';
  return `${scheme}//${location.host}/ws${query}`;
}
