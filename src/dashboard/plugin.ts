import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { route, type OpenApiDocument } from '../openapi.js';

// SPEC §5: the live dashboard at GET /, its assets under /dashboard/ (no CDN, no build step: the
// files of ./public are what the browser runs). Read once at start and served from memory.

export interface DashboardOptions {
  doc: OpenApiDocument;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The files the page loads, by name under /dashboard/ (tsconfig.json there is for the type check only). */
export const DASHBOARD_ASSETS = ['app.js', 'detail.js', 'dom.js', 'live.js', 'model.js', 'table.js', 'dashboard.css', 'favicon.svg'] as const;

// two levels up and back down, so that the same path works from src/dashboard and dist/dashboard
const PUBLIC = new URL('../../src/dashboard/public/', import.meta.url);

interface Asset {
  body: Buffer;
  type: string;
}

function load(name: string): Asset {
  const ext = name.slice(name.lastIndexOf('.'));
  const type = TYPES[ext];
  if (type === undefined) throw new Error(`dashboard: no content type for ${name}`);
  return { body: readFileSync(new URL(name, PUBLIC)), type };
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

  app.route({
    ...route(opts.doc, 'getDashboard'),
    handler: async (_request, reply) => send(reply, page),
  });
  const hidden = { schema: { hide: true } };
  app.get<{ Params: { name: string } }>('/dashboard/:name', hidden, async (request, reply) => {
    const asset = assets.get(request.params.name);
    if (asset === undefined) return reply.callNotFound();
    return send(reply, asset);
  });
}
