import type { FastifyInstance } from 'fastify';
import { BRG_ERR_DEVICE_NOT_FOUND, BRG_ERR_INVALID_CURSOR } from '../errors.js';
import { route, type OpenApiDocument } from './openapi.js';

// SPEC §5 REST: the devices, in deviceId order, and their history.

interface ListQuerystring {
  state?: string;
  silent?: boolean;
  limit: number;
  cursor?: string;
}

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

export async function deviceRoutes(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  const { store } = app.devices;

  app.route<{ Querystring: ListQuerystring }>({
    ...route(opts.doc, 'listDevices'),
    handler: async (request) => {
      const { state, silent, limit, cursor } = request.query;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      const page = await store.list({ state, silent, after, limit });
      return { items: page.items, nextCursor: page.lastId === null ? null : encodeCursor(page.lastId), total: page.total };
    },
  });

  app.route<{ Params: { deviceId: string } }>({
    ...route(opts.doc, 'getDevice'),
    handler: async (request) => {
      const device = await store.get(request.params.deviceId);
      if (device === undefined) throw new BRG_ERR_DEVICE_NOT_FOUND(request.params.deviceId);
      return device;
    },
  });

  app.route<{ Params: { deviceId: string }; Querystring: { limit: number } }>({
    ...route(opts.doc, 'getDeviceHistory'),
    handler: async (request) => {
      const { deviceId } = request.params;
      const items = await store.history(deviceId, request.query.limit);
      if (items === undefined) throw new BRG_ERR_DEVICE_NOT_FOUND(deviceId);
      return { deviceId, items };
    },
  });
}
