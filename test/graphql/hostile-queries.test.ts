import t from 'tap';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { LogCapture } from '../helpers/log.js';
import { record } from '../helpers/records.js';
import { SCHEMA_ALIASES, aliases, codes, countReads, get, gql, graphiqlQueries, post, rawGqlWs, seedBig, ts } from './hostile.js';

// Issue 13, found by an attacker-minded probe: (1) one GraphQL request held the event loop for
// seconds (introspection and aliases of non-list fields were free), and its answer had no size
// bound; (2) malformed requests answered 500 with an error-level stack trace. SPEC §5.

const MiB = 1024 * 1024;

t.test('finding 1: 600 aliases of __schema are refused before they run', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  const started = performance.now();
  const res = await gql(app, SCHEMA_ALIASES);
  t.equal(res.status, 400);
  t.same(new Set(codes(res)), new Set(['BRG_ERR_GQL_COST']));
  t.ok(res.body.errors?.some((e) => /could return \d+ fields, over the limit of 30000/.test(e.message)), 'the fields are counted');
  t.equal(res.body.data, null);
  t.ok(res.bytes < 1024, `a short answer (${res.bytes} bytes), not 19.6 MB`);
  t.ok(performance.now() - started < 2000, 'and a quick one');
});

t.test('every field counts: __schema, __type, __typename, aliases of scalar and object fields, fragments, inline fragments', async (t) => {
  const app = await buildTestApp(t, testConfig({ GRAPHQL_MAX_FIELDS: '1000' }), { connectMqtt: false });
  await app.ready();
  const reads = countReads(app);
  const refused = async (what: string, query: string): Promise<void> => {
    const before = reads.reads;
    const res = await gql(app, query);
    t.equal(res.status, 400, what);
    t.same(new Set(codes(res)), new Set(['BRG_ERR_GQL_COST']), `${what}: ${res.body.errors?.[0]?.message}`);
    t.equal(reads.reads, before, `${what}: nothing was executed`);
  };
  const passes = async (what: string, query: string): Promise<void> => {
    const res = await gql(app, query);
    t.equal(res.status, 200, `${what}: ${JSON.stringify(res.body.errors ?? null)}`);
  };
  // aliases of a scalar field: each is a field of the answer
  await passes('999 aliases of a scalar and their object', `{ stats { ${aliases(999, 'devices')} } }`);
  await refused('1000 aliases of a scalar and their object', `{ stats { ${aliases(1000, 'devices')} } }`);
  // aliases of an object field: the field and its own fields
  await passes('500 aliases of an object', `{ ${aliases(500, 'stats { devices }')} }`);
  await refused('501 aliases of an object', `{ ${aliases(501, 'stats { devices }')} } `);
  const device = 'fragment D on Device { deviceId appId state previousState batteryLevel imei iccid csq timestamp lastSeenAt lastChangedAt receivedAt silent messages }';
  await passes('66 aliases of device', `{ ${aliases(66, 'device(deviceId: "a") { ...D }')} } ${device}`);
  await refused('67 aliases of device', `{ ${aliases(67, 'device(deviceId: "a") { ...D }')} } ${device}`);
  await passes('1000 __typename', `{ ${aliases(1000, '__typename')} }`);
  await refused('1001 __typename', `{ ${aliases(1001, '__typename')} }`);
  // introspection: __schema's lists count the schema's sizes, __type's too
  await refused('__schema', `{ ${aliases(20, '__schema { types { name fields { name } } }')} }`);
  await refused('__type', `{ ${aliases(20, '__type(name: "Device") { fields { name type { name fields { name } } } }')} }`);
  await passes('one __type', '{ __type(name: "Device") { fields { name type { name } } } }');
  // fragments and inline fragments count where they are spread, as often as they are
  await refused('a fragment', `{ ${aliases(40, '__schema { ...T }')} } fragment T on __Schema { types { name kind } }`);
  await refused('an inline fragment', `{ ${aliases(40, '__schema { ... on __Schema { types { name kind } } }')} }`);
  await refused('inline fragments without a type', `{ ... { ${aliases(501, '__typename')} } ... { ${aliases(500, '__typename', 'b')} } }`);
  await refused('a fragment on Device in a page', '{ devices(limit: 100) { items { ...D } } } fragment D on Device { deviceId state batteryLevel imei iccid csq timestamp lastSeenAt receivedAt silent }');
  await passes('the same with a page of 50', '{ devices(limit: 50) { items { ...D } } } fragment D on Device { deviceId state batteryLevel imei iccid csq timestamp lastSeenAt receivedAt silent }');
});

t.test("GraphiQL's introspection queries pass, over POST, GET and graphql-ws", async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
  t.teardown(() => client.dispose());
  for (const { name, query, operationName } of graphiqlQueries()) {
    const posted = await gql(app, query, operationName ? { operationName } : {});
    t.equal(posted.status, 200, `${name}: ${JSON.stringify(posted.body.errors ?? null)}`);
    t.ok((posted.body.data?.__schema as { types: unknown[] }).types.length > 10, `${name}: the schema`);
    const fetched = await get(app, { query, ...(operationName ? { operationName } : {}) });
    t.equal(fetched.status, 200, `${name} with GET`);
    const overWs = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let result: Record<string, unknown> = {};
      client.subscribe({ query, ...(operationName ? { operationName } : {}) }, {
        next: (r) => {
          result = r as Record<string, unknown>;
        },
        error: reject,
        complete: () => resolve(result),
      });
    });
    t.notOk(overWs.errors, `${name} over graphql-ws`);
  }
});

t.test('finding 1 without introspection: aliases of 64 KB of attributes are stopped at the byte budget', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await seedBig(app);
  const query = `{ ${aliases(300, 'device(deviceId: "big") { attributes }')} }`;
  const started = performance.now();
  const res = await gql(app, query);
  t.equal(res.status, 400);
  t.same(codes(res), ['BRG_ERR_GQL_TOO_LARGE']);
  t.match(res.body.errors?.[0]?.message, /over the limit of 4194304 bytes \(GRAPHQL_MAX_RESPONSE_BYTES\)/);
  t.equal(res.body.data, null);
  t.ok(res.bytes < 1024, `the error is short (${res.bytes} bytes), not 19.7 MB`);
  t.ok(performance.now() - started < 2000, 'and quick');
  const viaGet = await get(app, { query });
  t.same([viaGet.status, codes(viaGet)], [400, ['BRG_ERR_GQL_TOO_LARGE']], 'GET too');

  const fits = await gql(app, `{ ${aliases(60, 'device(deviceId: "big") { attributes }')} }`);
  t.equal(fits.status, 200, '60 copies (3.9 MiB) fit');
  t.ok(fits.bytes <= 4 * MiB && fits.bytes > 3.5 * MiB, `${fits.bytes} bytes`);
  const attributes = (fits.body.data!.a59 as { attributes: Record<string, unknown> }).attributes;
  t.equal(attributes.DeviceID, 'big', 'whole');
});

t.test('GRAPHQL_MAX_RESPONSE_BYTES is the bound of every answer, UTF-8 bytes counted', async (t) => {
  const app = await buildTestApp(t, testConfig({ GRAPHQL_MAX_RESPONSE_BYTES: '20000' }), { connectMqtt: false });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'é', timestamp: ts, attributes: { note: 'é'.repeat(1000) } }), Date.now());
  const one = await gql(app, '{ device(deviceId: "é") { attributes } }');
  t.equal(one.status, 200);
  const chars = JSON.stringify(one.body).length;
  t.ok(one.bytes > chars, 'more bytes than characters');
  // each copy: about 1,040 characters and 2,040 bytes: 10 copies are under 20,000 characters, over 20,000 bytes
  const ten = await gql(app, `{ ${aliases(10, 'device(deviceId: "é") { attributes }')} }`);
  t.same([ten.status, codes(ten)], [400, ['BRG_ERR_GQL_TOO_LARGE']]);
  const nine = await gql(app, `{ ${aliases(9, 'device(deviceId: "é") { attributes }')} }`);
  t.equal(nine.status, 200);
  t.ok(nine.bytes <= 20_000, `${nine.bytes} bytes`);
  // a long alias is bytes of the answer too, repeated on every item
  for (let i = 0; i < 30; i++) await app.devices.accept(record({ deviceId: `d${i}`, timestamp: ts }), Date.now());
  const long = await gql(app, `{ devices(limit: 30) { items { ${'x'.repeat(1000)}: deviceId } } }`);
  t.same([long.status, codes(long)], [400, ['BRG_ERR_GQL_TOO_LARGE']], 'a 1,000-character alias on 30 items');
});

t.test('graphql-ws: queries and each subscription event have the same bounds', async (t) => {
  const app = await buildTestApp(t, testConfig({ GRAPHQL_MAX_RESPONSE_BYTES: '100000' }), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  await seedBig(app);
  const ws = await rawGqlWs(t, port);
  const subscribe = (id: string, query: string, variables?: unknown) =>
    ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query, ...(variables === undefined ? {} : { variables }) } }));

  subscribe('cost', SCHEMA_ALIASES);
  const cost = (await ws.answer('cost')) as { type: string; payload: { extensions?: { code?: string } }[] };
  t.equal(cost.type, 'error');
  t.equal(cost.payload[0]?.extensions?.code, 'BRG_ERR_GQL_COST');

  subscribe('big', `{ ${aliases(3, 'device(deviceId: "big") { attributes }')} }`);
  const big = (await ws.answer('big')) as { type: string; payload: { data: unknown; errors: { extensions: { code: string } }[] } };
  t.equal(big.type, 'next');
  t.equal(big.payload.data, null);
  t.equal(big.payload.errors[0]?.extensions.code, 'BRG_ERR_GQL_TOO_LARGE');

  subscribe('events', `subscription { deviceUpdated { ${aliases(3, 'device { attributes }')} } }`);
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (app.subscriptions.size === 1) resolve();
      else setImmediate(check);
    };
    check();
  });
  await seedBig(app, 'big2');
  const event = (await ws.answer('events')) as { payload: { data: unknown; errors: { extensions: { code: string } }[] } };
  t.equal(event.payload.errors[0]?.extensions.code, 'BRG_ERR_GQL_TOO_LARGE', 'an event over the budget is an error');
  await app.devices.accept(record({ deviceId: 'small', timestamp: ts }), Date.now());
  const small = (await ws.answer('events')) as { payload: { data: { deviceUpdated: { a0: unknown } } } };
  t.same(small.payload.data.deviceUpdated.a0, { attributes: { DeviceID: 'small', State: 'close', Timestamp: ts } }, 'the subscription goes on');
});

t.test('finding 2: a request that is no GraphQL request is a 400 in GraphQL shape, logged below error level', async (t) => {
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'debug' }), { connectMqtt: false, logStream: log });
  await app.ready();
  const query = '{ stats { devices } }';
  const bodies: [string, string][] = [
    ['variables: a number', JSON.stringify({ query, variables: 123 })],
    ['variables: true', JSON.stringify({ query, variables: true })],
    ['variables: false', JSON.stringify({ query, variables: false })],
    ['variables: 0', JSON.stringify({ query, variables: 0 })],
    ['variables: a string that is JSON of a number', JSON.stringify({ query, variables: '7' })],
    ['variables: a string that is JSON of a string', JSON.stringify({ query, variables: '"x"' })],
    ['variables: a string that is JSON of an array', JSON.stringify({ query, variables: '[1]' })],
    ['variables: a string that is JSON of true', JSON.stringify({ query, variables: 'true' })],
    ['variables: a string that is no JSON', JSON.stringify({ query, variables: 'nope' })],
    ['variables: an array', JSON.stringify({ query, variables: [] })],
    ['variables: an array of objects', JSON.stringify({ query, variables: [{ a: 1 }] })],
    ['a body of null', 'null'],
    ['a body of a number', '7'],
    ['a body of a string', '"{ stats { devices } }"'],
    ['a body of true', 'true'],
    ['a body of an empty array', '[]'],
    ['a batch', JSON.stringify([{ query }])],
    ['operationName: a number', JSON.stringify({ query, operationName: 5 })],
    ['operationName: an object', JSON.stringify({ query, operationName: {} })],
    ['operationName: an array', JSON.stringify({ query, operationName: ['a'] })],
    ['operationName: true', JSON.stringify({ query, operationName: true })],
    ['extensions: a string', JSON.stringify({ query, extensions: 'x' })],
    ['extensions: an array', JSON.stringify({ query, extensions: [] })],
    ['query: a number', JSON.stringify({ query: 5 })],
    ['query: null', JSON.stringify({ query: null })],
    ['query: an object', JSON.stringify({ query: { a: 1 } })],
    ['query: empty', JSON.stringify({ query: '  ' })],
    ['no query', JSON.stringify({ variables: {} })],
    ['query: over 64 KiB', JSON.stringify({ query: `{ stats { devices } } #${'x'.repeat(65_536)}` })],
    ['not JSON', '{"query":'],
  ];
  for (const [what, payload] of bodies) {
    const res = await post(app, payload);
    t.equal(res.status, 400, what);
    t.equal(res.body.data, null, `${what}: data is null`);
    t.ok(Array.isArray(res.body.errors) && typeof res.body.errors[0]?.message === 'string', `${what}: errors[0].message`);
    t.notMatch(JSON.stringify(res.body), /internal|stack|at \//i, `${what}: nothing internal`);
  }
  const gets: [string, Record<string, string>][] = [
    ['variables=7', { query, variables: '7' }],
    ['variables=true', { query, variables: 'true' }],
    ['variables="x"', { query, variables: '"x"' }],
    ['variables=[1]', { query, variables: '[1]' }],
    ['variables=nope', { query, variables: 'nope' }],
    ['no query', { variables: '{}' }],
  ];
  for (const [what, params] of gets) {
    const res = await get(app, params);
    t.equal(res.status, 400, `GET ${what}`);
    t.equal(res.body.data, null);
    t.type(res.body.errors?.[0]?.message, 'string');
  }
  for (const url of [`/graphql?query=${encodeURIComponent(query)}&operationName=a&operationName=b`, `/graphql?query=${encodeURIComponent(query)}&variables=1&variables=2`, '/graphql?query=a&query=b']) {
    const res = await app.inject({ url });
    t.equal(res.statusCode, 400, `a parameter given twice: ${url}`);
    t.equal((res.json() as { data: unknown }).data, null);
  }
  t.equal((await get(app, { query, variables: 'null' })).status, 200, 'variables=null is no variables');
  t.equal((await get(app, { query, variables: '' })).status, 200, 'nor is variables=');
  t.equal((await gql(app, query, { variables: null, operationName: null, extensions: { persistedQuery: null } })).status, 200, 'null members and extensions are fine');
  t.equal((await gql(app, query, { variables: '{}' })).status, 200, 'variables as JSON text of an object');
  t.same(
    (await gql(app, 'query ($d: ID!) { device(deviceId: $d) { deviceId } }', { variables: { d: { x: 1 } } })).status,
    400,
    'a variable of the wrong type',
  );
  t.equal((await gql(app, query, { operationName: 'Nope' })).status, 400, 'an operationName the document does not have');
  t.same(log.lines.filter((l) => l.level >= 50), [], 'nothing at error level');
});

t.test('finding 2 over graphql-ws: bad subscribe payloads close with 4400 or get an error, nothing logged at error level', async (t) => {
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'debug' }), { connectMqtt: false, logStream: log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const query = '{ stats { devices } }';
  const closing: [string, Record<string, unknown>][] = [
    ['variables: a number', { query, variables: 7 }],
    ['variables: true', { query, variables: true }],
    ['variables: a string', { query, variables: '{}' }],
    ['variables: an array', { query, variables: [] }],
    ['operationName: a number', { query, operationName: 5 }],
    ['extensions: a string', { query, extensions: 'x' }],
    ['extensions: an array', { query, extensions: [1] }],
    ['query: a number', { query: 5 }],
  ];
  for (const [what, payload] of closing) {
    const ws = await rawGqlWs(t, port);
    ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload }));
    const closed = (await ws.next(() => false, what)) as { closed: { code: number; reason: string } };
    t.equal(closed.closed.code, 4400, `${what}: ${closed.closed.reason}`);
  }
  const ws = await rawGqlWs(t, port);
  const answers: [string, Record<string, unknown>, RegExp][] = [
    ['a variable of the wrong type', { query: 'query ($d: ID!) { device(deviceId: $d) { deviceId } }', variables: { d: [1, 2] } }, /Variable "\$d"/],
    ['a missing variable', { query: 'subscription ($d: ID!) { deviceSilent(deviceId: $d) { deviceId } }', variables: {} }, /Variable "\$d"/],
    ['an unknown operationName', { query, operationName: 'Nope' }, /no operation named "Nope"/],
    ['two operations and no name', { query: `query A ${query} query B ${query}` }, /several operations/],
    ['a syntax error', { query: '{ stats {' }, /Syntax Error/],
    ['null members and extensions', { query, variables: null, operationName: null, extensions: { a: 1 } }, /^$/],
  ];
  for (const [i, [what, payload, message]] of answers.entries()) {
    ws.send(JSON.stringify({ id: `q${i}`, type: 'subscribe', payload }));
    const answer = (await ws.answer(`q${i}`)) as { type: string; payload: { message: string }[] | { data: unknown } };
    if (message.source === '^$') {
      t.equal(answer.type, 'next', what);
    } else {
      t.equal(answer.type, 'error', what);
      t.match((answer.payload as { message: string }[])[0]?.message, message, what);
    }
  }
  t.equal(ws.socket.readyState, WebSocket.OPEN, 'the connection stays');
  t.same(log.lines.filter((l) => l.level >= 50), [], 'nothing at error level');
});
