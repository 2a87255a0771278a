import type { Device, DeviceRecord, HistoryEntry, RegistryEntry } from './types.js';

// SPEC §4, the table every store answers to. Pure: no I/O, no clock but `receivedAt`.
// test/devices/rules.cases.ts holds its rows as data for this unit and for every store.

export type Outcome =
  | { kind: 'update'; device: Device; previousState: string | null; changed: boolean; entry: HistoryEntry }
  | { kind: 'duplicate' }
  | { kind: 'late'; entry: HistoryEntry };

export type OutcomeKind = Outcome['kind'];

export function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

export function historyEntry(rec: DeviceRecord, receivedAt: string, kind: HistoryEntry['kind']): HistoryEntry {
  return {
    timestamp: rec.timestamp,
    state: rec.state,
    batteryLevel: rec.batteryLevel,
    csq: rec.csq,
    receivedAt,
    kind,
  };
}

/** Builds a Device with every field set, in one order, so that all devices share one hidden class. */
export function makeDevice(
  rec: DeviceRecord,
  previousState: string | null,
  lastChangedAt: string,
  receivedAt: string,
  messages: number,
  lastSeenAt: string,
  meta: RegistryEntry | null,
): Device {
  return {
    deviceId: rec.deviceId,
    appId: rec.appId,
    state: rec.state,
    previousState,
    batteryLevel: rec.batteryLevel,
    imei: rec.imei,
    iccid: rec.iccid,
    csq: rec.csq,
    timestamp: rec.timestamp,
    lastSeenAt,
    lastChangedAt,
    receivedAt,
    silent: false, // SPEC §4: the next accepted message clears silence
    messages,
    attributes: rec.attributes,
    meta,
  };
}

/** The same device with another registry entry (SPEC §11); a new object, like markSilent. */
export function withMeta(device: Device, meta: RegistryEntry | null): Device {
  return { ...device, meta };
}

/** The same device, marked silent; a new object, so that events already sent keep their snapshot. */
export function markSilent(device: Device): Device {
  return { ...device, silent: true };
}

/**
 * Applies one normalized message to the stored latest state of its device.
 * `receivedAt` is the bridge clock's ISO time of arrival. A device keeps its registry entry; a new
 * one takes `meta`, the entry registered before it ever reported (SPEC §11).
 */
export function apply(current: Device | undefined, rec: DeviceRecord, receivedAt: string, meta: RegistryEntry | null = null): Outcome {
  if (current === undefined) {
    // SPEC §4: a new device is a state change from null. One ISO string for both fields.
    const seen = isoSeconds(rec.timestamp);
    const device = makeDevice(rec, null, seen, receivedAt, 1, seen, meta);
    return { kind: 'update', device, previousState: null, changed: true, entry: historyEntry(rec, receivedAt, 'update') };
  }
  if (rec.timestamp < current.timestamp) {
    return { kind: 'late', entry: historyEntry(rec, receivedAt, 'late') };
  }
  const changed = rec.state !== current.state;
  if (rec.timestamp === current.timestamp && !changed) return { kind: 'duplicate' };
  // SPEC §4: same timestamp, state differs → taken as newer (arrival order breaks the tie)
  const seen = isoSeconds(rec.timestamp);
  const device = changed
    ? makeDevice(rec, current.state, seen, receivedAt, current.messages + 1, seen, current.meta)
    : makeDevice(rec, current.previousState, current.lastChangedAt, receivedAt, current.messages + 1, seen, current.meta);
  return {
    kind: 'update',
    device,
    previousState: current.state,
    changed,
    entry: historyEntry(rec, receivedAt, 'update'),
  };
}

/**
 * apply() with the device's history (newest first, at most `limit`, mutated): a late message
 * is kept in place, and one that the history already holds is a duplicate (a QoS 1 redelivery).
 */
export function applyWithHistory(
  current: Device | undefined,
  history: HistoryEntry[],
  rec: DeviceRecord,
  receivedAt: string,
  limit: number,
  meta: RegistryEntry | null = null,
): Outcome {
  const outcome = apply(current, rec, receivedAt, meta);
  if (outcome.kind === 'duplicate') return outcome;
  return insertHistory(history, outcome.entry, limit) ? outcome : { kind: 'duplicate' };
}

/**
 * Device ids in Unicode code point order, which is UTF-8 byte order: SQLite's BINARY collation
 * and Redis's lexical ranges sort so, and every store must page alike. JavaScript's `<` compares
 * UTF-16 units, which puts characters above U+FFFF before U+E000–U+FFFF.
 */
export function compareIds(a: string, b: string): number {
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
 * Inserts an entry into a newest-first history, in timestamp order, keeping at most `limit`.
 * Entries of equal timestamp keep arrival order (the newer arrival first). Mutates `history`.
 * Returns false, inserting nothing, when an entry of the same timestamp and state is there:
 * a late message redelivered by the broker (QoS 1) is a duplicate, not a second late message.
 */
export function insertHistory(history: HistoryEntry[], entry: HistoryEntry, limit: number): boolean {
  let i = 0;
  while (i < history.length && history[i]!.timestamp > entry.timestamp) i++;
  for (let j = i; j < history.length && history[j]!.timestamp === entry.timestamp; j++) {
    if (history[j]!.state === entry.state) return false;
  }
  if (i >= limit) return true; // older than everything kept: counted, not kept
  history.splice(i, 0, entry);
  if (history.length > limit) history.length = limit;
  return true;
}
