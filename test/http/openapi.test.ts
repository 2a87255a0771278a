import t from 'tap';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { RouteOptions } from 'fastify';
import { loadOpenApi, toFastifyPath } from '../../src/openapi.js';
import * as errors from '../../src/errors.js';
import { record } from '../helpers/records.js';
import { buildTestApp, testConfig } from '../helpers/app.js';

// openapi.yaml and the routes must agree: every route is documented, every operation is served,
// and real responses match the documented schemas.

const doc = loadOpenApi();

t.test('every route is in openapi.yaml and every operation is a route', async (t) => {
  const routes: string[] = [];
  const app = await buildTestApp(t, testConfig(), {
    connectMqtt: false,
    onRoute: (route: RouteOptions) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        // HEAD twins; the UIs' assets
        if (method === 'HEAD' || /^\/(docs|graphiql|dashboard)(\/|$)/.test(route.url)) continue;
        routes.push(`${method} ${route.url}`);
      }
    },
  });
  await app.ready();
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((method) => `${method.toUpperCase()} ${toFastifyPath(path)}`),
  );
  t.same([...routes].sort(), [...documented].sort());
});

t.test('responses match the documented schemas', async (t) => {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema(doc, 'openapi.json');
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'a', batteryLevel: null }), Date.now());
  await app.devices.accept(record({ deviceId: 'a', timestamp: 1, state: 'old' }), Date.now());
  await app.devices.setMeta({ deviceId: 'a', name: 'A', address: null, latitude: -1.5, longitude: 2.5, zone: 'z', tags: ['t'] });
  await app.devices.setMeta({ deviceId: 'never', name: null, address: null, latitude: 1, longitude: 2, zone: null, tags: [] });
  // alarms of every type, one with a registry entry as meta, one acknowledged and one cleared
  await app.devices.accept(record({ deviceId: 'a', state: 'open', batteryLevel: 500, timestamp: 1_700_000_100 }), Date.now());
  await app.devices.accept(record({ deviceId: 'b', state: 'offline' }), Date.now());
  const alarms = (await app.inject('/alarms')).json().items as { alarmId: string; type: string }[];
  const alarmOf = (type: string): string => alarms.find((x) => x.type === type)!.alarmId;
  const cases: [string, number, string][] = [
    ['/registry', 200, 'RegistryList'],
    ['/registry/a', 200, 'RegistryEntry'],
    ['/registry/zz', 404, 'Error'],
    ['/registry?cursor=x', 400, 'Error'],
    ['/devices.geojson', 200, 'FeatureCollection'],
    ['/devices', 200, 'DeviceList'],
    ['/devices?limit=0', 400, 'Error'],
    ['/devices/a', 200, 'Device'],
    ['/devices/zz', 404, 'Error'],
    ['/devices/a/history', 200, 'History'],
    ['/alarms', 200, 'AlarmList'],
    ['/alarms?limit=1', 200, 'AlarmList'],
    ['/alarms?type=flood', 400, 'Error'],
    ['/alarms?cursor=x', 400, 'Error'],
    [`/alarms/${alarmOf('cover_open')}`, 200, 'Alarm'],
    ['/alarms/zz', 404, 'Error'],
    ['/devices/a/alarms', 200, 'DeviceAlarms'],
    ['/devices/zz/alarms', 404, 'Error'],
    ['/stats', 200, 'Stats'],
    ['/rejections', 200, 'Rejections'],
    ['/healthz', 200, 'Health'],
    ['/readyz', 503, 'Readiness'],
  ];
  const writes: [string, unknown, number, string][] = [
    [`/alarms/${alarmOf('battery_low')}/ack`, { note: 'n' }, 200, 'Alarm'],
    [`/alarms/${alarmOf('silent')}/clear`, undefined, 200, 'Alarm'],
    [`/alarms/${alarmOf('battery_low')}/ack`, { note: 'n'.repeat(1001) }, 400, 'Error'],
    ['/alarms/zz/ack', {}, 404, 'Error'],
    ['/alarms/zz/clear', undefined, 404, 'Error'],
  ];
  for (const [url, payload, status, schema] of writes) {
    const res = await app.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }) });
    t.equal(res.statusCode, status, `POST ${url}`);
    const validate = ajv.getSchema(`openapi.json#/components/schemas/${schema}`)!;
    t.ok(validate(res.json()), `POST ${url} is a ${schema}`, { errors: validate.errors });
  }
  const form = await app.inject({ method: 'POST', url: '/alarms/zz/ack', headers: { 'content-type': 'text/plain' }, payload: 'x' });
  t.equal(form.statusCode, 415);
  t.ok(ajv.getSchema('openapi.json#/components/schemas/Error')!(form.json()), 'a 415 is an Error');
  // after the writes: the /stats and /alarms shapes with acknowledged and cleared alarms
  cases.push(['/stats', 200, 'Stats'], ['/alarms?status=cleared', 200, 'AlarmList'], ['/devices/b/alarms', 200, 'DeviceAlarms']);
  for (const [url, status, schema] of cases) {
    const res = await app.inject(url);
    t.equal(res.statusCode, status, url);
    const validate = ajv.getSchema(`openapi.json#/components/schemas/${schema}`)!;
    t.ok(validate(res.json()), `${url} is a ${schema}`, { errors: validate.errors });
  }
});

t.test('each documented error code exists, and each error is documented', async (t) => {
  const documented = new Set<string>();
  for (const ops of Object.values(doc.paths)) {
    for (const op of Object.values(ops)) {
      for (const entry of Object.values(op.responses) as { $ref?: string; 'x-error-codes'?: string[] }[]) {
        const response = entry.$ref ? (doc.components as Record<string, Record<string, typeof entry>>).responses![entry.$ref.split('/').pop()!]! : entry;
        for (const code of response['x-error-codes'] ?? []) documented.add(code);
      }
    }
  }
  const defined = new Set(Object.keys(errors));
  for (const code of documented) {
    t.ok(code.startsWith('FST_ERR_') || defined.has(code), `${code} is defined in src/errors.ts`);
  }
  for (const [key, Err] of Object.entries(errors)) {
    const err = new Err('x', 'y');
    t.equal(err.code, key, `${key}: key and code agree`);
    if (key !== 'BRG_ERR_INTERNAL' && key !== 'BRG_ERR_ROUTE_NOT_FOUND') t.ok(documented.has(key), `${key} is documented`);
  }
});
