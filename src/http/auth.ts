import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BRG_ERR_UNAUTHORIZED } from '../errors.js';

// SPEC §9: with API_KEYS, every data route needs a key: `Authorization: Bearer <key>`,
// `x-api-key: <key>`, or `?apiKey=<key>` (browsers' WebSocket and EventSource cannot set headers).
// Keys are compared in constant time and never logged.

/** Routes open without a key: health for orchestrators, and the UI shells (they hold no data). */
const OPEN = [/^\/healthz$/, /^\/readyz$/, /^\/docs(\/|$)/, /^\/graphiql(\/|$)/];

export class ApiKeys {
  readonly #digests: Buffer[];

  constructor(keys: string[]) {
    this.#digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.#digests.length > 0;
  }

  /** Constant time in the key's content: every key is compared, as digests of equal length. */
  valid(candidate: unknown): boolean {
    if (typeof candidate !== 'string' || candidate === '') return false;
    const d = digest(candidate);
    let ok = false;
    for (const key of this.#digests) ok = timingSafeEqual(key, d) || ok;
    return ok;
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

/**
 * The onRequest check, on every route but the open ones. A graphql-ws upgrade may carry its key
 * in connection_init instead (SPEC §5): it is checked there (graphql/plugin.ts).
 */
export function requireApiKeys(app: FastifyInstance, keys: ApiKeys): void {
  if (!keys.enabled) return;
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?', 1)[0]!;
    if (OPEN.some((re) => re.test(path))) return;
    if (path === '/graphql' && request.headers.upgrade?.toLowerCase() === 'websocket') return;
    if (!keys.valid(ApiKeys.of(request))) throw new BRG_ERR_UNAUTHORIZED();
  });
}
