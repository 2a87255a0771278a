import t from 'tap';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { getIntrospectionQuery } from 'graphql';
import { buildTestApp, testConfig, withTimeout } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { aliases, codes, gql, seedBig, staticCount, ts } from './hostile.js';

// Issue 13: four clients repeating one hostile query pushed /healthz to 6.9 s and MQTT by 8.4 s.
// Now, while several clients send the worst queries the limits accept, no turn of the event loop
// takes more than LOOP_BOUND_MS, and /healthz keeps answering. The clients run in a worker thread,
// so that their own work (sending, reading megabytes) is not measured as the server's.
//
// The bound: the worst accepted query executes in about 30 ms here (GRAPHQL_MAX_FIELDS 30,000 at
// about 1 µs a field) and writes at most 4 MiB, and executions take turns (turns.ts), so a turn
// of the loop holds one of them: alone, the longest turn measured 38 to 114 ms. But tap runs test
// files in parallel on a 2-core CI machine, and a process waiting for a core is measured as a late
// loop too (a run of the whole suite saw over 200 ms): the bound is set for the regression it
// guards against (one request held the loop for 3.25 s, /healthz waited 6.9 s), not as a benchmark.

const LOOP_BOUND_MS = 750;
const HEALTHZ_BOUND_MS = 2000;
const CLIENTS = 4;
const ROUNDS = 3;

const ALL_DEVICE_FIELDS = 'deviceId appId state previousState batteryLevel imei iccid csq timestamp lastSeenAt lastChangedAt receivedAt silent messages';

/** The worst documents the default limits accept, each at its limit (checked below). */
function worstQueries(schema: Parameters<typeof staticCount>[0]): { name: string; query: string }[] {
  const introspection = getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, schemaDescription: true, specifiedByUrl: true, directiveIsRepeatable: true });
  const fragments = introspection.slice(introspection.indexOf('fragment FullType'));
  const schemaBody = 'fragment S on __Schema { description queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } } }';
  /** As many aliases of `selection` as GRAPHQL_MAX_FIELDS (30,000) lets through. */
  const fill = (selection: string, rest: string): string => {
    const one = staticCount(schema, `{ a0: ${selection} } ${rest}`).fields;
    return `{ ${aliases(Math.floor(30_000 / one), selection)} } ${rest}`;
  };
  const typenames = 29;
  return [
    { name: "GraphiQL's introspection, repeated", query: fill('__schema { ...S }', `${schemaBody} ${fragments}`) },
    { name: '__type with every field of its type', query: fill('__type(name: "__Type") { ...FullType }', fragments) },
    { name: 'two pages of 1,000 devices, every field', query: `{ a: devices(limit: 1000) { items { ${ALL_DEVICE_FIELDS} attributes } } b: devices(limit: 1000) { items { ${ALL_DEVICE_FIELDS} } } }` },
    { name: '__typename 29 times on 1,000 devices', query: `{ devices(limit: 1000) { items { ${aliases(typenames, '__typename')} } } }` },
    { name: '62 aliases of 64 KB of attributes (4 MiB)', query: `{ ${aliases(62, 'device(deviceId: "big") { attributes }')} }` },
    { name: '300 aliases of 64 KB of attributes (over the budget)', query: `{ ${aliases(300, 'device(deviceId: "big") { attributes }')} }` },
    { name: '100 copies of one response name (9,900 pairs to merge)', query: `{ ${'a: stats { devices } '.repeat(100)} }` },
    { name: '1,600 aliases: a document at the token limit', query: `{ stats { ${aliases(1600, 'devices')} } }` },
  ];
}

// The clients: plain fetch in a worker thread, answers read as bytes and dropped.
const CLIENT_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, queries, clients, rounds } = workerData;
const statuses = {};
const healthz = [];
let running = true;
async function client(i) {
  for (let r = 0; r < rounds; r++) {
    for (let q = 0; q < queries.length; q++) {
      const query = queries[(q + i) % queries.length];
      const res = await fetch(url + '/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] || 0) + 1;
    }
  }
}
async function health() {
  while (running) {
    const started = performance.now();
    const res = await fetch(url + '/healthz');
    await res.arrayBuffer();
    healthz.push({ status: res.status, ms: performance.now() - started });
  }
}
const checking = health();
Promise.all(Array.from({ length: clients }, (_, i) => client(i)))
  .then(async () => { running = false; await checking; parentPort.postMessage({ statuses, healthz }); })
  .catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
`;

t.test(`while ${CLIENTS} clients send the worst accepted queries, no turn of the loop takes ${LOOP_BOUND_MS} ms and /healthz answers`, async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  // 1,000 devices with about 1.5 KB of attributes each, and one with 64 KB
  const attributes = (id: string) => ({ DeviceID: id, State: 'open', Timestamp: ts, note: 'n'.repeat(1200), extra: Array.from({ length: 20 }, (_, i) => i) });
  for (let i = 0; i < 1000; i++) {
    const deviceId = `d${String(i).padStart(4, '0')}`;
    await app.devices.accept(record({ deviceId, timestamp: ts, attributes: attributes(deviceId) }), Date.now());
  }
  await seedBig(app);

  const queries = worstQueries(app.graphql.schema);
  for (const { name, query } of queries) {
    const started = performance.now();
    const res = await gql(app, query);
    const accepted = res.status === 200 || codes(res).includes('BRG_ERR_GQL_TOO_LARGE');
    t.ok(accepted, `accepted: ${name} (${res.status}, ${res.bytes} bytes, ${(performance.now() - started).toFixed(0)} ms alone)`, {
      errors: res.body.errors?.slice(0, 2),
    });
  }

  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const worker = new Worker(CLIENT_CODE, {
    eval: true,
    workerData: { url: `http://127.0.0.1:${port}`, queries: queries.map((q) => q.query), clients: CLIENTS, rounds: ROUNDS },
  });
  t.teardown(() => worker.terminate());
  const report = await withTimeout(
    new Promise<{ statuses?: Record<string, number>; healthz?: { status: number; ms: number }[]; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }),
    90_000,
    () => 'the clients to finish',
  );
  delay.disable();
  t.equal(report.error, undefined, report.error ?? 'the clients ran without an error');
  const maxMs = delay.max / 1e6;
  t.comment(`event loop delay: max ${maxMs.toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, mean ${(delay.mean / 1e6).toFixed(1)} ms`);
  t.ok(maxMs < LOOP_BOUND_MS, `no turn of the loop over ${LOOP_BOUND_MS} ms: the longest took ${maxMs.toFixed(1)} ms`);

  const sent = Object.values(report.statuses ?? {}).reduce((a, b) => a + b, 0);
  t.equal(sent, CLIENTS * ROUNDS * queries.length, 'every query was answered');
  t.same(Object.keys(report.statuses ?? {}).sort(), ['200', '400'], 'with its answer or the budget error');
  const healthz = report.healthz ?? [];
  const slowest = Math.max(...healthz.map((h) => h.ms));
  t.comment(`/healthz: ${healthz.length} answers, the slowest in ${slowest.toFixed(1)} ms`);
  t.ok(healthz.length > 10, `/healthz kept answering (${healthz.length} times)`);
  t.ok(healthz.every((h) => h.status === 200), 'with 200');
  t.ok(slowest < HEALTHZ_BOUND_MS, `within ${HEALTHZ_BOUND_MS} ms each: the slowest took ${slowest.toFixed(1)} ms`);
});
