import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import type { MetaEvent } from '../../src/devices/events.js';

// SPEC §11 REST: the registry's routes, its import and export, the devices' zone and q filters,
// and meta events; who may write is in registry-auth.test.ts, the GeoJSON in geojson.test.ts.

const HEADER = 'deviceId,name,address,latitude,longitude,zone,tags';

async function app(t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const a = await buildTestApp(t, testConfig(env), { connectMqtt: false });
  await a.ready();
  return a;
}

const put = (a: FastifyInstance, id: string, payload: unknown) =>
  a.inject({ method: 'PUT', url: `/registry/${encodeURIComponent(id)}`, payload: payload as object });
const importFile = (a: FastifyInstance, body: string | Buffer, type: string, query = '') =>
  a.inject({ method: 'POST', url: `/registry/import${query}`, headers: { 'content-type': type }, payload: body });

t.test('PUT creates (201) then replaces (200) an entry; GET and DELETE; the device gains meta', async (t) => {
  const a = await app(t);
  await a.devices.accept(record({ deviceId: 'mh-1', state: 'close' }), Date.now());
  const metas: MetaEvent[] = [];
  a.devices.events.subscribe((e) => e.kind === 'meta' && metas.push(e));

  const created = await put(a, 'mh-1', { name: 'Market Sq', address: 'Market Sq 3\n10115 Berlin', latitude: 52.5, longitude: 13.4, zone: 'north', tags: ['storm'] });
  t.equal(created.statusCode, 201);
  const entry = { deviceId: 'mh-1', name: 'Market Sq', address: 'Market Sq 3\n10115 Berlin', latitude: 52.5, longitude: 13.4, zone: 'north', tags: ['storm'] };
  t.same(created.json(), entry);
  t.same((await a.inject('/registry/mh-1')).json(), entry);
  t.same((await a.inject('/devices/mh-1')).json().meta, entry, 'every device shape gains meta');

  const replaced = await put(a, 'mh-1', { name: 'Market Square' });
  t.equal(replaced.statusCode, 200);
  t.same(replaced.json(), { deviceId: 'mh-1', name: 'Market Square', address: null, latitude: null, longitude: null, zone: null, tags: [] }, 'a field left out becomes null, tags []');

  t.equal((await a.inject({ method: 'DELETE', url: '/registry/mh-1' })).statusCode, 204);
  t.equal((await a.inject('/devices/mh-1')).json().meta, null);
  const gone = await a.inject('/registry/mh-1');
  t.same([gone.statusCode, gone.json().code], [404, 'BRG_ERR_REGISTRY_NOT_FOUND']);
  t.equal((await a.inject({ method: 'DELETE', url: '/registry/mh-1' })).statusCode, 404);

  a.devices.events.flush();
  t.same(metas.map((e) => [e.seq, e.deviceId, e.meta?.name ?? null]), [[2, 'mh-1', 'Market Sq'], [3, 'mh-1', 'Market Square'], [4, 'mh-1', null]], 'one meta event per change, with a seq');
});

t.test('an invalid entry is a 400 naming the field, and changes nothing', async (t) => {
  const a = await app(t);
  await put(a, 'x', { name: 'kept' });
  const cases: [unknown, RegExp][] = [
    [{ latitude: 91, longitude: 0 }, /latitude/],
    [{ latitude: 10 }, /latitude and longitude/],
    [{ longitude: -180.5, latitude: 0 }, /longitude/],
    [{ tags: ['a|b'] }, /tags/],
    [{ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, /tags/],
    [{ name: 'n'.repeat(10_000) }, /name/],
    [{ deviceId: 'other' }, /deviceId/],
    [[1, 2], /entry/],
  ];
  for (const [body, reason] of cases) {
    const res = await put(a, 'x', body);
    t.equal(res.statusCode, 400, JSON.stringify(body).slice(0, 60));
    t.equal(res.json().code, 'BRG_ERR_INVALID_ENTRY');
    t.match(res.json().message, reason);
  }
  for (const [lat, lon] of [[-90, -180], [90, 180], [0, 0]]) t.equal((await put(a, `b${lat}`, { latitude: lat, longitude: lon })).statusCode, 201, `bounds included: ${lat}, ${lon}`);
  const notJson = await a.inject({ method: 'PUT', url: '/registry/x', headers: { 'content-type': 'text/plain' }, payload: 'name=evil' });
  t.same([notJson.statusCode, notJson.json().code], [415, 'BRG_ERR_UNSUPPORTED_MEDIA_TYPE'], 'no text/plain: the simple request a foreign form can send');
  const broken = await a.inject({ method: 'PUT', url: '/registry/x', headers: { 'content-type': 'application/json' }, payload: '{"name":' });
  t.equal(broken.statusCode, 400);
  t.equal((await a.inject('/registry/x')).json().name, 'kept', 'nothing changed');
});

t.test('hostile text is stored as text', async (t) => {
  const a = await app(t);
  const name = '<img src=x onerror=alert(1)>\u202Eevil\u200F';
  t.equal((await put(a, '<script>', { name, address: '"; DROP TABLE registry; --' })).statusCode, 201);
  const back = (await a.inject(`/registry/${encodeURIComponent('<script>')}`)).json();
  t.same([back.name, back.address], [name, '"; DROP TABLE registry; --']);
});

t.test('GET /registry pages in deviceId order, by zone and seen', async (t) => {
  const a = await app(t);
  await a.devices.accept(record({ deviceId: 'b' }), Date.now());
  for (const id of ['d', 'a', 'c', 'b']) await put(a, id, { zone: id === 'd' ? 'z2' : 'z1' });
  const first = (await a.inject('/registry?limit=2')).json();
  t.same([first.items.map((e: { deviceId: string }) => e.deviceId), first.total], [['a', 'b'], 4]);
  const next = (await a.inject(`/registry?limit=2&cursor=${first.nextCursor}`)).json();
  t.same([next.items.map((e: { deviceId: string }) => e.deviceId), next.nextCursor], [['c', 'd'], null]);
  t.same((await a.inject('/registry?zone=z2')).json().items.map((e: { deviceId: string }) => e.deviceId), ['d']);
  const unseen = (await a.inject('/registry?seen=false')).json();
  t.same([unseen.items.map((e: { deviceId: string }) => e.deviceId), unseen.total], [['a', 'c', 'd'], 3], 'registered and never seen');
  t.same((await a.inject('/stats')).json().registry, { entries: 4, neverSeen: 3 });
  t.equal((await a.inject('/registry?cursor=nonsense')).statusCode, 400);
});

t.test('GET /devices?zone=&q=', async (t) => {
  const a = await app(t);
  for (const id of ['MH-1', 'mh-2', 'x']) await a.devices.accept(record({ deviceId: id }), Date.now());
  await put(a, 'x', { name: 'Lindenstraße 4', zone: 'Mitte' });
  await put(a, 'mh-2', { address: 'Am Markt 1', zone: 'Mitte' });
  const ids = async (query: string): Promise<string[]> => (await a.inject(`/devices?${query}`)).json().items.map((d: { deviceId: string }) => d.deviceId);
  t.same(await ids('q=mh'), ['MH-1', 'mh-2'], 'ids, case-insensitive');
  t.same(await ids('q=LINDEN'), ['x'], 'names');
  t.same(await ids('q=markt'), ['mh-2'], 'addresses');
  t.same(await ids('zone=Mitte'), ['mh-2', 'x']);
  t.same(await ids('zone=Mitte&q=linden'), ['x']);
  t.equal((await a.inject('/devices?zone=Mitte&limit=1')).json().total, 2);
});

t.test('CSV import: semicolons, BOM, quotes, newlines, tags; dry run; all or nothing', async (t) => {
  const a = await app(t);
  const csv = '\uFEFFdeviceId;name;address;latitude;longitude;zone;tags;extra\n' + 'a;"Gate; north";"Line 1\nLine 2";52,5;13,4;z;x|y;ignored\n' + '\n' + 'b;"say ""hi""";;;;;;\n';
  const dry = await importFile(a, csv, 'text/csv', '?dryRun=true');
  t.same([dry.statusCode, dry.json()], [200, { created: 2, updated: 0, unchanged: 0, dryRun: true }]);
  t.equal((await a.inject('/registry')).json().total, 0, 'a dry run writes nothing');
  const done = await importFile(a, csv, 'text/csv; charset=utf-8');
  t.same(done.json(), { created: 2, updated: 0, unchanged: 0, dryRun: false });
  t.same((await a.inject('/registry/a')).json(), { deviceId: 'a', name: 'Gate; north', address: 'Line 1\nLine 2', latitude: 52.5, longitude: 13.4, zone: 'z', tags: ['x', 'y'] });
  t.equal((await a.inject('/registry/b')).json().name, 'say "hi"');

  const rows = [HEADER, ...Array.from({ length: 999 }, (_, i) => `n${i},name ${i},,${i === 1 ? '95' : '10'},20,,`)];
  const bad = await importFile(a, rows.join('\n'), 'text/csv');
  t.equal(bad.statusCode, 400);
  t.equal(bad.json().code, 'BRG_ERR_INVALID_IMPORT');
  t.same(bad.json().errors.map((e: { line: number }) => e.line), [3], 'line 3 of 1,000, the header being line 1');
  t.match(bad.json().errors[0].reason, /latitude/);
  t.equal((await a.inject('/registry')).json().total, 2, 'nothing of it was written');
  const again = await importFile(a, csv, 'text/csv');
  t.same(again.json(), { created: 0, updated: 0, unchanged: 2, dryRun: false }, 'the same file twice changes nothing');
});

t.test('JSON import, export -> import -> export byte-identical, refusals', async (t) => {
  const a = await app(t);
  const entries = [
    { deviceId: 'z\u00e9', name: 'Caf\u00e9, "quoted"', address: 'two\nlines', latitude: -33.868, longitude: 151.209, zone: 'harbour', tags: ['a', 'b c'] },
    { deviceId: 'a', name: null, address: null, latitude: null, longitude: null, zone: null, tags: [] },
  ];
  t.same((await importFile(a, JSON.stringify(entries, null, 2), 'application/json')).json(), { created: 2, updated: 0, unchanged: 0, dryRun: false });
  for (const format of ['csv', 'json']) {
    const first = await a.inject(`/registry/export?format=${format}`);
    t.equal(first.statusCode, 200);
    t.match(first.headers['content-type'], format === 'csv' ? /^text\/csv/ : /^application\/json/);
    const other = await app(t);
    t.same((await importFile(other, first.body, format === 'csv' ? 'text/csv' : 'application/json')).json().created, 2);
    const second = await other.inject(`/registry/export?format=${format}`);
    t.equal(second.body, first.body, `${format}: export -> import -> export is byte-identical`);
  }
  t.match((await a.inject('/registry/export')).body, /^deviceId,name,address,latitude,longitude,zone,tags\r\n/, 'CSV by default');

  const badJson = await importFile(a, '[\n  {"deviceId": "ok"},\n  {"deviceId": "x", "latitude": "north"}\n]', 'application/json');
  t.same([badJson.statusCode, badJson.json().errors.map((e: { line: number }) => e.line)], [400, [3]]);
  const plain = await importFile(a, HEADER, 'text/plain');
  t.same([plain.statusCode, plain.json().code], [415, 'BRG_ERR_UNSUPPORTED_MEDIA_TYPE']);
  const notUtf8 = await importFile(a, Buffer.concat([Buffer.from(`${HEADER}\nok,fine,,,,,\nbad,`), Buffer.from([0xff, 0xfe]), Buffer.from(',,,,,\n')]), 'text/csv');
  t.same([notUtf8.statusCode, notUtf8.json().errors], [400, [{ line: 3, reason: 'the file is not UTF-8 text' }]]);
  const empty = await a.inject({ method: 'POST', url: '/registry/import' });
  t.equal(empty.statusCode, 415);
});

t.test('a file over REGISTRY_IMPORT_MAX_BYTES is refused before it is read', async (t) => {
  const a = await app(t, { REGISTRY_IMPORT_MAX_BYTES: '2048' });
  const big = `${HEADER}\n${'x,'.repeat(2000)}\n`;
  const res = await importFile(a, big, 'text/csv');
  t.same([res.statusCode, res.json().code], [413, 'BRG_ERR_IMPORT_TOO_LARGE']);
  t.equal((await importFile(a, `${HEADER}\na,,,,,,\n`, 'text/csv')).statusCode, 200, 'a small one passes');
});

t.test('meta events on /ws-facing wire forms, and a registered device takes its entry when it first reports', async (t) => {
  const a = await app(t);
  await put(a, 'early', { zone: 'z', latitude: 1, longitude: 2 });
  const outcome = await a.devices.accept(record({ deviceId: 'early' }), Date.now());
  t.equal(outcome.kind === 'update' && outcome.event.device.meta?.zone, 'z');
});
