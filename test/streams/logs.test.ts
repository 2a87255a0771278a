import t from 'tap';
import { request as httpRequest } from 'node:http';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { LogCapture } from '../helpers/log.js';
import { WsProbe } from '../helpers/ws.js';

// Issue 7: one log line per client connect and disconnect, at debug, for every stream kind.

t.test('stream clients are logged at debug as they come and go', async (t) => {
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'debug' }), { connectMqtt: false, logStream: log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const base = `127.0.0.1:${port}`;
  const line = (msg: string) => log.waitFor((l) => l.msg === msg, msg);

  const ws = await WsProbe.open(t, `ws://${base}/ws?snapshot=false`);
  t.match(await line('/ws client connected'), { level: 20, client: '127.0.0.1', open: 1 });
  ws.socket.close(1000);
  t.match(await line('/ws client disconnected'), { level: 20, client: '127.0.0.1', code: 1000, open: 0 });

  const gql = await WsProbe.open(t, `ws://${base}/graphql`, { protocols: 'graphql-transport-ws' } as never);
  t.match(await line('graphql-ws client connected'), { level: 20, open: 1 });
  gql.socket.close(1000);
  t.match(await line('graphql-ws client disconnected'), { level: 20, code: 1000, open: 0 });

  const req = httpRequest(`http://${base}/events`);
  req.on('error', () => {});
  req.end();
  t.match(await line('SSE client connected'), { level: 20, open: 1 });
  req.destroy();
  t.match(await line('SSE client disconnected'), { level: 20, open: 0 });

  const quiet = new LogCapture();
  const info = await buildTestApp(t, testConfig({ LOG_LEVEL: 'info' }), { connectMqtt: false, logStream: quiet });
  await info.listen({ port: 0, host: '127.0.0.1' });
  const infoPort = (info.server.address() as { port: number }).port;
  const probe = await WsProbe.open(t, `ws://127.0.0.1:${infoPort}/ws?snapshot=false`);
  probe.socket.close(1000);
  await probe.closed;
  await info.close();
  t.notOk(quiet.lines.some((l) => /client (dis)?connected/.test(String(l.msg))), 'not at info');
});

t.test("clients' protocol errors are warn lines without a stack, at most one per kind per 10 s", async (t) => {
  const log = new LogCapture();
  let now = Date.now();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'info' }), { connectMqtt: false, logStream: log, clock: { now: () => now } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const codes: number[] = [];
  // 20 frames over 64 KiB and 20 of invalid UTF-8, on /ws and on /graphql
  for (let i = 0; i < 40; i++) {
    const path = i % 2 ? '/graphql' : '/ws?snapshot=false';
    const probe = await WsProbe.open(t, `ws://127.0.0.1:${port}${path}`, i % 2 ? ({ protocols: 'graphql-transport-ws' } as never) : {});
    if (i < 20) probe.socket.send('x'.repeat(70 * 1024));
    else probe.socket.send(Buffer.from([0xc3, 0x28]), { binary: false });
    codes.push((await probe.closed).code);
  }
  t.same([...new Set(codes.slice(0, 20))], [1009], 'too big: 1009');
  t.same([...new Set(codes.slice(20))], [1007], 'invalid UTF-8: 1007');
  t.notOk(log.lines.some((l) => l.level >= 50), 'nothing at error level');
  const warns = log.lines.filter((l) => l.msg === 'WebSocket client error: connection closed');
  t.same(
    warns.map((l) => l.code),
    ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'WS_ERR_INVALID_UTF8'],
    'one line per kind',
  );
  t.ok(warns.every((l) => !('stack' in l) && !('err' in l) && l.client === '127.0.0.1'), 'no stack, the client address');

  now += 10_001;
  const late = await WsProbe.open(t, `ws://127.0.0.1:${port}/ws?snapshot=false`);
  late.socket.send('y'.repeat(70 * 1024));
  await late.closed;
  const next = await log.waitFor((l) => l.msg === 'WebSocket client error: connection closed' && l.suppressed !== 0, 'the next line, 10 s later');
  t.equal(next.suppressed, 19, 'the lines held back, summed up');
});
