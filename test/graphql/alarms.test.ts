import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { encodeCursor } from '../../src/cursor.js';
import type { DeviceRecord } from '../../src/devices/types.js';
import { buildTestApp, testConfig, until, withTimeout } from '../helpers/app.js';
import { record } from '../helpers/records.js';

// SPEC §12 GraphQL: Query.alarms (filters, pages), Query.alarm, Device.alarms, stats.alarms, the
// two mutations and their write check (SPEC §9) over POST and graphql-ws, alarmChanged through the
// SubscriptionHub (filtered by device and type, one execution per group), and the bounds of
// issue 13 over the alarm lists.

const ts = Math.floor(Date.now() / 1000) - 3600;
const iso = (seconds: number): string => new Date(seconds * 1000).toISOString();
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
interface AlarmShape {
  alarmId: string;
  deviceId: string;
  type: string;
  severity: string;
  status: string;
  acknowledged: boolean;
  raisedAt: string;
  clearedAt: string | null;
  acknowledgedAt: string | null;
  note: string | null;
  meta: { zone: string | null } | null;
  raisedReceivedAt: string;
  clearedReceivedAt: string | null;
}

async function gql(app: FastifyInstance, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await app.inject({ method: 'POST', url: '/graphql', headers, payload: { query, variables } });
  const body = res.json() as { data?: Record<string, unknown> | null; errors?: GqlError[] };
  return { status: res.statusCode, data: body.data, errors: body.errors };
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
const codes = (answer: { errors?: GqlError[] | undefined }): (string | undefined)[] | undefined => answer.errors?.map((e) => e.extensions?.code);

const ALARM = '{ alarmId deviceId type severity status acknowledged raisedAt clearedAt acknowledgedAt note meta { zone } raisedReceivedAt clearedReceivedAt }';
const ACK = `mutation ($id: ID!, $note: String) { acknowledgeAlarm(alarmId: $id, note: $note) ${ALARM} }`;
const CLEAR = `mutation ($id: ID!) { clearAlarm(alarmId: $id) ${ALARM} }`;

async function accept(app: FastifyInstance, fields: Partial<DeviceRecord>): Promise<void> {
  await app.devices.accept(record(fields), Date.now());
}

async function page(app: FastifyInstance, args = '', headers: Record<string, string> = {}): Promise<{ items: AlarmShape[]; total: number; nextCursor: string | null }> {
  const answer = await gql(app, `{ alarms${args} { total nextCursor items ${ALARM} } }`, undefined, headers);
  if (answer.errors) throw new Error(JSON.stringify(answer.errors));
  return answer.data?.alarms as { items: AlarmShape[]; total: number; nextCursor: string | null };
}

/** One alarm of each type on three devices, and a cleared cover_open before a newer one. */
async function fleet(app: FastifyInstance): Promise<void> {
  await app.devices.setMeta({ deviceId: 'c', name: null, address: null, latitude: null, longitude: null, zone: 'north', tags: [] });
  await accept(app, { deviceId: 'a', state: 'open', timestamp: ts }); // cover_open, major
  await accept(app, { deviceId: 'b', state: 'close', batteryLevel: 500, timestamp: ts + 1 }); // battery_low, critical
  await accept(app, { deviceId: 'c', state: 'offline', timestamp: ts + 2 }); // silent, major
  await accept(app, { deviceId: 'a', state: 'close', timestamp: ts + 3 }); // clears a's cover_open
  await accept(app, { deviceId: 'a', state: 'open', timestamp: ts + 4 }); // a new cover_open
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

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return `ws://127.0.0.1:${port}/graphql`;
}

t.test('Query.alarms with filters and pages, Query.alarm, Device.alarms, stats.alarms', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await fleet(app);

  const all = await page(app);
  t.same(
    all.items.map((a) => [a.deviceId, a.type, a.severity, a.status, a.raisedAt]),
    [
      ['a', 'cover_open', 'major', 'active', iso(ts + 4)],
      ['c', 'silent', 'major', 'active', iso(ts + 2)],
      ['b', 'battery_low', 'critical', 'active', iso(ts + 1)],
      ['a', 'cover_open', 'major', 'cleared', iso(ts)],
    ],
    'newest raisedAt first, source times',
  );
  t.same([all.total, all.nextCursor], [4, null]);
  const [newest, silent, battery, cleared] = all.items as [AlarmShape, AlarmShape, AlarmShape, AlarmShape];
  t.match(cleared, { acknowledged: false, clearedAt: iso(ts + 3), acknowledgedAt: null, note: null, meta: null, raisedReceivedAt: String, clearedReceivedAt: String });
  t.same(silent.meta, { zone: 'north' }, "meta: the device's registry entry");
  t.equal(newest.clearedAt, null);
  t.not(newest.alarmId, cleared.alarmId, 'a raise after the clear is a new alarm');

  const ids = async (args: string): Promise<string[]> => (await page(app, args)).items.map((a) => a.alarmId);
  t.same(await ids('(status: cleared)'), [cleared.alarmId]);
  t.same(await ids('(status: active)'), [newest.alarmId, silent.alarmId, battery.alarmId]);
  t.same(await ids('(type: battery_low)'), [battery.alarmId]);
  t.same(await ids('(severity: critical)'), [battery.alarmId]);
  t.same(await ids('(severity: major, type: cover_open)'), [newest.alarmId, cleared.alarmId]);
  t.same(await ids('(deviceId: "a")'), [newest.alarmId, cleared.alarmId]);
  t.same(await ids('(deviceId: "a", status: active)'), [newest.alarmId]);
  t.same(await ids('(zone: "north")'), [silent.alarmId]);
  t.same(await ids('(acknowledged: true)'), []);
  t.same(await ids('(acknowledged: false, deviceId: "nobody")'), []);
  const variables = await gql(app, 'query ($s: AlarmStatus, $t: AlarmType) { alarms(status: $s, type: $t) { total } }', { s: 'active', t: 'silent' });
  t.same(variables.data, { alarms: { total: 1 } }, 'filters as variables');
  const flood = await gql(app, '{ alarms(type: flood) { total } }');
  t.same([flood.status, flood.errors?.[0]?.message], [400, 'Value "flood" does not exist in "AlarmType" enum.'], 'a type is an enum value');

  const first = await page(app, '(limit: 3)');
  t.same([first.items.map((a) => a.alarmId), first.total], [[newest.alarmId, silent.alarmId, battery.alarmId], 4]);
  t.type(first.nextCursor, 'string');
  const second = await page(app, `(limit: 3, cursor: ${JSON.stringify(first.nextCursor)})`);
  t.same([second.items.map((a) => a.alarmId), second.total, second.nextCursor], [[cleared.alarmId], 4, null], 'the next page');
  const filtered = await page(app, '(status: active, limit: 1)');
  const rest = await page(app, `(status: active, limit: 5, cursor: ${JSON.stringify(filtered.nextCursor)})`);
  t.same(rest.items.map((a) => a.alarmId), [silent.alarmId, battery.alarmId], 'pages keep their filters');
  for (const cursor of ['nope', encodeCursor('a'), encodeCursor('["x"]'), encodeCursor('[1,2]')]) {
    const bad = await gql(app, '{ alarms(cursor: $c) { total } }'.replace('$c', JSON.stringify(cursor)));
    t.same(bad.errors?.map((e) => [e.message, e.extensions?.code]), [['cursor is not one this service handed out', 'BRG_ERR_INVALID_CURSOR']], `cursor ${cursor}`);
  }

  t.same((await gql(app, `query ($id: ID!) { alarm(alarmId: $id) ${ALARM} }`, { id: battery.alarmId })).data, { alarm: battery }, 'Query.alarm: the whole alarm');
  t.same((await gql(app, '{ alarm(alarmId: "nope") { alarmId } }')).data, { alarm: null }, 'unknown: null');

  t.same(
    (await gql(app, '{ device(deviceId: "a") { alarms { alarmId status } active: alarms(status: active) { alarmId } } }')).data,
    { device: { alarms: [{ alarmId: newest.alarmId, status: 'active' }, { alarmId: cleared.alarmId, status: 'cleared' }], active: [{ alarmId: newest.alarmId }] } },
    'Device.alarms: newest first, by status',
  );
  t.same(
    (await gql(app, '{ devices(limit: 10) { items { deviceId alarms { type } } } }')).data,
    { devices: { items: [{ deviceId: 'a', alarms: [{ type: 'cover_open' }, { type: 'cover_open' }] }, { deviceId: 'b', alarms: [{ type: 'battery_low' }] }, { deviceId: 'c', alarms: [{ type: 'silent' }] }] } },
  );
  // devices' default page (100) with their newest alarms (10 each by default): 1,100 items, within
  // the default GRAPHQL_MAX_ITEMS (10,000); all 100 a device: 10,100, over it
  const defaultPage = await gql(app, '{ devices { items { alarms { type } } } }');
  t.equal(defaultPage.status, 200, 'a page of devices with their alarms, by default');
  const allOfThem = await gql(app, '{ devices { items { alarms(limit: 100) { type } } } }');
  t.match([allOfThem.status, allOfThem.errors?.[0]?.message], [400, /could return 10100 list items, over the limit of 10000/]);
  t.same((await gql(app, '{ devices(limit: 1) { items { alarms(limit: 1) { type } } } }')).data, { devices: { items: [{ alarms: [{ type: 'cover_open' }] }] } }, 'limit: the newest');

  t.same((await gql(app, '{ stats { alarms { active unacknowledged byType { cover_open battery_low silent } } } }')).data, {
    stats: { alarms: { active: 3, unacknowledged: 4, byType: { cover_open: 1, battery_low: 1, silent: 1 } } },
  });
  const rest2 = (await app.inject(`/alarms?limit=3&cursor=${first.nextCursor}`)).json() as { items: { alarmId: string }[] };
  t.same(rest2.items.map((a) => a.alarmId), [cleared.alarmId], "REST takes GraphQL's cursor: one form");
});

t.test('acknowledgeAlarm (a note, idempotent) and clearAlarm', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await accept(app, { deviceId: 'x', state: 'open', timestamp: ts });
  await accept(app, { deviceId: 'y', state: 'open', timestamp: ts });
  const [y, x] = (await page(app)).items as [AlarmShape, AlarmShape];
  t.same([x.deviceId, y.deviceId], ['x', 'y']);

  const acked = await gql(app, ACK, { id: x.alarmId, note: 'crew 4 on the way' });
  t.equal(acked.status, 200);
  const ack = (acked.data as { acknowledgeAlarm: AlarmShape }).acknowledgeAlarm;
  t.match(ack, { alarmId: x.alarmId, status: 'active', acknowledged: true, acknowledgedAt: String, note: 'crew 4 on the way', clearedAt: null });
  const again = await gql(app, ACK, { id: x.alarmId, note: 'another note' });
  t.same(again.data, { acknowledgeAlarm: ack }, 'idempotent: the first time and note stay');
  t.same((await gql(app, `mutation { acknowledgeAlarm(alarmId: ${JSON.stringify(x.alarmId)}) { note } }`)).data, { acknowledgeAlarm: { note: 'crew 4 on the way' } }, 'without a note too');

  const unknown = await gql(app, ACK, { id: 'nope' });
  t.equal(unknown.status, 200, 'a GraphQL error, not an HTTP one');
  t.equal(unknown.data, null);
  t.same(unknown.errors?.map((e) => [e.message, e.extensions?.code, e.path]), [["alarm 'nope' not found", 'BRG_ERR_ALARM_NOT_FOUND', ['acknowledgeAlarm']]]);

  const long = await gql(app, ACK, { id: y.alarmId, note: 'n'.repeat(1001) });
  t.same(long.errors?.map((e) => [e.message, e.extensions?.code]), [['invalid acknowledgement: note is longer than 1000 characters', 'BRG_ERR_INVALID_ACK']], 'over 1000 characters: refused');
  t.match(await app.devices.store.getAlarm(y.alarmId), { acknowledged: false, note: null }, 'and nothing changed');
  const emoji = '\u{1F6A7}'.repeat(1000); // 2000 UTF-16 units, 1000 characters
  t.equal(((await gql(app, ACK, { id: y.alarmId, note: emoji })).data as { acknowledgeAlarm: AlarmShape }).acknowledgeAlarm.note, emoji, '1000 characters are taken');

  const cleared = await gql(app, CLEAR, { id: x.alarmId });
  const clear = (cleared.data as { clearAlarm: AlarmShape }).clearAlarm;
  t.match(clear, { alarmId: x.alarmId, status: 'cleared', clearedAt: String, clearedReceivedAt: String, acknowledged: true, note: 'crew 4 on the way' });
  t.same((await gql(app, CLEAR, { id: x.alarmId })).data, { clearAlarm: clear }, 'clearing a cleared alarm changes nothing');
  t.same(codes(await gql(app, CLEAR, { id: 'nope' })), ['BRG_ERR_ALARM_NOT_FOUND']);
  t.same((await app.devices.store.getAlarm(x.alarmId))?.status, 'cleared', 'the store has it');
  await accept(app, { deviceId: 'x', state: 'open', timestamp: ts + 1 });
  t.same((await page(app, '(deviceId: "x", status: active)')).total, 0, 'a cover cleared by hand stays cleared while it is open');
  const ackCleared = await gql(app, ACK, { id: x.alarmId });
  t.same(ackCleared.errors, undefined, 'acknowledging after the clear is allowed');
});

t.test('API_READ_KEYS read alarms and change none; API_KEYS write (POST /graphql)', async (t) => {
  const app = await buildTestApp(t, testConfig({ API_KEYS: WRITER, API_READ_KEYS: READER }), { connectMqtt: false });
  await app.ready();
  await accept(app, { deviceId: 'k', state: 'open', timestamp: ts });
  const { items } = await page(app, '', bearer(READER));
  const alarm = items[0]!;
  t.equal(alarm.type, 'cover_open', 'the read key reads the list');
  const reads: [string, unknown][] = [
    [`{ alarm(alarmId: ${JSON.stringify(alarm.alarmId)}) { status } }`, { alarm: { status: 'active' } }],
    ['{ device(deviceId: "k") { alarms { type } } }', { device: { alarms: [{ type: 'cover_open' }] } }],
    ['{ stats { alarms { active } } }', { stats: { alarms: { active: 1 } } }],
  ];
  for (const [query, data] of reads) {
    const answer = await gql(app, query, undefined, { 'x-api-key': READER });
    t.same([answer.status, answer.data, answer.errors], [200, data, undefined], `the read key reads: ${query.slice(0, 40)}`);
  }

  const refusals: [string, Record<string, unknown>][] = [
    [ACK, { id: alarm.alarmId, note: 'read key' }],
    [ACK, { id: alarm.alarmId, note: 'n'.repeat(1001) }], // the key is checked before the note
    [ACK, { id: 'nope' }], // and before the alarm is looked up
    [CLEAR, { id: alarm.alarmId }],
    [CLEAR, { id: 'nope' }],
  ];
  for (const [query, variables] of refusals) {
    const refused = await gql(app, query, variables, bearer(READER));
    t.equal(refused.status, 200);
    t.equal(refused.data, null);
    t.same(
      refused.errors?.map((e) => [e.message, e.extensions?.code]),
      [['this API key may read, not write: writes need a key of API_KEYS', 'BRG_ERR_READ_ONLY_KEY']],
      `refused: ${query.slice(0, 30)} ${JSON.stringify(variables).slice(0, 40)}`,
    );
  }
  t.same(await app.devices.store.getAlarm(alarm.alarmId), alarm, 'nothing changed');
  t.equal((await app.inject({ method: 'POST', url: '/graphql', payload: { query: CLEAR, variables: { id: alarm.alarmId } } })).statusCode, 401, 'no key: 401 before GraphQL');

  t.match((await gql(app, ACK, { id: alarm.alarmId, note: 'ok' }, bearer(WRITER))).data, { acknowledgeAlarm: { acknowledged: true, note: 'ok' } }, 'the write key acknowledges');
  t.match((await gql(app, CLEAR, { id: alarm.alarmId }, bearer(WRITER))).data, { clearAlarm: { status: 'cleared' } }, 'and clears');
});

t.test('alarm mutations over graphql-ws: checked with the connection key', async (t) => {
  const app = await buildTestApp(t, testConfig({ API_KEYS: WRITER, API_READ_KEYS: READER }), { connectMqtt: false });
  const url = await listen(app);
  await accept(app, { deviceId: 'w', state: 'open', timestamp: ts });
  const before = (await app.devices.store.listAlarms({ limit: 10 })).items[0]!;
  const code = (result: Record<string, unknown>): string | undefined => (result.errors as GqlError[] | undefined)?.[0]?.extensions?.code;

  const reader = wsClient(t, url, { apiKey: READER });
  t.match((await once(reader, '{ alarms { total items { alarmId } } }')).data, { alarms: { total: 1, items: [{ alarmId: before.alarmId }] } }, 'the read key reads over the socket');
  const ack = await once(reader, ACK, { id: before.alarmId, note: 'x' });
  t.same([ack.data, code(ack)], [null, 'BRG_ERR_READ_ONLY_KEY'], 'acknowledgeAlarm refused');
  const clear = await once(reader, CLEAR, { id: before.alarmId });
  t.same([clear.data, code(clear)], [null, 'BRG_ERR_READ_ONLY_KEY'], 'clearAlarm refused');
  const readerInUrl = wsClient(t, `${url}?apiKey=${READER}`);
  t.equal(code(await once(readerInUrl, CLEAR, { id: before.alarmId })), 'BRG_ERR_READ_ONLY_KEY', 'a read key on the upgrade request: refused');
  t.same(await app.devices.store.getAlarm(before.alarmId), before, 'nothing changed');

  const writer = wsClient(t, url, { apiKey: WRITER });
  t.match((await once(writer, ACK, { id: before.alarmId, note: 'ws' })).data, { acknowledgeAlarm: { acknowledged: true, note: 'ws' } });
  t.match((await once(writer, CLEAR, { id: before.alarmId })).data, { clearAlarm: { status: 'cleared' } });
  t.match(await app.devices.store.getAlarm(before.alarmId), { acknowledged: true, status: 'cleared' });
});

t.test('alarmChanged: every transition in order, filtered by device and type, executed once per group', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  const client = wsClient(t, await listen(app));
  const SUB = 'subscription ($d: ID, $t: AlarmType) { alarmChanged(deviceId: $d, type: $t) { seq transition alarm { deviceId type severity status acknowledged note } } }';
  type Seen = { seq: number; transition: string; alarm: { deviceId: string; type: string; severity: string; status: string; acknowledged: boolean; note: string | null } };
  const subscribe = (variables: Record<string, unknown>): Seen[] => {
    const seen: Seen[] = [];
    const dispose = client.subscribe(
      { query: SUB, variables },
      { next: (r) => seen.push((r.data as { alarmChanged: Seen }).alarmChanged), error: (e) => t.fail(JSON.stringify(e)), complete: () => {} },
    );
    t.teardown(dispose);
    return seen;
  };
  // all on one socket: each event is written to every group before the next event
  const all = subscribe({});
  const s1 = subscribe({ d: 's1' });
  const s1Twice = subscribe({ d: 's1' });
  const battery = subscribe({ t: 'battery_low' });
  const s1Battery = subscribe({ d: 's1', t: 'battery_low' });
  await until(() => app.subscriptions.size === 5, () => 'the subscriptions registered');
  t.equal(app.subscriptions.groupCount, 4, 'the same subscription twice is one group');

  await accept(app, { deviceId: 's1', state: 'open', timestamp: ts }); // raised cover_open s1
  await accept(app, { deviceId: 's2', batteryLevel: 1500, timestamp: ts }); // raised battery_low s2, warning
  await accept(app, { deviceId: 's2', batteryLevel: 500, timestamp: ts + 1 }); // escalated to critical
  const s1Alarm = (await app.devices.store.listAlarms({ deviceId: 's1', limit: 1 })).items[0]!;
  t.same((await gql(app, ACK, { id: s1Alarm.alarmId, note: 'seen' })).errors, undefined);
  await accept(app, { deviceId: 's1', state: 'close', timestamp: ts + 1 }); // cleared cover_open s1
  await until(() => all.length >= 5, () => `5 events, got ${JSON.stringify(all)}`);

  const brief = (seen: Seen[]): string[] => seen.map((e) => `${e.transition} ${e.alarm.deviceId} ${e.alarm.type} ${e.alarm.severity} ${e.alarm.status}`);
  t.same(brief(all), [
    'raised s1 cover_open major active',
    'raised s2 battery_low warning active',
    'escalated s2 battery_low critical active',
    'acknowledged s1 cover_open major active',
    'cleared s1 cover_open major cleared',
  ]);
  t.ok(all.every((e, i) => i === 0 || e.seq > all[i - 1]!.seq), 'seqs increase');
  t.match(all[3], { alarm: { acknowledged: true, note: 'seen' } });
  t.match(all[4], { alarm: { acknowledged: true, note: 'seen' } }, 'the clear keeps the acknowledgement');
  t.same(brief(s1), ['raised s1 cover_open major active', 'acknowledged s1 cover_open major active', 'cleared s1 cover_open major cleared'], 'deviceId: s1 only');
  t.same(s1Twice, s1, 'both subscribers of a group get the same events');
  t.same(brief(battery), ['raised s2 battery_low warning active', 'escalated s2 battery_low critical active'], 'type: battery_low only');
  t.same(s1Battery, [], 'deviceId and type together');
  const seqs = all.map((e) => e.seq);
  t.same(s1.map((e) => e.seq), [seqs[0], seqs[3], seqs[4]], 'the seqs of the one event stream');
});

t.test('Device.alarms reads the store: refused in subscriptions, over POST and graphql-ws', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  const client = wsClient(t, await listen(app));
  const query = 'subscription { deviceUpdated { device { deviceId ...A } } } fragment A on Device { alarms { alarmId } }';
  const errors = await withTimeout(
    new Promise<GqlError[]>((resolve) => {
      client.subscribe({ query }, { next: () => t.fail('no event expected'), error: (e) => resolve(e as GqlError[]), complete: () => {} });
    }),
    10_000,
    () => 'the refusal',
  );
  const message = 'Device.alarms reads the store and is not available in subscriptions: query it';
  t.same(errors.map((e) => [e.message, e.extensions?.code]), [[message, 'BRG_ERR_GQL_SUBSCRIPTION_FIELD']]);
  t.equal(app.subscriptions.size, 0, 'nothing subscribed');
  const post = await gql(app, 'subscription { stateChanged { device { alarms(status: active) { alarmId } } } }');
  t.same([post.status, codes(post)], [400, ['BRG_ERR_GQL_SUBSCRIPTION_FIELD']]);
  const other = await gql(app, 'subscription { alarmChanged { alarm { alarmId meta { zone } } } }');
  t.equal(codes(other)?.[0], undefined, 'alarmChanged itself is fine (POST says: over WebSocket)');
});

t.test('the cost rule counts alarm pages and Device.alarms', async (t) => {
  const app = await buildTestApp(t, testConfig({ GRAPHQL_MAX_ITEMS: '2500' }), { connectMqtt: false });
  await app.ready();
  await accept(app, { deviceId: 'p', state: 'open', timestamp: ts });

  const aliased = await gql(app, '{ a: alarms(limit: 1000) { items { alarmId } } b: alarms(limit: 1000) { items { alarmId } } c: alarms(status: active, limit: 600) { items { alarmId } } }');
  t.equal(aliased.status, 400);
  t.match(aliased.errors?.[0], { message: /could return 2600 list items, over the limit of 2500/, extensions: { code: 'BRG_ERR_GQL_COST' } });
  t.equal((await gql(app, 'query ($n: Int) { a: alarms(limit: $n) { items { alarmId } } b: alarms(limit: $n) { items { alarmId } } c: alarms(limit: $n) { items { alarmId } } }', { n: 1 })).status, 400, 'a variable limit counts as 1000');
  t.match((await gql(app, '{ alarms(limit: 100) { items { meta { tags } } } }')).errors?.[0]?.message, /could return 3300 list items/, 'meta.tags count 32 an alarm');

  const devices = await gql(app, '{ devices(limit: 25) { items { alarms(limit: 100) { alarmId } } } }');
  t.match(devices.errors?.[0]?.message, /could return 2525 list items/, 'Device.alarms counts its limit a device');
  t.same((await gql(app, '{ devices(limit: 24) { items { alarms { type } } } }')).data, { devices: { items: [{ alarms: [{ type: 'cover_open' }] }] } }, '24 + 2400 items pass');
  const acks = Array.from({ length: 79 }, (_, i) => `a${i}: acknowledgeAlarm(alarmId: "none") { meta { tags } }`).join(' ');
  const mutation = await gql(app, `mutation { ${acks} }`);
  t.match(mutation.errors?.[0]?.message, /could return 2528 list items/, 'mutations are counted too');
  t.match(await app.devices.store.listAlarms({ limit: 1 }), { items: [{ acknowledged: false }] }, 'and nothing ran');
});
