import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { buildTestApp, testConfig, until, withTimeout } from '../helpers/app.js';
import { record } from '../helpers/records.js';

// SPEC §11 GraphQL: Device.meta, Query.registry, devices(zone:, q:), the two mutations, their
// write check (SPEC §9: API_KEYS writes, API_READ_KEYS reads only) over POST and graphql-ws, the
// meta events of deviceUpdated, and the bounds of issue 13 over the registry and mutations.

const ts = Math.floor(Date.now() / 1000);
const WRITER = 'writer-key-0123456789';
const READER = 'reader-key-0123456789';

interface GqlError {
  message: string;
  path?: string[];
  extensions?: { code?: string };
}
interface Answer {
  status: number;
  data: Record<string, unknown> | null | undefined;
  errors: GqlError[] | undefined;
}

async function gql(app: FastifyInstance, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await app.inject({ method: 'POST', url: '/graphql', headers, payload: { query, variables } });
  const body = res.json() as { data?: Record<string, unknown> | null; errors?: GqlError[] };
  return { status: res.statusCode, data: body.data, errors: body.errors };
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

const SET = 'mutation ($id: ID!, $meta: RegistryEntryInput!) { setDeviceMeta(deviceId: $id, meta: $meta) { deviceId name address latitude longitude zone tags } }';
const DELETE = 'mutation ($id: ID!) { deleteDeviceMeta(deviceId: $id) }';
const ENTRY = '{ deviceId name address latitude longitude zone tags }';

function entry(deviceId: string, fields: Record<string, unknown> = {}) {
  return { deviceId, name: null, address: null, latitude: null, longitude: null, zone: null, tags: [], ...fields };
}

async function setMeta(app: FastifyInstance, deviceId: string, meta: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Answer> {
  return gql(app, SET, { id: deviceId, meta }, headers);
}

async function registryIds(app: FastifyInstance, args = '', headers: Record<string, string> = {}): Promise<{ ids: string[]; total: number; nextCursor: string | null }> {
  const answer = await gql(app, `{ registry${args} { total nextCursor items { deviceId } } }`, undefined, headers);
  const page = answer.data?.registry as { total: number; nextCursor: string | null; items: { deviceId: string }[] };
  return { ids: page.items.map((i) => i.deviceId), total: page.total, nextCursor: page.nextCursor };
}

function wsClient(t: Test, url: string, connectionParams?: Record<string, unknown>): Client {
  const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true, connectionParams });
  t.teardown(() => client.dispose());
  return client;
}

/** One operation over the socket (a query or a mutation): its one result. */
function once(client: Client, query: string, variables?: Record<string, unknown>): Promise<Record<string, unknown>> {
  return withTimeout(
    new Promise((resolve, reject) => {
      let result: Record<string, unknown> | undefined;
      client.subscribe(
        { query, variables },
        {
          next: (r) => {
            result = r as Record<string, unknown>;
          },
          error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
          complete: () => (result === undefined ? reject(new Error('completed without a result')) : resolve(result)),
        },
      );
    }),
    10_000,
    () => `the answer to ${query.slice(0, 60)}`,
  );
}

t.test('Device.meta, setDeviceMeta, registry with filters and pages, devices(zone:, q:), deleteDeviceMeta', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  for (const [id, state] of [['a', 'open'], ['B-7', 'close'], ['c', 'open']] as const) {
    await app.devices.accept(record({ deviceId: id, state, timestamp: ts }), Date.now());
  }
  t.same((await gql(app, `{ device(deviceId: "a") { deviceId meta ${ENTRY} } }`)).data, { device: { deviceId: 'a', meta: null } }, 'no entry: meta is null');

  const set = await setMeta(app, 'a', { name: 'Manhole 12', address: 'Hauptstr. 5\n10115 Berlin', latitude: 52.52, longitude: 13.405, zone: 'north', tags: ['sewer', 'main'] });
  t.equal(set.status, 200);
  const a = entry('a', { name: 'Manhole 12', address: 'Hauptstr. 5\n10115 Berlin', latitude: 52.52, longitude: 13.405, zone: 'north', tags: ['sewer', 'main'] });
  t.same(set.data, { setDeviceMeta: a }, 'the mutation answers the entry');
  t.same((await gql(app, `{ device(deviceId: "a") { meta ${ENTRY} } }`)).data, { device: { meta: a } }, 'Device.meta is the entry');
  t.same((await app.inject('/registry/a')).json(), a, 'REST reads the same entry');

  // a literal input, fields left out: null, tags []
  const literal = await gql(app, 'mutation { setDeviceMeta(deviceId: "B-7", meta: { zone: "south", name: "Gate" }) { deviceId name zone tags latitude } }');
  t.same(literal.data, { setDeviceMeta: { deviceId: 'B-7', name: 'Gate', zone: 'south', tags: [], latitude: null } });
  t.same((await setMeta(app, 'z9', { zone: 'north', address: 'Ringweg 1' })).data, { setDeviceMeta: entry('z9', { zone: 'north', address: 'Ringweg 1' }) }, 'a device never heard from can be registered');

  t.same(await registryIds(app), { ids: ['B-7', 'a', 'z9'], total: 3, nextCursor: null });
  t.same(await registryIds(app, '(zone: "north")'), { ids: ['a', 'z9'], total: 2, nextCursor: null });
  t.same(await registryIds(app, '(seen: false)'), { ids: ['z9'], total: 1, nextCursor: null }, 'registered, never seen');
  t.same(await registryIds(app, '(seen: true, zone: "north")'), { ids: ['a'], total: 1, nextCursor: null });
  const page1 = await registryIds(app, '(limit: 2)');
  t.same([page1.ids, page1.total], [['B-7', 'a'], 3]);
  t.type(page1.nextCursor, 'string');
  t.same(await registryIds(app, `(limit: 2, cursor: ${JSON.stringify(page1.nextCursor)})`), { ids: ['z9'], total: 3, nextCursor: null }, 'the next page');
  const badCursor = await gql(app, '{ registry(cursor: "nope") { total } }');
  t.same([badCursor.errors?.[0]?.message, badCursor.errors?.[0]?.extensions?.code], ['cursor is not one this service handed out', 'BRG_ERR_INVALID_CURSOR']);

  const devices = async (args: string): Promise<string[]> =>
    ((await gql(app, `{ devices${args} { items { deviceId } } }`)).data?.devices as { items: { deviceId: string }[] }).items.map((d) => d.deviceId);
  t.same(await devices('(zone: "north")'), ['a'], 'zone: devices only (z9 never reported)');
  t.same(await devices('(zone: "west")'), []);
  t.same(await devices('(q: "HAUPT")'), ['a'], 'q: the address, case-insensitive');
  t.same(await devices('(q: "gate")'), ['B-7'], 'q: the name');
  t.same(await devices('(q: "b-")'), ['B-7'], 'q: the deviceId');
  t.same(await devices('(q: "a", zone: "south")'), ['B-7'], 'both filters');
  t.same(await devices('(state: "open", q: "c")'), ['c']);

  t.same((await gql(app, DELETE, { id: 'a' })).data, { deleteDeviceMeta: true });
  t.same((await gql(app, DELETE, { id: 'a' })).data, { deleteDeviceMeta: false }, 'false when there is no entry');
  t.same((await gql(app, '{ device(deviceId: "a") { meta { deviceId } } }')).data, { device: { meta: null } });
  t.same((await registryIds(app)).ids, ['B-7', 'z9']);
});

t.test('an invalid entry is refused with BRG_ERR_INVALID_ENTRY and changes nothing', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'm', timestamp: ts }), Date.now());
  const before = entry('m', { name: 'kept', zone: 'z' });
  t.same((await setMeta(app, 'm', { name: 'kept', zone: 'z' })).data, { setDeviceMeta: before });

  const cases: [string, Record<string, unknown>, string][] = [
    ['latitude 91', { latitude: 91, longitude: 10 }, 'latitude must be a number from -90 to 90'],
    ['a tag with |', { tags: ['a|b'] }, "tags must not hold '|'"],
    ['latitude without longitude', { latitude: 10 }, 'latitude and longitude go together: set both or neither'],
    ['33 tags', { tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, 'tags must be at most 32'],
  ];
  for (const [name, meta, reason] of cases) {
    for (const id of ['m', 'fresh']) {
      const refused = await setMeta(app, id, { name: 'changed', ...meta });
      t.equal(refused.status, 200, `${name}: a GraphQL error, not an HTTP one`);
      t.equal(refused.data, null, name);
      t.same(refused.errors?.map((e) => [e.message, e.extensions?.code, e.path]), [[`invalid registry entry: ${reason}`, 'BRG_ERR_INVALID_ENTRY', ['setDeviceMeta']]], `${name} (${id})`);
    }
  }
  const literal = await gql(app, 'mutation { setDeviceMeta(deviceId: "m", meta: { latitude: 91, longitude: 0 }) { deviceId } }');
  t.equal(literal.errors?.[0]?.extensions?.code, 'BRG_ERR_INVALID_ENTRY', 'a literal input is checked the same way');
  const longId = await setMeta(app, 'x'.repeat(129), { name: 'n' });
  t.same([longId.errors?.[0]?.message, longId.errors?.[0]?.extensions?.code], ['invalid registry entry: deviceId must be 1 to 128 characters', 'BRG_ERR_INVALID_ENTRY']);

  t.same((await gql(app, `{ device(deviceId: "m") { meta ${ENTRY} } }`)).data, { device: { meta: before } }, 'the entry is unchanged');
  t.same(await registryIds(app), { ids: ['m'], total: 1, nextCursor: null }, 'no entry was created');
  t.equal(await app.devices.store.getEntry('fresh'), undefined);
});

t.test('API_READ_KEYS read everything and write nothing; API_KEYS write (POST /graphql)', async (t) => {
  const app = await buildTestApp(t, testConfig({ API_KEYS: WRITER, API_READ_KEYS: READER }), { connectMqtt: false });
  await app.ready();
  await app.devices.accept(record({ deviceId: 'k', timestamp: ts }), Date.now());
  t.same((await setMeta(app, 'k', { zone: 'z' }, bearer(WRITER))).data, { setDeviceMeta: entry('k', { zone: 'z' }) }, 'the write key writes');

  const reads: [string, unknown][] = [
    [`{ device(deviceId: "k") { meta ${ENTRY} } }`, { device: { meta: entry('k', { zone: 'z' }) } }],
    ['{ devices(zone: "z", q: "k") { total items { deviceId meta { zone } } } }', { devices: { total: 1, items: [{ deviceId: 'k', meta: { zone: 'z' } }] } }],
    ['{ registry(zone: "z", seen: true) { total items { deviceId } } }', { registry: { total: 1, items: [{ deviceId: 'k' }] } }],
    ['{ history(deviceId: "k") { state } }', { history: [{ state: 'close' }] }],
    ['{ stats { devices } }', { stats: { devices: 1 } }],
  ];
  for (const [query, data] of reads) {
    const answer = await gql(app, query, undefined, { 'x-api-key': READER });
    t.same([answer.status, answer.data, answer.errors], [200, data, undefined], `the read key reads: ${query.slice(0, 40)}`);
  }

  const refused = await setMeta(app, 'k', { zone: 'other' }, { 'x-api-key': READER });
  t.equal(refused.status, 200);
  t.equal(refused.data, null);
  t.same(refused.errors?.map((e) => [e.message, e.extensions?.code, e.path]), [
    ['this API key may read, not write: writes need a key of API_KEYS', 'BRG_ERR_READ_ONLY_KEY', ['setDeviceMeta']],
  ]);
  const invalidToo = await setMeta(app, 'new', { latitude: 91 }, bearer(READER));
  t.equal(invalidToo.errors?.[0]?.extensions?.code, 'BRG_ERR_READ_ONLY_KEY', 'the key is checked before the entry');
  const deleted = await gql(app, DELETE, { id: 'k' }, bearer(READER));
  t.same([deleted.data, deleted.errors?.[0]?.extensions?.code], [null, 'BRG_ERR_READ_ONLY_KEY']);
  t.same((await gql(app, `{ registry { total items ${ENTRY} } }`, undefined, bearer(READER))).data, { registry: { total: 1, items: [entry('k', { zone: 'z' })] } }, 'nothing was written');

  const foreign = await setMeta(app, 'k', { zone: 'other' }, { ...bearer(WRITER), origin: 'https://evil.example' });
  t.equal(foreign.errors?.[0]?.extensions?.code, 'BRG_ERR_WRITE_ORIGIN_FORBIDDEN', 'a foreign page writes nothing, whatever key it has');
  t.equal((await app.inject({ method: 'POST', url: '/graphql', payload: { query: DELETE, variables: { id: 'k' } } })).statusCode, 401, 'no key: 401 before GraphQL');
  t.same((await app.devices.store.getEntry('k'))?.zone, 'z', 'still unchanged');

  t.same((await gql(app, DELETE, { id: 'k' }, bearer(WRITER))).data, { deleteDeviceMeta: true }, 'the write key deletes');
  t.equal(await app.devices.store.getEntry('k'), undefined);
});

t.test('mutations over graphql-ws: checked with the connection key', async (t) => {
  const app = await buildTestApp(t, testConfig({ API_KEYS: WRITER, API_READ_KEYS: READER }), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const url = `ws://127.0.0.1:${port}/graphql`;
  const mutation = 'mutation ($id: ID!) { setDeviceMeta(deviceId: $id, meta: { zone: "ws" }) { deviceId zone } }';
  const code = (result: Record<string, unknown>): string | undefined => (result.errors as GqlError[] | undefined)?.[0]?.extensions?.code;

  const reader = wsClient(t, url, { apiKey: READER });
  t.same((await once(reader, '{ registry { total } }')).data, { registry: { total: 0 } }, 'the read key reads over the socket');
  const refused = await once(reader, mutation, { id: 'r1' });
  t.same([refused.data, code(refused)], [null, 'BRG_ERR_READ_ONLY_KEY'], 'connection_init with a read key: refused');
  const readerInUrl = wsClient(t, `${url}?apiKey=${READER}`);
  t.equal(code(await once(readerInUrl, mutation, { id: 'r2' })), 'BRG_ERR_READ_ONLY_KEY', 'a read key on the upgrade request: refused');
  const declared = wsClient(t, `${url}?apiKey=${WRITER}`, { apiKey: READER });
  t.equal(code(await once(declared, mutation, { id: 'r3' })), 'BRG_ERR_READ_ONLY_KEY', "connection_init's key is the connection's key");
  t.equal((await app.devices.store.listEntries({ limit: 10 })).total, 0, 'nothing was written');

  const writer = wsClient(t, url, { apiKey: WRITER });
  t.same((await once(writer, mutation, { id: 'w1' })).data, { setDeviceMeta: { deviceId: 'w1', zone: 'ws' } }, 'connection_init with the write key writes');
  const writerInUrl = wsClient(t, `${url}?apiKey=${WRITER}`);
  t.same((await once(writerInUrl, 'mutation { deleteDeviceMeta(deviceId: "w1") }')).data, { deleteDeviceMeta: true }, 'the write key on the upgrade request writes');
  t.equal(await app.devices.store.getEntry('w1'), undefined);
});

t.test('deviceUpdated: a meta event with the new Device.meta, none for a device never seen', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  await app.devices.accept(record({ deviceId: 'seen', state: 'open', timestamp: ts }), Date.now());
  await app.devices.accept(record({ deviceId: 'seen', state: 'close', timestamp: ts + 1 }), Date.now());
  const client = wsClient(t, `ws://127.0.0.1:${port}/graphql`);

  const results: Record<string, unknown>[] = [];
  const dispose = client.subscribe(
    { query: `subscription { deviceUpdated { seq kind changed previousState device { deviceId state meta ${ENTRY} } } }` },
    { next: (r) => results.push(r as Record<string, unknown>), error: (e) => t.fail(String(e)), complete: () => {} },
  );
  t.teardown(dispose);
  await until(() => app.subscriptions.size === 1, () => 'the subscription registered');

  t.same((await setMeta(app, 'never', { zone: 'n' })).data, { setDeviceMeta: entry('never', { zone: 'n' }) });
  const located = { name: 'Cover 3', latitude: 48.1, longitude: 11.5, zone: 'n', tags: ['x'] };
  // over the socket too: a mutation and a subscription on one connection
  t.same((await once(client, SET, { id: 'seen', meta: located })).data, { setDeviceMeta: entry('seen', located) });
  await until(() => results.length >= 1, () => 'the meta event');
  await app.devices.deleteMeta('seen');
  await until(() => results.length >= 2, () => 'the meta event of the deletion');

  const events = results.map((r) => (r.data as { deviceUpdated: Record<string, unknown> }).deviceUpdated);
  // events come in seq order: one for `never` would have come first
  t.match(events[0], { kind: 'meta', changed: false, previousState: 'close', device: { deviceId: 'seen', state: 'close', meta: entry('seen', located) } });
  t.match(events[1], { kind: 'meta', changed: false, device: { deviceId: 'seen', meta: null } });
  t.ok((events[1]!.seq as number) > (events[0]!.seq as number));
  t.equal(results.length, 2, 'nothing for the device never seen');
});

t.test('a mutation over GET is refused with 405 and writes nothing', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await setMeta(app, 'g', { zone: 'z' });
  const get = await app.inject({ method: 'GET', url: '/graphql', query: { query: 'mutation { deleteDeviceMeta(deviceId: "g") }' } });
  t.equal(get.statusCode, 405);
  t.equal(get.headers.allow, 'POST');
  t.same(get.json(), { data: null, errors: [{ message: 'only queries can be sent with GET: send mutations with POST' }] });
  const set = await app.inject({ method: 'GET', url: '/graphql', query: { query: 'mutation { setDeviceMeta(deviceId: "h", meta: {}) { deviceId } }' } });
  t.equal(set.statusCode, 405);
  t.same((await app.inject({ method: 'GET', url: '/graphql', query: { query: '{ registry { items { deviceId zone } } }' } })).json(), { data: { registry: { items: [{ deviceId: 'g', zone: 'z' }] } } }, 'queries over GET still work, and nothing was written');
});

t.test('the cost rule counts registry pages, their tags and mutations like devices', async (t) => {
  const app = await buildTestApp(t, testConfig({ GRAPHQL_MAX_ITEMS: '2500' }), { connectMqtt: false });
  await app.ready();
  await app.devices.importEntries(Array.from({ length: 1100 }, (_, i) => entry(`e${String(i).padStart(4, '0')}`, { zone: 'z' })));

  const aliased = await gql(app, '{ a: registry(limit: 1000) { items { deviceId } } b: registry(limit: 1000) { items { deviceId } } c: registry(limit: 600) { items { deviceId } } }');
  t.equal(aliased.status, 400);
  t.match(aliased.errors?.[0], { message: /could return 2600 list items, over the limit of 2500/, extensions: { code: 'BRG_ERR_GQL_COST' } });
  const fragments = await gql(app, 'fragment F on Query { registry(limit: 1000) { items { deviceId } } } { ...F x: devices(limit: 1000) { items { meta { deviceId } } } y: registry(limit: 600) { total } z: registry(zone: "z", limit: 600) { items { zone } } }');
  t.equal(fragments.status, 400, 'fragments, aliases and devices together');
  t.match(fragments.errors?.[0]?.message, /could return 2600 list items/);
  const variable = await gql(app, 'query ($n: Int) { a: registry(limit: $n) { items { deviceId } } b: registry(limit: $n) { items { deviceId } } c: registry(limit: $n) { items { deviceId } } }', { n: 1 });
  t.equal(variable.status, 400, 'a variable limit counts as the most it can be');

  const clamped = await gql(app, '{ registry(limit: 5000) { total items { deviceId } } }');
  t.equal(clamped.status, 200, 'a limit of 5000 counts as 1000 items');
  t.equal((clamped.data?.registry as { items: unknown[] }).items.length, 1000, 'and is clamped to 1000');
  t.equal((clamped.data?.registry as { total: number }).total, 1100);

  t.match((await gql(app, '{ registry(limit: 100) { items { tags } } }')).errors?.[0]?.message, /could return 3300 list items/, 'tags count up to 32 an entry');
  t.equal((await gql(app, '{ registry(limit: 50) { items { tags } } }')).status, 200, '50 + 50 * 32 items');
  t.equal((await gql(app, '{ devices(limit: 100) { items { meta { tags } } } }')).status, 400, 'Device.meta.tags too');

  const writes = Array.from({ length: 79 }, (_, i) => `w${i}: setDeviceMeta(deviceId: "m${i}", meta: { zone: "m" }) { tags }`).join(' ');
  const mutation = await gql(app, `mutation { ${writes} }`);
  t.equal(mutation.status, 400, 'a mutation is counted too: 79 * 32 tags');
  t.match(mutation.errors?.[0]?.message, /could return 2528 list items/);
  t.equal(await app.devices.store.getEntry('m0'), undefined, 'and nothing ran');
});
