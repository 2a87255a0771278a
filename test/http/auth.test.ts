import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { LogCapture } from '../helpers/log.js';
import { WsProbe } from '../helpers/ws.js';

// SPEC §9: with API_KEYS, every data surface needs a key, in a header or (for browsers) ?apiKey=;
// /healthz and /readyz stay open; no key ever reaches the log.

const KEY = 'k-0123456789abcdef-right';
const WRONG = 'k-0123456789abcdef-wrong';

async function secured(t: Test) {
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ API_KEYS: `other-key-0123456789,${KEY}`, LOG_LEVEL: 'info' }), { connectMqtt: false, logStream: log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return { app, log, base: `127.0.0.1:${port}` };
}

function status(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('REST, SSE and GraphQL over HTTP: 401 without a valid key, served with one in each place', async (t) => {
  const { app, log, base } = await secured(t);
  const missing = await app.inject('/devices');
  t.equal(missing.statusCode, 401);
  t.same(missing.json(), {
    statusCode: 401,
    code: 'BRG_ERR_UNAUTHORIZED',
    error: 'Unauthorized',
    message: 'an API key is required: Authorization: Bearer <key>, x-api-key: <key> or ?apiKey=<key>',
  });
  t.equal((await app.inject({ url: '/devices', headers: { authorization: `Bearer ${WRONG}` } })).statusCode, 401, 'a wrong key');
  t.equal((await app.inject({ url: '/devices', headers: { authorization: `Bearer ${KEY}` } })).statusCode, 200, 'Bearer');
  t.equal((await app.inject({ url: '/devices', headers: { 'x-api-key': KEY } })).statusCode, 200, 'x-api-key');
  t.equal((await app.inject(`/devices?apiKey=${KEY}&limit=5`)).statusCode, 200, '?apiKey=');
  t.equal((await app.inject('/stats')).statusCode, 401);
  t.equal((await app.inject('/openapi.json')).statusCode, 401);
  t.equal((await app.inject('/healthz')).statusCode, 200, '/healthz stays open');
  t.equal((await app.inject('/readyz')).statusCode, 503, '/readyz stays open (not connected to MQTT here)');
  t.equal((await app.inject('/docs')).statusCode, 200, 'the UI shells hold no data');

  t.equal(await status(`http://${base}/events`), 401, 'SSE without a key');
  t.equal(await status(`http://${base}/events?apiKey=${KEY}`), 200, "SSE with ?apiKey= (EventSource's way)");
  const gql = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/graphql', headers, payload: { query: '{ stats { devices } }' } });
  t.equal((await gql({})).statusCode, 401);
  t.equal((await gql({ 'x-api-key': KEY })).statusCode, 200);

  for (const line of log.lines) {
    const text = JSON.stringify(line);
    if (text.includes(KEY) || text.includes(WRONG)) t.fail(`a key in the log: ${text}`);
  }
  t.ok(log.lines.some((l) => JSON.stringify(l).includes('apiKey=[redacted]')), 'the query key is redacted in request logs');
});

t.test('/ws: refused before the upgrade without a key', async (t) => {
  const { base } = await secured(t);
  await t.rejects(WsProbe.open(t, `ws://${base}/ws`), /HTTP 401/);
  await t.rejects(WsProbe.open(t, `ws://${base}/ws?apiKey=${WRONG}`), /HTTP 401/);
  const ok = await WsProbe.open(t, `ws://${base}/ws?apiKey=${KEY}`);
  t.equal((await ok.next()).type, 'snapshot');
  const header = await WsProbe.open(t, `ws://${base}/ws`, { headers: { 'x-api-key': KEY } });
  t.equal((await header.next()).type, 'snapshot');
});

t.test('graphql-ws: the key in connection_init or on the upgrade; refused with 4403', async (t) => {
  const { base } = await secured(t);
  const attempt = (url: string, payload?: Record<string, unknown>): Promise<string> =>
    new Promise((resolve) => {
      const ws = new WebSocket(url, 'graphql-transport-ws');
      t.teardown(() => ws.terminate());
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', ...(payload ? { payload } : {}) })));
      ws.on('message', (d) => resolve(JSON.parse(d.toString()).type as string));
      ws.on('close', (code, reason) => resolve(`closed ${code} ${reason.toString()}`));
      ws.on('error', () => {});
    });
  t.equal(await attempt(`ws://${base}/graphql`), 'closed 4403 Forbidden', 'no key');
  t.equal(await attempt(`ws://${base}/graphql`, { apiKey: WRONG }), 'closed 4403 Forbidden', 'a wrong key');
  t.equal(await attempt(`ws://${base}/graphql`, { apiKey: KEY }), 'connection_ack', 'in connection_init');
  t.equal(await attempt(`ws://${base}/graphql?apiKey=${KEY}`), 'connection_ack', 'on the upgrade request');
});

t.test('an Upgrade header without a handshake is no way around the key on GraphQL over HTTP', async (t) => {
  const { base } = await secured(t);
  const [host, port] = base.split(':') as [string, string];
  const raw = (text: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect(Number(port), host, () => socket.write(text));
      let answer = '';
      socket.on('data', (d) => (answer += d));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
    });
  const body = '{"query":"{ devices { total } }"}';
  const get = await raw(`GET /graphql?query=%7Bdevices%7Btotal%7D%7D HTTP/1.1\r\nHost: ${base}\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n`);
  t.match(get, /^HTTP\/1\.1 401/, 'GET with Upgrade but no Connection: Upgrade');
  t.notMatch(get, /"data"/);
  const post = await raw(
    `POST /graphql HTTP/1.1\r\nHost: ${base}\r\nUpgrade: WebSocket\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  t.match(post, /^HTTP\/1\.1 401/, 'POST with an Upgrade header');
  t.notMatch(post, /"data"/);
});
