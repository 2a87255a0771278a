import type { FastifyInstance } from 'fastify';
import type { Device } from '../devices/types.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { BRG_ERR_DEVICE_NOT_FOUND } from '../errors.js';
import { route, type OpenApiDocument } from '../openapi.js';

// SPEC §5 REST: the devices, in deviceId order, and their history.

interface ListQuerystring {
  state?: string;
  silent?: boolean;
  zone?: string;
  q?: string;
  limit: number;
  cursor?: string;
}

/**
 * A page of devices is cut at about this many bytes, whatever its `limit`: 1,000 devices with 64 KiB
 * of attributes each would be a 64 MiB answer, held whole for a client that reads it slowly.
 * The client follows nextCursor as for any page.
 */
export const MAX_PAGE_BYTES = 4 * 1024 * 1024;
/** A device's JSON without its attributes is about this long (schema/device.schema.json). */
const DEVICE_BYTES = 400;

/** The first devices whose JSON stays within about `maxBytes`, one at least. */
export function withinBytes(devices: Device[], maxBytes: number): Device[] {
  let bytes = 0;
  for (let i = 0; i < devices.length; i++) {
    bytes += DEVICE_BYTES;
    // their JSON's length in UTF-16 units: escapes counted; at most 3 bytes each in UTF-8
    bytes += JSON.stringify(devices[i]!.attributes).length;
    if (bytes > maxBytes && i > 0) return devices.slice(0, i);
  }
  return devices;
}

export async function deviceRoutes(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  const { store } = app.devices;

  app.route<{ Querystring: ListQuerystring }>({
    ...route(opts.doc, 'listDevices'),
    handler: async (request) => {
      const { state, silent, zone, q, limit, cursor } = request.query;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      const page = await store.list({ state, silent, zone, q, after, limit });
      const items = withinBytes(page.items, MAX_PAGE_BYTES);
      const lastId = items.length < page.items.length ? items[items.length - 1]!.deviceId : page.lastId;
      return { items, nextCursor: lastId === null ? null : encodeCursor(lastId), total: page.total };
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
