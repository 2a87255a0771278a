import http from 'node:http';
import t from 'tap';
import { buildTestApp, testConfig, withTimeout } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { checkFrame } from '../helpers/asyncapi.js';
import { SseParser, type SseBlock } from '../helpers/sse.js';
import { WsProbe } from '../helpers/ws.js';

// SPEC §11: a registry change is a meta event on every stream (/ws `meta` frames, SSE
// `event: meta`), so live views move markers without a reload; /ws clients choose frame types.

t.test('meta events on /ws and SSE: filters, types, never-seen devices', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  await app.devices.accept(record({ deviceId: 'seen', state: 'close' }), Date.now());

  const all = await WsProbe.open(t, `ws://127.0.0.1:${port}/ws`);
  const onlySeen = await WsProbe.open(t, `ws://127.0.0.1:${port}/ws?deviceId=seen&snapshot=false`);
  const closed = await WsProbe.open(t, `ws://127.0.0.1:${port}/ws?state=close&snapshot=false`);
  const metaOnly = await WsProbe.open(t, `ws://127.0.0.1:${port}/ws?snapshot=false`);
  await all.next((f) => f.type === 'snapshot', 'the snapshot');
  metaOnly.send({ type: 'subscribe', types: ['meta'] });
  await metaOnly.next((f) => f.type === 'snapshot', 'the snapshot after subscribe');

  const blocks: SseBlock[] = [];
  const parser = new SseParser();
  const sse = http.get(`http://127.0.0.1:${port}/events`);
  t.teardown(() => sse.destroy());
  let wake = (): void => {};
  const res = await new Promise<http.IncomingMessage>((resolve) => sse.once('response', resolve));
  res.on('data', (chunk: Buffer) => {
    blocks.push(...parser.push(chunk));
    wake();
  });

  const put = (id: string, body: object) => app.inject({ method: 'PUT', url: `/registry/${id}`, payload: body });
  t.equal((await put('seen', { name: 'Market <b>Sq</b>', latitude: 52.5, longitude: 13.4 })).statusCode, 201);
  t.equal((await put('planned', { latitude: 1, longitude: 2 })).statusCode, 201);
  await app.devices.accept(record({ deviceId: 'seen', state: 'open', timestamp: 1_800_000_000 }), Date.now());

  const meta = await all.next((f) => f.type === 'meta', 'the meta frame');
  t.same([meta.seq, meta.deviceId, (meta.device as { meta: { name: string } }).meta.name, (meta.meta as { name: string }).name], [2, 'seen', 'Market <b>Sq</b>', 'Market <b>Sq</b>']);
  t.same(checkFrame('wsMeta', meta), [], 'as asyncapi.yaml says');
  const planned = await all.next((f) => f.type === 'meta', 'the never-seen meta frame');
  t.same([planned.deviceId, planned.device, (planned.meta as { latitude: number }).latitude], ['planned', null, 1], 'a device never heard from: no device, the entry');
  const update = await all.next((f) => f.type === 'update', 'the update after');
  t.same((update.device as { meta: { latitude: number } }).meta.latitude, 52.5, 'updates carry meta too');

  t.same([(await onlySeen.next()).type, (await onlySeen.next()).type], ['meta', 'update'], 'a device filter: its meta events only');
  t.same((await closed.next()).deviceId, 'seen', 'a state filter takes the meta of a device in that state');
  t.same([(await metaOnly.next()).deviceId, (await metaOnly.next()).deviceId], ['seen', 'planned'], 'types: [meta]');

  await withTimeout(
    new Promise<void>((resolve) => {
      wake = () => blocks.filter((b) => b.event === 'meta').length === 2 && resolve();
      wake();
    }),
    10_000,
    () => `two SSE meta events; got ${JSON.stringify(blocks.map((b) => b.event))}`,
  );
  const sseMeta = blocks.filter((b) => b.event === 'meta');
  t.same(sseMeta.map((b) => b.id), ['2', '3']);
  t.same(checkFrame('sseMeta', JSON.parse(sseMeta[0]!.data!)), []);
  t.equal(closed.frames.some((f) => f.deviceId === 'planned'), false, 'no state: not for a state filter');
  t.equal(metaOnly.frames.some((f) => f.type === 'update'), false, 'types left updates out');
  onlySeen.send({ type: 'subscribe', types: ['nonsense'] });
  t.match((await onlySeen.next((f) => f.type === 'error')).message, /types/, 'an unknown type is an error frame');
});
