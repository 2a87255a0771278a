import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BRG_ERR_READ_ONLY_KEY, BRG_ERR_UNAUTHORIZED, BRG_ERR_WRITE_ORIGIN_FORBIDDEN } from './errors.js';

// SPEC §9: with API_KEYS, every data route needs a key: `Authorization: Bearer <key>`,
// `x-api-key: <key>`, or `?apiKey=<key>` (browsers' WebSocket and EventSource cannot set headers).
// Keys are compared in constant time and never logged.

/** Routes open without a key: health for orchestrators, and the UI shells (they hold no data). */
const OPEN = [/^\/healthz$/, /^\/readyz$/, /^\/docs(\/|$)/, /^\/graphiql(\/|$)/, /^\/$/, /^\/dashboard\//];

export class ApiKeys {
  readonly #digests: Buffer[];
  /** Keys below this index are API_KEYS (read and write); the rest API_READ_KEYS. */
  readonly #writers: number;

  constructor(keys: string[], readKeys: string[] = []) {
    this.#digests = [...keys, ...readKeys].map(digest);
    this.#writers = keys.length;
  }

  get enabled(): boolean {
    return this.#digests.length > 0;
  }

  /** SPEC §9: whether the key of this index (match()) may write; without keys every caller may (loopback only). */
  writes(index: number): boolean {
    return !this.enabled || (index >= 0 && index < this.#writers);
  }

  valid(candidate: unknown): boolean {
    return this.match(candidate) >= 0;
  }

  /** The index of the key, or -1. Constant time in the key's content: every key is compared, as digests of equal length. */
  match(candidate: unknown): number {
    if (typeof candidate !== 'string' || candidate === '') return -1;
    const d = digest(candidate);
    let found = -1;
    this.#digests.forEach((key, i) => {
      if (timingSafeEqual(key, d)) found = i;
    });
    return found;
  }

  /** The key a request carries, wherever it carries it. */
  static of(request: FastifyRequest): string | undefined {
    const auth = request.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7).trim();
    const header = request.headers['x-api-key'];
    if (typeof header === 'string') return header;
    const query = (request.query as Record<string, unknown> | undefined)?.apiKey;
    if (typeof query === 'string') return query;
    return new URL(request.url, 'http://x').searchParams.get('apiKey') ?? undefined;
  }
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** The URL without its apiKey, for logs. */
export function withoutApiKey(url: string): string {
  return url.replace(/([?&]apiKey=)[^&#]*/gi, '$1[redacted]');
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Which of API_KEYS the request carries (its index), or -1: set by the first onRequest hook. */
    apiKey: number;
  }
}

/** Whether a path is served without a key (health, the UI shells, /metrics with METRICS_PUBLIC). */
export function isOpenPath(path: string, options: { metricsPublic: boolean }): boolean {
  return OPEN.some((re) => re.test(path)) || (options.metricsPublic && path === '/metrics');
}

/** The first onRequest hook: which key the request carries, if any (for the rate limit and the check). */
export function identifyApiKeys(app: FastifyInstance, keys: ApiKeys): void {
  app.decorateRequest('apiKey', -1);
  if (!keys.enabled) return;
  app.addHook('onRequest', (request, _reply, done) => {
    request.apiKey = keys.match(ApiKeys.of(request));
    done();
  });
}

/**
 * The onRequest check, on every route but the open ones. A graphql-ws upgrade may carry its key
 * in connection_init instead (SPEC §5): it is checked there (graphql/plugin.ts). A CORS preflight
 * carries no key by design: @fastify/cors answers it.
 */
export function requireApiKeys(app: FastifyInstance, keys: ApiKeys, options: { metricsPublic: boolean }): void {
  if (!keys.enabled) return;
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.apiKey >= 0 || request.method === 'OPTIONS') return done();
    const path = request.url.split('?', 1)[0]!;
    if (isOpenPath(path, options)) return done();
    // only a real WebSocket handshake (Node saw Connection: Upgrade), never a query that merely
    // carries an Upgrade header: GET and POST /graphql over HTTP need their key here
    if (path === '/graphql' && (request.raw as { upgrade?: boolean }).upgrade === true && request.method === 'GET') return done();
    done(new BRG_ERR_UNAUTHORIZED());
  });
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Throws unless the request may write (SPEC §9, §11): REST writes and GraphQL mutations call it. */
    checkWrite: (request: FastifyRequest) => void;
  }
}

/**
 * SPEC §9, §11: a write (a registry change, an import, a mutation) needs a key of API_KEYS when
 * keys are set; a key of API_READ_KEYS is refused with 403 BRG_ERR_READ_ONLY_KEY. (A request
 * without any valid key was refused with 401 before it got here.)
 *
 * And no page of another origin writes. Keys travel in headers, which a browser never adds to a
 * cross-site request by itself, so a forged request carries none (no CSRF with keys). Without
 * keys the service answers loopback only, and a page on evil.example can still make the browser
 * send a simple request (a form POST) to 127.0.0.1: a write whose Origin is neither this service
 * nor one listed in CORS_ORIGINS is refused (`*` counts only with keys), whatever it carries.
 */
export function writeCheck(keys: ApiKeys, corsOrigins: string[]): (request: FastifyRequest) => void {
  const listed = new Set(corsOrigins.filter((o) => o !== '*'));
  const any = corsOrigins.includes('*') && keys.enabled;
  return (request) => {
    const origin = request.headers.origin;
    if (origin !== undefined && !any && !listed.has(origin) && !sameOrigin(request, origin)) {
      throw new BRG_ERR_WRITE_ORIGIN_FORBIDDEN(origin.slice(0, 200));
    }
    if (!keys.writes(request.apiKey)) throw new BRG_ERR_READ_ONLY_KEY();
  };
}

function sameOrigin(request: FastifyRequest, origin: string): boolean {
  try {
    return new URL(origin).host === request.host;
  } catch {
    return false;
  }
}
