import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { searchMatches, type DeviceStore, type RegistryItem } from '../devices/store.js';
import { route, type OpenApiDocument } from '../openapi.js';

// SPEC §11: GET /devices.geojson, every located device as a GeoJSON FeatureCollection (RFC 7946),
// which QGIS, Leaflet and any GIS tool load from the URL. Written as it is read, a page at a time.

interface GeoJsonQuery {
  state?: string;
  silent?: boolean;
  zone?: string;
  q?: string;
}

/** Entries read from the store at a time. */
const PAGE = 1000;

/** One Feature: RFC 7946 §3.1.1, a position is [longitude, latitude]. */
export function feature({ entry, device }: RegistryItem): string {
  return JSON.stringify({
    type: 'Feature',
    id: entry.deviceId,
    geometry: { type: 'Point', coordinates: [entry.longitude, entry.latitude] },
    properties: {
      deviceId: entry.deviceId,
      name: entry.name,
      address: entry.address,
      zone: entry.zone,
      tags: entry.tags,
      seen: device !== null,
      state: device?.state ?? null,
      silent: device?.silent ?? null,
      batteryLevel: device?.batteryLevel ?? null,
      lastSeenAt: device?.lastSeenAt ?? null,
    },
  });
}

function wanted(item: RegistryItem, query: GeoJsonQuery, needle: string | undefined): boolean {
  const { device } = item;
  if (query.state !== undefined && device?.state !== query.state) return false;
  if (query.silent !== undefined && (device === null || device.silent !== query.silent)) return false;
  return needle === undefined || searchMatches(needle, item.entry.deviceId, item.entry);
}

async function* featureCollection(store: DeviceStore, query: GeoJsonQuery): AsyncGenerator<string> {
  yield '{"type":"FeatureCollection","features":[';
  const needle = query.q?.toLowerCase();
  let after: string | undefined;
  let first = true;
  do {
    const page = await store.listEntries({ located: true, zone: query.zone, after, limit: PAGE });
    let chunk = '';
    for (const item of page.items) {
      if (!wanted(item, query, needle)) continue;
      chunk += first ? feature(item) : `,${feature(item)}`;
      first = false;
    }
    if (chunk !== '') yield chunk;
    after = page.lastId ?? undefined;
  } while (after !== undefined);
  yield ']}\n';
}

export async function geoJsonRoutes(app: FastifyInstance, opts: { doc: OpenApiDocument }): Promise<void> {
  app.route<{ Querystring: GeoJsonQuery }>({
    ...route(opts.doc, 'getDevicesGeoJson'),
    handler: async (request, reply) =>
      reply.type('application/geo+json; charset=utf-8').send(Readable.from(featureCollection(app.devices.store, request.query))),
  });
}
