import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { loadConfig } from '../../src/config.js';

// SPEC §9, §11: writes need a key of API_KEYS; a key of API_READ_KEYS reads everything and writes
// nothing (403 BRG_ERR_READ_ONLY_KEY). Keys travel in headers, which a browser never adds to a
// cross-site request: without keys, a write from a page of another origin is refused by its Origin.

const WRITER = 'writer-0123456789abcdef';
const READER = 'reader-0123456789abcdef';

async function secured(t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildTestApp(t, testConfig({ API_KEYS: WRITER, API_READ_KEYS: READER, ...env }), { connectMqtt: false });
  await app.ready();
  return app;
}

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const entry = { name: 'n', latitude: 1, longitude: 2 };

t.test('a read-only key reads every route and writes none; a write key writes', async (t) => {
  const app = await secured(t);
  const writes = [
    { method: 'PUT' as const, url: '/registry/a', payload: entry },
    { method: 'DELETE' as const, url: '/registry/a' },
    { method: 'POST' as const, url: '/registry/import', headers: { 'content-type': 'text/csv' }, payload: 'deviceId\na\n' },
  ];
  t.equal((await app.inject({ ...writes[0]!, headers: as(WRITER) })).statusCode, 201, 'the write key writes');
  for (const write of writes) {
    const res = await app.inject({ ...write, headers: { ...write.headers, ...as(READER) } });
    t.same([res.statusCode, res.json().code], [403, 'BRG_ERR_READ_ONLY_KEY'], `${write.method} ${write.url}: read-only`);
    const none = await app.inject(write);
    t.equal(none.statusCode, 401, `${write.method} ${write.url}: no key`);
  }
  t.same((await app.inject({ url: '/registry/a', headers: as(READER) })).json(), { deviceId: 'a', name: 'n', address: null, latitude: 1, longitude: 2, zone: null, tags: [] }, 'nothing changed');
  for (const url of ['/registry', '/registry/a', '/registry/export', '/devices', '/devices.geojson', '/stats', '/devices?zone=x']) {
    t.equal((await app.inject({ url, headers: as(READER) })).statusCode, 200, `GET ${url} with the read key`);
  }
  t.equal((await app.inject({ url: `/devices.geojson?apiKey=${READER}` })).statusCode, 200, 'GIS tools pass ?apiKey=');
  const gql = await app.inject({ method: 'POST', url: '/graphql', headers: as(READER), payload: { query: '{ stats { devices } }' } });
  t.equal(gql.statusCode, 200, 'GraphQL reads with the read key');
  t.equal((await app.inject({ method: 'DELETE', url: '/registry/a', headers: { 'x-api-key': WRITER } })).statusCode, 204);
});

t.test('keys: a read key cannot also be a write key, and is a secret', async (t) => {
  t.throws(() => loadConfig({ env: { API_KEYS: WRITER, API_READ_KEYS: WRITER }, dotenv: false }), /API_READ_KEYS must not repeat a key of API_KEYS/);
  t.throws(() => loadConfig({ env: { API_READ_KEYS: 'short' }, dotenv: false }), /API_READ_KEYS must each have 16 characters/);
  t.doesNotThrow(() => loadConfig({ env: { API_READ_KEYS: READER, HOST: '0.0.0.0', DATA_DIR: '' }, dotenv: false }), 'read keys alone protect a network address');
});

t.test('without keys, writes from a page of another origin are refused; the own origin and listed ones write', async (t) => {
  const app = await buildTestApp(t, testConfig({ CORS_ORIGINS: 'https://ops.example' }), { connectMqtt: false });
  await app.ready();
  const put = (origin: string | undefined) =>
    app.inject({ method: 'PUT', url: '/registry/a', headers: { host: '127.0.0.1:3000', ...(origin ? { origin } : {}) }, payload: entry });
  const evil = await put('https://evil.example');
  t.same([evil.statusCode, evil.json().code], [403, 'BRG_ERR_WRITE_ORIGIN_FORBIDDEN']);
  const form = await app.inject({
    method: 'POST',
    url: '/registry/import',
    headers: { host: '127.0.0.1:3000', origin: 'null', 'content-type': 'text/plain' },
    payload: 'deviceId\na\n',
  });
  t.equal(form.statusCode, 403, 'a form posted from a sandboxed page (Origin: null) writes nothing');
  t.equal((await put('http://127.0.0.1:3000')).statusCode, 201, 'the service own page');
  t.equal((await put('https://ops.example')).statusCode, 200, 'an origin of CORS_ORIGINS');
  t.equal((await put(undefined)).statusCode, 200, 'curl sends no Origin');
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/registry/a',
    headers: { origin: 'https://ops.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type' },
  });
  t.equal(preflight.statusCode, 204);
  t.match(String(preflight.headers['access-control-allow-methods']), /PUT/);
  const foreign = await app.inject({
    method: 'OPTIONS',
    url: '/registry/a',
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' },
  });
  t.notOk(foreign.headers['access-control-allow-origin'], 'no preflight passes for an origin not listed');
});

t.test('CORS_ORIGINS=* lets any page read; it writes only with keys (which it cannot take from the user)', async (t) => {
  const open = await buildTestApp(t, testConfig({ CORS_ORIGINS: '*' }), { connectMqtt: false });
  const res = await open.inject({ method: 'PUT', url: '/registry/a', headers: { host: 'localhost', origin: 'https://any.example' }, payload: entry });
  t.same([res.statusCode, res.json().code], [403, 'BRG_ERR_WRITE_ORIGIN_FORBIDDEN'], 'no keys: * does not open writes');
  const keyed = await secured(t, { CORS_ORIGINS: '*' });
  const ok = await keyed.inject({ method: 'PUT', url: '/registry/a', headers: { origin: 'https://any.example', ...as(WRITER) }, payload: entry });
  t.equal(ok.statusCode, 201, 'with a write key from any origin');
});
