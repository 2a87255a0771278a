import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HttpConfig } from '../config.js';
import { BRG_ERR_HOST_FORBIDDEN, BRG_ERR_ORIGIN_FORBIDDEN, BRG_ERR_RATE_LIMITED } from '../errors.js';
import { ApiKeys, identifyApiKeys, requireApiKeys } from '../api-keys.js';

// SPEC §9: the safety of every HTTP surface, in the order a request meets it: secure headers,
// CORS, which key it carries, the rate limit (per key, or per address without one), and the key
// check. Registered first: every route below is behind it. The origin of a WebSocket upgrade is
// checked in the WebSocket routes' own context (app.ts), off the REST path.

/**
 * No inline script or style, no framing, no other origin: the dashboard, GraphiQL and /docs load
 * everything from this service (SPEC §5: no CDN). WebSockets to the same origin are 'self'.
 */
export const CONTENT_SECURITY_POLICY = contentSecurityPolicy(null);

/** The pages' CSP; `tileSource`: the map's tile origin (MAP_TILE_URL), the one other place images may come from (SPEC §11). */
export function contentSecurityPolicy(tileSource: string | null): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src 'self' data:${tileSource === null ? '' : ` ${tileSource}`}`,
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
  ].join('; ');
}

/**
 * The pages (the dashboard, /docs, /graphiql and their assets) get helmet's defaults, as one
 * constant set: @fastify/helmet computes and sets them through res.setHeader() on every request,
 * which took REST from 14,000 to 7,400 requests/s here (autocannon -c 50 on GET /stats). HSTS is
 * left to the TLS terminator in front.
 */
const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY, // with the tile origin when MAP_TILE_URL is set (security())
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
};

/**
 * Every other answer is JSON (or a stream) that no browser should render, sniff or frame: the
 * OWASP REST set. Two headers instead of eleven on the hot path (REST's figure in BENCHMARKS.md).
 */
const API_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
};

/** Routes that serve pages and their assets. */
export function isPageRoute(url: string): boolean {
  return url === '/' || /^\/(docs|graphiql|dashboard)(\/|$)/.test(url);
}

/** Never rate-limited: orchestrators poll them, and they answer from memory. */
const UNLIMITED = new Set(['/healthz', '/readyz']);

export interface SecurityOptions {
  config: HttpConfig;
  apiKeys: ApiKeys;
  metricsPublic: boolean;
  /** The CSP source of MAP_TILE_URL, or null. */
  tileSource: string | null;
  /** Loopback, without API keys and without a proxy in front: only loopback names in Host. */
  loopbackOnly: boolean;
}

/**
 * DNS rebinding: a page of evil.example whose name is made to resolve to 127.0.0.1 reaches a
 * service on loopback as its own origin (same-origin reads, WebSockets included). Its requests
 * say `Host: evil.example`: a service that listens on loopback for loopback clients only answers
 * loopback names.
 */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0: no Host, no browser
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':', 1)[0]!;
  return name === 'localhost' || name === '[::1]' || /^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(name);
}

export async function security(app: FastifyInstance, opts: SecurityOptions): Promise<void> {
  const { config, apiKeys } = opts;
  const loopbackOnly = opts.loopbackOnly;
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(API_HEADERS);
    if (loopbackOnly && !isLoopbackHost(request.headers.host)) return done(new BRG_ERR_HOST_FORBIDDEN(String(request.headers.host).slice(0, 200)));
    done();
  });
  const headers = { ...PAGE_HEADERS, 'content-security-policy': contentSecurityPolicy(opts.tileSource) };
  const pageHeaders = (_request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    reply.headers(headers);
    done();
  };
  app.addHook('onRoute', (route) => {
    if (!isPageRoute(route.url)) return;
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...hooks, pageHeaders] as typeof route.onRequest;
  });
  if (config.corsOrigins.length > 0) {
    const any = config.corsOrigins.includes('*');
    await app.register(cors, {
      origin: any ? '*' : config.corsOrigins,
      // writes (PUT, DELETE, POST imports) are preflighted; writeCheck (api-keys.ts) still refuses origins not listed
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['authorization', 'x-api-key', 'content-type', 'last-event-id'],
      exposedHeaders: ['retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
      maxAge: 600,
    });
  }
  identifyApiKeys(app, apiKeys);
  if (config.rateLimitPerMinute > 0) await limitRate(app, config.rateLimitPerMinute);
  requireApiKeys(app, apiKeys, { metricsPublic: opts.metricsPublic });
}

/** SPEC §9: per key, or per address for requests without a valid key (a wrong key is no way around it). */
async function limitRate(app: FastifyInstance, max: number): Promise<void> {
  await app.register(rateLimit, {
    global: false, // one root hook below, not one per route: it also counts 401s and 404s
    max,
    timeWindow: 60_000,
    keyGenerator: (request) => (request.apiKey >= 0 ? `key:${request.apiKey}` : `address:${request.ip}`),
    errorResponseBuilder: (_request, context) => new BRG_ERR_RATE_LIMITED(context.max, context.after),
  });
  const limit = app.rateLimit();
  // one line per client and minute, not one per refused request: a flood must not flood the log
  let logged = new Set<string>();
  const forget = setInterval(() => (logged = new Set()), 60_000);
  forget.unref();
  app.addHook('onClose', (_app, done) => {
    clearInterval(forget); // no handle outlives app.close()
    done();
  });
  app.addHook('onRequest', async function (request, reply) {
    if (UNLIMITED.has(request.url.split('?', 1)[0]!)) return;
    try {
      await limit.call(this, request, reply);
    } catch (err) {
      const who = request.apiKey >= 0 ? `API key #${request.apiKey + 1}` : request.ip;
      if (!logged.has(who)) {
        logged.add(who);
        request.log.warn({ client: who, limitPerMinute: max }, 'rate limit exceeded: refusing requests with 429');
      }
      throw err;
    }
  });
}

/**
 * SPEC §9: a browser may open a WebSocket to any site, and sends its page's Origin: only this
 * service's own origin and CORS_ORIGINS may. A client without an Origin (no browser) is not one
 * a malicious page can use.
 */
export function refuseForeignUpgrades(app: FastifyInstance, allowed: string[]): void {
  const any = allowed.includes('*');
  const origins = new Set(allowed);
  app.addHook('onRequest', (request, _reply, done) => {
    const origin = request.headers.origin;
    if (request.headers.upgrade === undefined || origin === undefined || any || origins.has(origin) || sameOrigin(request, origin)) {
      return done();
    }
    done(new BRG_ERR_ORIGIN_FORBIDDEN(origin.slice(0, 200)));
  });
}

function sameOrigin(request: FastifyRequest, origin: string): boolean {
  try {
    return new URL(origin).host === request.host;
  } catch {
    return false;
  }
}
