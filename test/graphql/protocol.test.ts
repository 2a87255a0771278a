import t from 'tap';
import { buildSchema } from 'graphql';
import { GqlClose, GqlConnection, GRAPHQL_WS_PROTOCOL, type GqlConnectionOptions } from '../../src/graphql/protocol.js';
import { SubscriptionHub } from '../../src/graphql/subscriptions.js';
import { SDL } from '../../src/graphql/schema.js';
import { costRule, depthRule } from '../../src/graphql/limits.js';
import { GraphqlRunner } from '../../src/graphql/run.js';
import { ManualClock } from '../helpers/clock.js';

// The graphql-ws state machine against a fake socket (object literals, as graphql-ws tests itself).

const schema = buildSchema(SDL);

function fake(protocol = GRAPHQL_WS_PROTOCOL, overrides: Partial<GqlConnectionOptions> = {}) {
  const sent: Record<string, unknown>[] = [];
  const closes: { code: number; reason: string }[] = [];
  let closed: () => void = () => {};
  const whenClosed = new Promise<void>((resolve) => (closed = resolve));
  const fail = (err: unknown): never => {
    throw err;
  };
  const hub = new SubscriptionHub(schema, { maxResponseBytes: 1 << 20, onError: fail });
  const runner = new GraphqlRunner({
    schema,
    rules: [depthRule(8), costRule({ maxItems: 10_000, maxFields: 30_000 })],
    maxTokens: 1000,
    maxResponseBytes: 1 << 20,
    leaves: new WeakSet(),
    onError: fail,
  });
  const connection = new GqlConnection(
    {
      protocol,
      send: (data) => sent.push(JSON.parse(data) as Record<string, unknown>),
      close: (code, reason) => {
        closes.push({ code, reason });
        closed();
      },
    },
    {
      hub,
      prepare: (request) => runner.prepare(request),
      initTimeoutMs: 3000,
      clock: new ManualClock(), // unmoved unless a test gives its own: no connection_init timeout
      onConnect: () => true,
      executeQuery: async () => '{"data":{"stats":null}}',
      onError: (err) => {
        throw err;
      },
      ...overrides,
    },
  );
  t.teardown(() => connection.closed());
  return { connection, sent, closes, hub, whenClosed };
}

const subscribe = (id: string, query = 'subscription { deviceSilent { deviceId } }') => JSON.stringify({ id, type: 'subscribe', payload: { query } });

t.test('handshake: connection_init, then connection_ack; nothing before it but pong', async (t) => {
  const { connection, sent, closes } = fake();
  await connection.receive('{"type":"ping"}');
  t.same(sent, [{ type: 'pong' }]);
  await connection.receive('{"type":"connection_init","payload":{"apiKey":"x"}}');
  t.same(sent.at(-1), { type: 'connection_ack' });
  t.same(closes, []);
});

t.test('subscribe before connection_ack: 4401, and nothing sent', async (t) => {
  const { connection, sent, closes } = fake();
  await connection.receive(subscribe('1'));
  t.same(sent, []);
  t.same(closes, [{ code: GqlClose.Unauthorized, reason: 'Unauthorized' }]);
});

t.test('a refused connection_init: 4403', async (t) => {
  const { connection, sent, closes } = fake(GRAPHQL_WS_PROTOCOL, { onConnect: () => false });
  await connection.receive('{"type":"connection_init"}');
  t.same(sent, []);
  t.same(closes, [{ code: GqlClose.Forbidden, reason: 'Forbidden' }]);
});

t.test('no connection_init in time: 4408', async (t) => {
  const clock = new ManualClock();
  const { closes } = fake(GRAPHQL_WS_PROTOCOL, { initTimeoutMs: 3000, clock });
  clock.advance(2999);
  t.same(closes, [], 'not before the timeout');
  clock.advance(1);
  t.same(closes, [{ code: GqlClose.ConnectionInitialisationTimeout, reason: 'Connection initialisation timeout' }]);
});

t.test('a connection_init in time stops the timeout', async (t) => {
  const clock = new ManualClock();
  const { connection, closes } = fake(GRAPHQL_WS_PROTOCOL, { initTimeoutMs: 3000, clock });
  clock.advance(2999);
  await connection.receive('{"type":"connection_init"}');
  t.equal(clock.pending, 0, 'its timer is cleared');
  clock.advance(10_000);
  t.same(closes, []);
});

t.test('protocol errors close the connection with the code of PROTOCOL.md', async (t) => {
  const cases: [string[], number, RegExp][] = [
    [['{"type":"connection_init"}', '{"type":"connection_init"}'], GqlClose.TooManyInitialisationRequests, /Too many/],
    [['not json'], GqlClose.BadRequest, /not JSON/],
    [['{"type":"hello"}'], GqlClose.BadRequest, /unknown type/],
    [['[1]'], GqlClose.BadRequest, /not an object/],
    [['{"type":"connection_init","payload":"x"}'], GqlClose.BadRequest, /payload must be an object/],
    [['{"type":"connection_init"}', '{"type":"subscribe","id":"1"}'], GqlClose.BadRequest, /needs a payload/],
    [['{"type":"connection_init"}', '{"type":"subscribe","payload":{"query":"{x}"}}'], GqlClose.BadRequest, /needs an id/],
    [['{"type":"connection_init"}', '{"type":"subscribe","id":"1","payload":{"query":"{x}","variables":[1]}}'], GqlClose.BadRequest, /variables/],
    [['{"type":"connection_init"}', subscribe('1'), subscribe('1')], GqlClose.SubscriberAlreadyExists, /Subscriber for 1 already exists/],
  ];
  for (const [messages, code, reason] of cases) {
    const { connection, closes } = fake();
    for (const m of messages) await connection.receive(m);
    t.equal(closes[0]?.code, code, messages.join(' | ').slice(0, 80));
    t.match(closes[0]?.reason, reason);
  }
  const wrong = fake('graphql-ws');
  t.same(wrong.closes, [{ code: GqlClose.SubprotocolNotAcceptable, reason: 'Subprotocol not acceptable' }], 'the legacy subprotocol');
});

t.test('subscribe: invalid documents get an error message, the connection stays', async (t) => {
  const { connection, sent, closes } = fake();
  await connection.receive('{"type":"connection_init"}');
  await connection.receive(subscribe('a', 'subscription { nope }'));
  t.equal(sent.at(-1)?.type, 'error');
  t.equal(sent.at(-1)?.id, 'a');
  t.match((sent.at(-1)?.payload as { message: string }[])[0]?.message, /Cannot query field "nope"/);
  await connection.receive(subscribe('b', `{ ${'a '.repeat(2000)}}`));
  t.match((sent.at(-1)?.payload as { message: string }[])[0]?.message, /tokens/);
  await connection.receive(JSON.stringify({ id: 'c', type: 'subscribe', payload: { query: 'subscription ($d: ID) { deviceSilent(deviceId: $d) { deviceId } }', variables: { d: { x: 1 } } } }));
  t.match((sent.at(-1)?.payload as { message: string }[])[0]?.message, /Variable "\$d"/);
  t.same(closes, []);
  t.equal(connection.operations, 0);
});

t.test('subscribe and complete; a query runs once and completes', async (t) => {
  const { connection, sent, hub } = fake();
  await connection.receive('{"type":"connection_init"}');
  await connection.receive(subscribe('s1'));
  t.equal(hub.size, 1);
  t.equal(connection.operations, 1);
  await connection.receive('{"type":"complete","id":"s1"}');
  t.equal(hub.size, 0, 'complete removes the subscription');
  await connection.receive(JSON.stringify({ id: 'q', type: 'subscribe', payload: { query: '{ stats { devices } }' } }));
  t.same(sent.slice(-2), [
    { id: 'q', type: 'next', payload: { data: { stats: null } } },
    { id: 'q', type: 'complete' },
  ]);
  await connection.receive(subscribe('s2'));
  connection.closed();
  t.equal(hub.size, 0, 'a closed socket leaves no subscription');
});

t.test('an operation id reused after a query completes belongs to the new subscription', async (t) => {
  let finish: (json: string) => void = () => {};
  const { connection, sent, hub } = fake(GRAPHQL_WS_PROTOCOL, {
    executeQuery: () => new Promise((resolve) => (finish = resolve as typeof finish)),
  });
  await connection.receive('{"type":"connection_init"}');
  const query = connection.receive(JSON.stringify({ id: 'x', type: 'subscribe', payload: { query: '{ stats { devices } }' } }));
  await connection.receive('{"type":"complete","id":"x"}');
  await connection.receive(subscribe('x'));
  finish('{"data":{"stats":null}}');
  await query;
  t.equal(hub.size, 1, 'the subscription stands');
  t.notOk(sent.some((m) => m.type === 'complete'), 'the old query sends nothing for the new operation');
  connection.closed();
  t.equal(hub.size, 0, 'and goes with the socket');
});

t.test('at most MAX_OPERATIONS operations on one socket', async (t) => {
  const { connection, sent, hub } = fake();
  await connection.receive('{"type":"connection_init"}');
  for (let i = 0; i < 101; i++) await connection.receive(subscribe(`s${i}`, `subscription { deviceSilent(deviceId: "${i % 3}") { deviceId } }`));
  t.equal(connection.operations, 100);
  t.equal(sent.at(-1)?.type, 'error');
  t.match((sent.at(-1)?.payload as { message: string }[])[0]?.message, /at most 100 operations/);
  t.ok(hub.size <= 100);
});

t.test('spacing and comments do not make another execution group', async (t) => {
  const { connection, hub } = fake();
  await connection.receive('{"type":"connection_init"}');
  await connection.receive(subscribe('a', 'subscription { deviceSilent { deviceId } }'));
  await connection.receive(subscribe('b', 'subscription   {\n  # a comment\n  deviceSilent { deviceId }\n}'));
  t.equal(hub.size, 2);
  t.equal(hub.groupCount, 1);
});
