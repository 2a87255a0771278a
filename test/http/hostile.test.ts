import t, { type Test } from 'tap';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { LogCapture } from '../helpers/log.js';
import { record } from '../helpers/records.js';

// SPEC §9, issue 7: hostile HTTP gets a clear 4xx in the shared error shape, never a stack or an
// echo that could forge a header or a log line, and the service stays up with bounded memory.

const NOW = Date.parse('2026-11-27T00:00:00Z');

function errorShape(t: Test, body: string, status: number, what: string): void {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(body) as Record<string, unknown>;
  } catch {
    t.fail(`${what}: not JSON: ${body.slice(0, 100)}`);
    return;
  }
  t.equal(json.statusCode, status, `${what}: ${status}`);
  t.type(json.message, 'string', `${what}: a message`);
  t.type(json.error, 'string');
  t.notMatch(body, /\bat .*:\d+:\d+|stack|node_modules|\/src\//, `${what}: no stack, no paths`);
}

async function appWith(t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildTestApp(t, testConfig(env), { connectMqtt: false });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'a' }), NOW);
  return app;
}

t.test('bodies: oversized, not JSON, the wrong type', async (t) => {
  const app = await appWith(t);
  const big = await app.inject({ method: 'POST', url: '/graphql', payload: JSON.stringify({ query: `{ stats { devices } } #${'x'.repeat(1_100_000)}` }), headers: { 'content-type': 'application/json' } });
  t.equal(big.statusCode, 413);
  errorShape(t, big.body, 413, 'a body over 1 MiB');
  const notJson = await app.inject({ method: 'POST', url: '/graphql', payload: '{"query": "{ stats', headers: { 'content-type': 'application/json' } });
  t.equal(notJson.statusCode, 400);
  t.same(notJson.json(), {
    data: null,
    errors: [{ message: "Body is not valid JSON but content-type is set to 'application/json'", extensions: { code: 'FST_ERR_CTP_INVALID_JSON_BODY' } }],
  }, 'invalid JSON: GraphQL\'s error shape, as the route\'s 400 schema says (not an empty object)');
  const proto = await app.inject({ method: 'POST', url: '/graphql', payload: '{"__proto__": {"polluted": true}, "query": "{ stats { devices } }"}', headers: { 'content-type': 'application/json' } });
  t.ok([200, 400].includes(proto.statusCode), 'a __proto__ key is refused or ignored');
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  const wrongType = await app.inject({ method: 'POST', url: '/graphql', payload: '<xml/>', headers: { 'content-type': 'application/xml' } });
  errorShape(t, wrongType.body, 415, 'an unsupported content type');
  const noBody = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' } });
  t.ok(noBody.statusCode >= 400 && noBody.statusCode < 500, 'an empty JSON body');
  t.equal((await app.inject('/healthz')).statusCode, 200, 'still up');
});

t.test('numbers: huge, negative, fractional and non-numeric limits', async (t) => {
  const app = await appWith(t);
  // Infinity and 1e400 once passed: ajv coerces them to Infinity and then skips `maximum`
  for (const limit of ['99999999999999999999999', '1e9', '1e400', '-1', '1.5', '0x10', 'NaN', 'Infinity', '-Infinity', '', ' ']) {
    const res = await app.inject(`/devices?limit=${encodeURIComponent(limit)}`);
    errorShape(t, res.body, 400, `/devices?limit=${limit}`);
    errorShape(t, (await app.inject(`/devices/a/history?limit=${encodeURIComponent(limit)}`)).body, 400, `history?limit=${limit}`);
  }
  const many = await app.inject(`/devices?${Array.from({ length: 500 }, (_, i) => `limit=${i}`).join('&')}`);
  errorShape(t, many.body, 400, 'limit given 500 times');
  const gqlHuge = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: { query: '{ devices(limit: 2147483647) { items { deviceId } } }' },
  });
  t.equal(gqlHuge.statusCode, 200, 'GraphQL: a huge limit is clamped, not refused');
  t.equal(gqlHuge.json().data.devices.items.length, 1);
  const gqlOverflow = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ devices(limit: 99999999999) { total } }' } });
  t.equal(gqlOverflow.statusCode, 400, 'GraphQL: past Int is a validation error');
  t.match(gqlOverflow.json().errors[0].message, /Int cannot represent/);
});

t.test('odd device ids in the path: slashes, dots, unicode, control characters, very long', async (t) => {
  const app = await appWith(t);
  const odd = ['a/b', '...', 'a..b', '.hidden', '%', '日本語-センサー', '😀'.repeat(32), 'a b', '<script>alert(1)</script>', "x'; DROP TABLE devices; --"];
  for (const id of odd) {
    await app.devices.accept(record({ deviceId: id }), NOW);
    // ('.' and '..' are no ids a client can address: URL parsers resolve them away, %2E too)
    const path = `/devices/${encodeURIComponent(id)}`;
    const res = await app.inject(path);
    t.equal(res.statusCode, 200, `${JSON.stringify(id)} is served`);
    t.equal(res.json().deviceId, id, `${JSON.stringify(id)} comes back as it was`);
    t.equal((await app.inject(`${path}/history`)).json().deviceId, id);
  }
  // control characters are no device id a payload can give (normalize refuses them): 404, and
  // neither the answer's headers nor the log can be forged with them
  const crlf = await app.inject('/devices/x%0D%0ASet-Cookie:%20evil=1');
  t.equal(crlf.statusCode, 404);
  t.notOk(crlf.headers['set-cookie'], 'no header injection');
  t.equal(crlf.json().message, "device 'x\r\nSet-Cookie: evil=1' not found", 'the id only inside a JSON string');
  t.equal((await app.inject('/devices/%00')).statusCode, 404);
  t.equal((await app.inject(`/devices/${'é'.repeat(129)}`)).statusCode, 400, 'over 128 characters');
  const veryLong = await app.inject(`/devices/${'x'.repeat(100_000)}`);
  t.ok([400, 404, 414].includes(veryLong.statusCode), `100,000 characters: ${veryLong.statusCode}`);
  errorShape(t, veryLong.body, veryLong.statusCode, 'a 100,000-character id');
});

t.test('raw HTTP: oversized headers, a garbage request line, a slow client are cut', async (t) => {
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'info' }), { connectMqtt: false, logStream: log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const raw = (text: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end(text));
      let answer = '';
      socket.on('data', (d) => (answer += d));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
    });
  t.match(await raw(`GET /devices HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431/, 'headers over 16 KiB: 431');
  t.match(await raw('NOT HTTP AT ALL\r\n\r\n'), /^HTTP\/1\.1 400/, 'a garbage request line: 400');
  t.match(await raw('GET /devices HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'), /^HTTP\/1\.1 400/, 'a negative Content-Length');
  t.match(await raw('GET /devices HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 400/, 'request smuggling headers');
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'still up');
  t.equal(app.server.requestTimeout, 30_000, 'a slow client is cut after 30 s (requestTimeout)');
  t.equal(app.server.headersTimeout, 30_000, 'slow headers too (headersTimeout, 60 s by default)');
  // Node checks both every connectionsCheckingInterval (30 s by default: cuts at up to 60 s)
  const interval = Object.getOwnPropertySymbols(app.server).find((s) => s.description === 'http.server.connectionsCheckingInterval');
  const timer = (app.server as unknown as Record<symbol, { _idleTimeout: number } | undefined>)[interval!];
  t.equal(timer?._idleTimeout, 1000, 'checked every second: the bound holds within a second');
});

t.test('a flood from many addresses past the rate limit: 429s, and the memory stays bounded', async (t) => {
  // TRUST_PROXY: each request claims its own client address, the worst case for the limiter's
  // table. Over real sockets: inject() keeps garbage of its own that would hide what the app keeps.
  const app = await buildTestApp(t, testConfig({ RATE_LIMIT_PER_MINUTE: '1', TRUST_PROXY: 'true' }), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  const get = (address: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/stats', agent, headers: { 'x-forwarded-for': address } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  const statuses = new Map<number, number>();
  const flood = async (from: number, count: number): Promise<void> => {
    for (let i = from; i < from + count; i += 8) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, j) => {
          const n = i + j;
          const address = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
          for (let k = 0; k < 2; k++) {
            const status = await get(address);
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
          }
        }),
      );
    }
  };
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void; // a full collection, so that heapUsed is what is kept
  await flood(0, 5000); // warm: the limiter's table fills (it keeps at most 5,000 clients)
  gc();
  const before = process.memoryUsage().heapUsed;
  await flood(5000, 10_000);
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  t.equal(statuses.get(200), 15_000, 'one request a client served');
  t.equal(statuses.get(429), 15_000, 'the second refused');
  t.ok(grown < 16 * 1024 * 1024, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MiB over 20,000 requests from 10,000 new addresses`);
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'still up');
});
