import createError from '@fastify/error';

// Every HTTP-facing error of the bridge, the key equal to the code (the FST_ERR_* convention).
// openapi.yaml lists, for each route, the codes it can answer with; test/http/errors.test.ts checks it.

export const BRG_ERR_DEVICE_NOT_FOUND = createError('BRG_ERR_DEVICE_NOT_FOUND', "device '%s' not found", 404);
export const BRG_ERR_INVALID_CURSOR = createError('BRG_ERR_INVALID_CURSOR', 'cursor is not one this service handed out', 400);
export const BRG_ERR_ROUTE_NOT_FOUND = createError('BRG_ERR_ROUTE_NOT_FOUND', 'no route %s %s', 404);
export const BRG_ERR_INTERNAL = createError('BRG_ERR_INTERNAL', 'internal server error', 500);
export const BRG_ERR_STORE_UNAVAILABLE = createError('BRG_ERR_STORE_UNAVAILABLE', 'the store cannot be reached now: try again (GET /readyz says why)', 503);
export const BRG_ERR_UPGRADE_REQUIRED = createError('BRG_ERR_UPGRADE_REQUIRED', '%s speaks WebSocket only: open it with a WebSocket client', 426);
export const BRG_ERR_INVALID_FILTER = createError('BRG_ERR_INVALID_FILTER', 'invalid filter: %s', 400);
export const BRG_ERR_UNAUTHORIZED = createError('BRG_ERR_UNAUTHORIZED', 'an API key is required: Authorization: Bearer <key>, x-api-key: <key> or ?apiKey=<key>', 401);
export const BRG_ERR_RATE_LIMITED = createError('BRG_ERR_RATE_LIMITED', 'rate limit exceeded: at most %d requests a minute, retry in %s', 429);
export const BRG_ERR_ORIGIN_FORBIDDEN = createError('BRG_ERR_ORIGIN_FORBIDDEN', "origin '%s' may not open WebSockets here: add it to CORS_ORIGINS", 403);
export const BRG_ERR_TOO_MANY_STREAMS = createError('BRG_ERR_TOO_MANY_STREAMS', 'too many open streams from this address: at most %d (MAX_STREAMS_PER_ADDRESS)', 429);
export const BRG_ERR_HOST_FORBIDDEN = createError('BRG_ERR_HOST_FORBIDDEN', "host '%s' is not a loopback name: this service listens on loopback without API keys, and answers localhost and 127.0.0.1 only (DNS rebinding); set API_KEYS or TRUST_PROXY to serve other names", 403);
export const BRG_ERR_READ_ONLY_KEY = createError('BRG_ERR_READ_ONLY_KEY', 'this API key may read, not write: writes need a key of API_KEYS', 403);
export const BRG_ERR_WRITE_ORIGIN_FORBIDDEN = createError('BRG_ERR_WRITE_ORIGIN_FORBIDDEN', "origin '%s' may not write here: list it in CORS_ORIGINS", 403);
export const BRG_ERR_REGISTRY_NOT_FOUND = createError('BRG_ERR_REGISTRY_NOT_FOUND', "device '%s' has no registry entry", 404);
export const BRG_ERR_INVALID_ENTRY = createError('BRG_ERR_INVALID_ENTRY', 'invalid registry entry: %s', 400);
export const BRG_ERR_INVALID_IMPORT = createError('BRG_ERR_INVALID_IMPORT', 'the file has %d invalid rows: nothing was imported', 400);
export const BRG_ERR_IMPORT_TOO_LARGE = createError('BRG_ERR_IMPORT_TOO_LARGE', 'the file is larger than %d bytes (REGISTRY_IMPORT_MAX_BYTES)', 413);
export const BRG_ERR_UNSUPPORTED_MEDIA_TYPE = createError('BRG_ERR_UNSUPPORTED_MEDIA_TYPE', "content type '%s' is not one of %s", 415);
export const BRG_ERR_ALARM_NOT_FOUND = createError('BRG_ERR_ALARM_NOT_FOUND', "alarm '%s' not found", 404);
// SPEC §12: POST /alarms/{alarmId}/ack
export const BRG_ERR_INVALID_ACK = createError('BRG_ERR_INVALID_ACK', 'invalid acknowledgement: %s', 400);
