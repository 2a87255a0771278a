import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { route, type OpenApiDocument } from '../openapi.js';

// SPEC §5: the live dashboard at GET /, its assets under /dashboard/ (no CDN, no build step: the
// files of ./public are what the browser runs). Read once at start and served from memory.
// SPEC §11: its map runs on Leaflet and Leaflet.markercluster, served from their npm packages
// under /dashboard/vendor/, and takes its base tiles only from MAP_TILE_URL (GET /dashboard/map.json).

/** SPEC §11: base tiles only from MAP_TILE_URL, with MAP_TILE_ATTRIBUTION; none by default. */
export interface MapOptions {
  /** A Leaflet tile URL template, `https://tiles.example/{z}/{x}/{y}.png`, or null: no tiles. */
  tileUrl: string | null;
  /** The attribution the tile provider asks for (HTML, the operator's own text), or null. */
  tileAttribution: string | null;
}

export interface DashboardOptions {
  doc: OpenApiDocument;
  /** Default: no tiles (markers on a plain background). */
  map?: MapOptions;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The files the page loads, by name under /dashboard/ (tsconfig.json there is for the type check only). */
export const DASHBOARD_ASSETS = ['alarm-list.js', 'alarms.js', 'app.js', 'detail.js', 'dom.js', 'live.js', 'map.js', 'model.js', 'table.js', 'unseen.js', 'dashboard.css', 'favicon.svg'] as const;

/**
 * The files of Leaflet and Leaflet.markercluster the page loads, under /dashboard/vendor/: the
 * package, then its files under dist/. leaflet.css names its images relative to itself.
 */
export const VENDOR_ASSETS = {
  leaflet: ['leaflet.js', 'leaflet.css', 'images/layers.png', 'images/layers-2x.png', 'images/marker-icon.png', 'images/marker-icon-2x.png', 'images/marker-shadow.png'],
  'leaflet.markercluster': ['leaflet.markercluster.js', 'MarkerCluster.css', 'MarkerCluster.Default.css'],
} as const;

// two levels up and back down, so that the same path works from src/dashboard and dist/dashboard
const PUBLIC = new URL('../../src/dashboard/public/', import.meta.url);

interface Asset {
  body: Buffer;
  type: string;
}

function typeOf(name: string): string {
  const type = TYPES[name.slice(name.lastIndexOf('.'))];
  if (type === undefined) throw new Error(`dashboard: no content type for ${name}`);
  return type;
}

function load(name: string): Asset {
  return { body: readFileSync(new URL(name, PUBLIC)), type: typeOf(name) };
}

/** `/dashboard/vendor/<package>/<file>` → the file of the installed package's dist/. */
function loadVendor(): Map<string, Asset> {
  const require = createRequire(import.meta.url);
  const assets = new Map<string, Asset>();
  for (const [pkg, files] of Object.entries(VENDOR_ASSETS)) {
    const dist = join(dirname(require.resolve(`${pkg}/package.json`)), 'dist');
    for (const file of files) assets.set(`/dashboard/vendor/${pkg}/${file}`, { body: readFileSync(join(dist, file)), type: typeOf(file) });
  }
  return assets;
}

function send(reply: FastifyReply, asset: Asset): FastifyReply {
  return reply
    .type(asset.type)
    .header('cache-control', 'no-cache') // the secure headers and the CSP come from http/security.ts
    .send(asset.body);
}

export default async function dashboard(app: FastifyInstance, opts: DashboardOptions): Promise<void> {
  const page = load('index.html');
  const assets = new Map<string, Asset>(DASHBOARD_ASSETS.map((name) => [name, load(name)]));
  const vendor = loadVendor();
  const map = opts.map ?? { tileUrl: null, tileAttribution: null };
  // the page reads its map settings from here: no inline script under the CSP
  const mapJson: Asset = {
    body: Buffer.from(JSON.stringify({ tileUrl: map.tileUrl, tileAttribution: map.tileAttribution })),
    type: 'application/json; charset=utf-8',
  };

  app.route({
    ...route(opts.doc, 'getDashboard'),
    handler: async (_request, reply) => send(reply, page),
  });
  const hidden = { schema: { hide: true } };
  app.get('/dashboard/map.json', hidden, async (_request, reply) => send(reply, mapJson));
  app.get<{ Params: { name: string } }>('/dashboard/:name', hidden, async (request, reply) => {
    const asset = assets.get(request.params.name);
    if (asset === undefined) return reply.callNotFound();
    return send(reply, asset);
  });
  // only the listed files, looked up by the whole path: nothing else of node_modules
  app.get('/dashboard/vendor/*', hidden, async (request, reply) => {
    const asset = vendor.get(request.url.split('?', 1)[0]!);
    if (asset === undefined) return reply.callNotFound();
    return send(reply, asset);
  });
}
