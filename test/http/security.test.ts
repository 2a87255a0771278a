import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import t, { type Test } from 'tap';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { LogCapture } from '../helpers/log.js';
import { WsProbe } from '../helpers/ws.js';

// SPEC §9: secure headers, CORS only for CORS_ORIGINS, WebSocket upgrades only from this origin or
// those, a rate limit per key or address, and a cap on open streams per address.

const KEY = 'k-0123456789abcdef-one';
const OTHER_KEY = 'k-0123456789abcdef-two';

async function listening(t: Test, env: Record<string, string> = {}) {
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'info', ...env }), { connectMqtt: false, logStream: log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return { app, log, base: `127.0.0.1:${port}` };
}

/** An open SSE response: resolves once its headers arrive. */
function openSse(t: Test, url: string): Promise<{ res: IncomingMessage; req: ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, (res) => resolve({ res, req }));
    t.teardown(() => req.destroy());
    req.on('error', reject);
    req.end();
  });
}

t.test('secure headers: the full set on pages, the REST set on the API', async (t) => {
  const { app } = await listening(t);
  for (const url of ['/', '/dashboard/app.js', '/graphiql', '/graphiql/assets/page.css', '/docs/']) {
    const res = await app.inject(url);
    t.equal(res.statusCode, 200, url);
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${url}: nosniff`);
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', `${url}: no framing`);
    t.equal(res.headers['referrer-policy'], 'no-referrer');
    t.equal(res.headers['cross-origin-opener-policy'], 'same-origin');
    const csp = String(res.headers['content-security-policy']);
    t.match(csp, /default-src 'self'/, `${url}: the page CSP`);
    t.match(csp, /frame-ancestors 'none'/);
    t.notMatch(csp, /script-src[^;]*unsafe|unsafe-eval/, `${url}: no inline script allowed`);
    if (!url.startsWith('/docs')) t.notMatch(csp, /unsafe-inline/, `${url}: no inline style either (Swagger UI needs them)`);
    t.notOk(res.headers['x-powered-by']);
  }
  for (const url of ['/devices', '/healthz', '/metrics', '/nowhere', '/graphql?query={stats{devices}}']) {
    const res = await app.inject(url);
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${url}: nosniff`);
    t.equal(res.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'", `${url}: nothing to render, nothing to frame`);
  }
  t.notOk((await app.inject('/devices')).headers['strict-transport-security'], 'HSTS is for the TLS terminator in front');
  t.notOk((await app.inject({ url: '/devices', headers: { origin: 'https://app.example.com' } })).headers['access-control-allow-origin'], 'no CORS without CORS_ORIGINS');
});

t.test('CORS: only the origins of CORS_ORIGINS, preflights answered without a key', async (t) => {
  const { app } = await listening(t, { CORS_ORIGINS: 'https://app.example.com', API_KEYS: KEY });
  const allowed = await app.inject({ url: '/devices', headers: { origin: 'https://app.example.com', 'x-api-key': KEY } });
  t.equal(allowed.statusCode, 200);
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
  const other = await app.inject({ url: '/devices', headers: { origin: 'https://evil.example', 'x-api-key': KEY } });
  t.notOk(other.headers['access-control-allow-origin'], 'another origin gets no CORS header: its browser keeps the answer from the page');

  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/devices',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
  });
  t.equal(preflight.statusCode, 204, 'a preflight carries no key, and needs none');
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
  t.match(String(preflight.headers['access-control-allow-headers']), /authorization/);
  t.match(String(preflight.headers['access-control-allow-methods']), /POST/);

  const any = await listening(t, { CORS_ORIGINS: '*' });
  t.equal((await any.app.inject({ url: '/stats', headers: { origin: 'https://anyone.example' } })).headers['access-control-allow-origin'], '*');
});

t.test('WebSocket upgrades from a foreign page are refused with 403, on /ws and /graphql', async (t) => {
  const { base } = await listening(t, { CORS_ORIGINS: 'https://app.example.com' });
  for (const path of ['/ws', '/graphql']) {
    const protocol = path === '/graphql' ? 'graphql-transport-ws' : undefined;
    await t.rejects(WsProbe.open(t, `ws://${base}${path}`, { origin: 'https://evil.example' }), /HTTP 403/, `${path}: another origin`);
    await t.rejects(WsProbe.open(t, `ws://${base}${path}`, { origin: 'null' }), /HTTP 403/, `${path}: a sandboxed page`);
    for (const origin of [`http://${base}`, 'https://app.example.com', undefined]) {
      const probe = await WsProbe.open(t, `ws://${base}${path}`, { ...(origin ? { origin } : {}), ...(protocol ? { protocols: protocol } : {}) } as never);
      t.pass(`${path}: ${origin ?? 'no Origin (not a browser)'} is served`);
      probe.socket.close();
    }
  }
});

t.test('rate limit: per key, or per address without a valid one; 429 in the error shape, one log line', async (t) => {
  const { app, base, log } = await listening(t, { RATE_LIMIT_PER_MINUTE: '3', API_KEYS: `${KEY},${OTHER_KEY}` });
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/stats', headers: { 'x-api-key': KEY } })).statusCode, 200);
  const refused = await app.inject({ url: '/stats', headers: { 'x-api-key': KEY } });
  t.equal(refused.statusCode, 429);
  t.match(refused.json(), { statusCode: 429, code: 'BRG_ERR_RATE_LIMITED', error: 'Too Many Requests', message: /at most 3 requests a minute/ });
  t.ok(Number(refused.headers['retry-after']) > 0, 'retry-after says when');
  t.equal(refused.headers['x-ratelimit-limit'], '3');
  t.equal((await app.inject({ url: '/stats', headers: { authorization: `Bearer ${OTHER_KEY}` } })).statusCode, 200, 'another key has its own budget');

  // without a valid key: by address, and a wrong key is no way around it (401s count)
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/stats', headers: { 'x-api-key': `wrong-key-number-${i}` } })).statusCode, 401);
  t.equal((await app.inject({ url: '/stats', headers: { 'x-api-key': 'wrong-key-number-9' } })).statusCode, 429, 'guessing keys is limited');
  t.equal((await app.inject('/nowhere')).statusCode, 429, 'unknown routes count too');
  t.equal((await app.inject({ url: '/stats', headers: { 'x-api-key': KEY } })).statusCode, 429, 'still limited');

  for (let i = 0; i < 10; i++) t.equal((await app.inject('/healthz')).statusCode, 200, 'health is never limited');
  t.equal((await app.inject('/readyz')).statusCode, 503);

  // a WebSocket upgrade is a request too
  await t.rejects(WsProbe.open(t, `ws://${base}/ws?apiKey=${KEY}`), /HTTP 429/);
  t.equal(log.lines.filter((l) => l.msg === 'rate limit exceeded: refusing requests with 429').length, 2, 'one line per client, not per request');
  t.notOk(log.text().includes(KEY), 'the key is not in the log');

  const off = await listening(t, { RATE_LIMIT_PER_MINUTE: '0' });
  for (let i = 0; i < 20; i++) t.equal((await off.app.inject('/stats')).statusCode, 200);
  t.notOk((await off.app.inject('/stats')).headers['x-ratelimit-limit'], '0 turns it off');
});

t.test('a cap on open streams per address, over /ws, /events and graphql-ws', async (t) => {
  const { app, base } = await listening(t, { MAX_STREAMS_PER_ADDRESS: '3' });
  const ws = await WsProbe.open(t, `ws://${base}/ws?snapshot=false`);
  const sse = await openSse(t, `http://${base}/events`);
  t.equal(sse.res.statusCode, 200);
  const gql = await WsProbe.open(t, `ws://${base}/graphql`, { protocols: 'graphql-transport-ws' } as never);
  t.equal(app.streamSlots.count('127.0.0.1'), 3);

  await t.rejects(WsProbe.open(t, `ws://${base}/ws`), /HTTP 429/, 'a fourth /ws');
  await t.rejects(WsProbe.open(t, `ws://${base}/graphql`, { protocols: 'graphql-transport-ws' } as never), /HTTP 429/, 'a fourth graphql-ws');
  const fourth = await openSse(t, `http://${base}/events`);
  t.equal(fourth.res.statusCode, 429, 'a fourth SSE stream');
  const body = await new Promise<string>((resolve) => {
    let text = '';
    fourth.res.on('data', (chunk: Buffer) => (text += chunk));
    fourth.res.on('end', () => resolve(text));
  });
  t.match(JSON.parse(body), { code: 'BRG_ERR_TOO_MANY_STREAMS', message: /at most 3/ });
  t.equal((await app.inject('/graphql?query={stats{devices}}')).statusCode, 200, 'GraphQL over HTTP GET is no stream');
  t.equal((await app.inject('/devices')).statusCode, 200, 'REST is not capped');

  // closing one frees its slot
  ws.socket.close();
  await ws.closed;
  sse.req.destroy();
  gql.socket.terminate();
  await gql.closed;
  await waitUntil(() => app.streamSlots.count('127.0.0.1') === 0, 'every slot to be freed');
  const again = await WsProbe.open(t, `ws://${base}/ws?snapshot=false`);
  t.equal(app.streamSlots.count('127.0.0.1'), 1);
  again.socket.close();
});

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

t.test('DNS rebinding: on loopback without keys, only loopback names in Host', async (t) => {
  const { app, base } = await listening(t);
  for (const host of ['localhost', 'localhost:3000', '127.0.0.1:3000', '127.9.9.9', '[::1]:3000']) {
    t.equal((await app.inject({ url: '/devices', headers: { host } })).statusCode, 200, host);
  }
  for (const host of ['evil.example', 'evil.example:3000', '127.0.0.1.evil.example', 'localhost.evil.example:3000', '[::2]']) {
    const res = await app.inject({ url: '/devices', headers: { host } });
    t.equal(res.statusCode, 403, host);
    t.equal(res.json().code, 'BRG_ERR_HOST_FORBIDDEN');
  }
  t.equal((await app.inject({ url: '/', headers: { host: 'evil.example' } })).statusCode, 403, 'the dashboard too');
  await t.rejects(WsProbe.open(t, `ws://${base}/ws`, { headers: { host: 'evil.example:3000' }, origin: 'http://evil.example:3000' }), /HTTP 403/, 'and its WebSockets');
  // with keys (or a proxy in front, TRUST_PROXY) the names are the operator's business
  const keyed = await listening(t, { API_KEYS: KEY });
  t.equal((await keyed.app.inject({ url: '/devices', headers: { host: 'bridge.example', 'x-api-key': KEY } })).statusCode, 200);
  const proxied = await listening(t, { TRUST_PROXY: '127.0.0.1' });
  t.equal((await proxied.app.inject({ url: '/devices', headers: { host: 'bridge.example' } })).statusCode, 200);
});
