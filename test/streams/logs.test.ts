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
