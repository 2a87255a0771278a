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
