import { BRG_ERR_INVALID_CURSOR } from './errors.js';

// The page cursor of every paged list (REST and GraphQL alike): opaque to clients.

const CURSOR_PREFIX = 'd:';

/** Opaque to clients: the last deviceId of the page, so pages stay stable while devices come and go. */
export function encodeCursor(deviceId: string): string {
  return Buffer.from(CURSOR_PREFIX + deviceId).toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(CURSOR_PREFIX) || encodeCursor(text.slice(CURSOR_PREFIX.length)) !== cursor) {
    throw new BRG_ERR_INVALID_CURSOR();
  }
  return text.slice(CURSOR_PREFIX.length);
}

/** Longer parts cannot come from a cursor this service handed out (ISO times; alarm ids). */
const MAX_CURSOR_PART = 128;

/** SPEC §12: where the next page of alarms starts, the raisedAt and alarmId of a page's last alarm (REST and GraphQL alike). */
export function encodeAlarmCursor(alarm: { raisedAt: string; alarmId: string }): string {
  return encodeCursor(JSON.stringify([alarm.raisedAt, alarm.alarmId]));
}

export function decodeAlarmCursor(cursor: string): { raisedAt: string; alarmId: string } {
  let parts: unknown;
  try {
    parts = JSON.parse(decodeCursor(cursor));
  } catch {
    throw new BRG_ERR_INVALID_CURSOR();
  }
  if (!Array.isArray(parts) || parts.length !== 2 || !parts.every((p) => typeof p === 'string' && p !== '' && p.length <= MAX_CURSOR_PART)) {
    throw new BRG_ERR_INVALID_CURSOR();
  }
  return { raisedAt: parts[0] as string, alarmId: parts[1] as string };
}
