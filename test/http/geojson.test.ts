import { createRequire } from 'node:module';
import t from 'tap';
import { Ajv } from 'ajv';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';

// SPEC §11: GET /devices.geojson is RFC 7946 GeoJSON, as the GeoJSON project's own JSON schema
// (the geojson-schema package) holds it, with [longitude, latitude] positions.

const require = createRequire(import.meta.url);
const validate = new Ajv({ strict: false, allErrors: true }).compile(require('geojson-schema/FeatureCollection.json'));

interface Feature {
  id: string;
  geometry: { type: string; coordinates: number[] };
  properties: Record<string, unknown>;
}

t.test('located devices as a FeatureCollection, [lon, lat], with their state; filters', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'sydney', state: 'open', batteryLevel: 3100 }), Date.now());
  await app.devices.accept(record({ deviceId: 'nowhere', state: 'open' }), Date.now());
  const put = (id: string, body: object) => app.inject({ method: 'PUT', url: `/registry/${id}`, payload: body });
  // latitude and longitude differ in sign: a swapped pair would show in the other hemisphere
  await put('sydney', { name: 'Harbour <b>1</b>', latitude: -33.8568, longitude: 151.2153, zone: 'harbour', tags: ['x'] });
  await put('nowhere', { name: 'not located' });
  await put('planned', { latitude: 52.5, longitude: -13.4, zone: 'berlin' });

  const res = await app.inject('/devices.geojson');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/geo\+json/);
  const body = res.json();
  t.ok(validate(body), 'valid GeoJSON (RFC 7946)', { errors: validate.errors });
  const features = body.features as Feature[];
  t.same(features.map((f) => f.id), ['planned', 'sydney'], 'located devices only, in deviceId order');
  t.same(features[1]!.geometry, { type: 'Point', coordinates: [151.2153, -33.8568] }, '[longitude, latitude]');
  t.same(features[1]!.properties, {
    deviceId: 'sydney',
    name: 'Harbour <b>1</b>',
    address: null,
    zone: 'harbour',
    tags: ['x'],
    seen: true,
    state: 'open',
    silent: false,
    batteryLevel: 3100,
    lastSeenAt: features[1]!.properties.lastSeenAt,
  });
  t.same([features[0]!.properties.seen, features[0]!.properties.state], [false, null], 'registered, never heard from');

  const ids = async (query: string): Promise<string[]> => ((await app.inject(`/devices.geojson?${query}`)).json().features as Feature[]).map((f) => f.id);
  t.same(await ids('state=open'), ['sydney']);
  t.same(await ids('zone=berlin'), ['planned']);
  t.same(await ids('q=HARBOUR'), ['sydney']);
  t.same(await ids('silent=false'), ['sydney']);
  t.same(await ids('state=close'), [], 'an empty collection is still one');
  t.ok(validate((await app.inject('/devices.geojson?state=close')).json()));
});

t.test('a large registry streams out page by page and stays valid', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  const entries = Array.from({ length: 2500 }, (_, i) => ({
    deviceId: `d${String(i).padStart(5, '0')}`, name: null, address: null, latitude: (i % 180) - 89.5, longitude: (i % 360) - 179.5, zone: null, tags: [],
  }));
  await app.devices.importEntries(entries);
  const body = (await app.inject('/devices.geojson')).json();
  t.equal(body.features.length, 2500, 'every page');
  t.ok(validate(body));
});
