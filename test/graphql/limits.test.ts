import t from 'tap';
import fc from 'fast-check';
import { buildSchema, getIntrospectionQuery, isInterfaceType, isObjectType, parse } from 'graphql';
import { SDL } from '../../src/graphql/schema.js';
import { listSizes } from '../../src/graphql/limits.js';
import { MAX_MERGE_PAIRS, mergeError } from '../../src/graphql/merges.js';
import { answerJson, boundedJson } from '../../src/graphql/answer.js';
import { Turns } from '../../src/graphql/turns.js';
import { aliases, staticCount } from './hostile.js';

// The pieces of issue 13's bounds, alone: the count (limits.ts), the cost of validation
// (merges.ts), the byte budget (answer.ts) and the turns (turns.ts).

const schema = buildSchema(SDL);

t.test('introspection lists count what the schema has', async (t) => {
  const sizes = listSizes(schema);
  const types = Object.keys(schema.getTypeMap()).length;
  t.equal(sizes.get('__Schema.types'), types);
  t.equal(sizes.get('__Type.fields'), 17, 'Device, the largest type, has 17 fields');
  t.equal(sizes.get('__Field.args'), 8, 'alarms has 8 arguments');
  t.equal(sizes.get('DeviceConnection.items'), 'page');
  t.equal(sizes.get('RegistryConnection.items'), 'page');
  t.equal(sizes.get('AlarmConnection.items'), 'page');
  t.equal(sizes.get('RegistryEntry.tags'), 32, 'an entry has at most 32 tags');
  t.equal(sizes.get('Device.alarms'), 100, 'a device answers at most 100 alarms');
  t.equal(listSizes(schema), sizes, 'computed once per schema');
  // under `types`, each type once: every field of the schema once (input types have inputFields, not fields)
  const fields = Object.values(schema.getTypeMap())
    .map((type) => (isObjectType(type) || isInterfaceType(type) ? Object.keys(type.getFields()).length : 0))
    .reduce((a, b) => a + b, 0);
  t.equal(staticCount(schema, '{ __schema { types { fields { name } } } }').items, types + Math.ceil(fields), 'types { fields } counts each field once');
  t.equal(staticCount(schema, '{ __type(name: "Device") { fields { name } } }').items, 17, '__type counts the largest type');
  t.equal(staticCount(schema, '{ __type(name: "Query") { fields { type { fields { name } } } } }').items, 17 + 17 * 17, 'a field\'s type is any type');
});

t.test("GraphiQL's introspection query counts a few thousand fields", async (t) => {
  const { fields, items } = staticCount(schema, getIntrospectionQuery({ inputValueDeprecation: true, schemaDescription: true, descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true }));
  t.ok(fields > 1000 && fields < 10_000, `${fields} fields`);
  t.ok(items < 1000, `${items} list items`);
});

t.test('every alias counts; a page counts its limit once, not for its total', async (t) => {
  t.same(staticCount(schema, `{ stats { ${aliases(10, 'devices')} } }`), { items: 0, fields: 11 });
  t.same(staticCount(schema, '{ devices(limit: 10) { total nextCursor items { deviceId state } } }'), { items: 10, fields: 1 + 1 + 1 + 1 + 20 });
  t.same(staticCount(schema, '{ devices { items { deviceId } } }'), { items: 100, fields: 102 }, 'the default limit');
  t.same(staticCount(schema, '{ alarms(limit: 10) { items { alarmId } } }'), { items: 10, fields: 12 }, 'an alarm page counts its limit');
  t.same(staticCount(schema, '{ devices(limit: 10) { items { alarms { alarmId } } } }'), { items: 10 + 10 * 10, fields: 2 + 10 + 100 }, 'Device.alarms counts its limit, 10 by default');
  t.same(staticCount(schema, 'query ($n: Int) { history(deviceId: "a", limit: $n) { state } }'), { items: 1000, fields: 1001 }, 'a variable counts as the clamp');
  t.same(staticCount(schema, '{ a: __typename b: __typename }'), { items: 0, fields: 2 });
  // 300 levels of `fields { type {`: a multiplier past 1e308, times the 0 interfaces of the schema
  const deep = `{ __type(name: "Query") { ${'fields { type { '.repeat(300)}interfaces { name }${' } }'.repeat(300)} } }`;
  t.same(staticCount(schema, deep), { items: Infinity, fields: Infinity }, 'saturates at Infinity, never NaN');
});

t.test('merges: a response name repeated too often is refused before graphql validates it', async (t) => {
  t.equal(mergeError(parse(`{ ${'a: stats { devices } '.repeat(100)} }`)), null, '100 copies: 9,900 pairs');
  const refused = mergeError(parse(`{ ${'a: stats { devices } '.repeat(101)} }`));
  t.match(refused?.message, `over ${MAX_MERGE_PAIRS} pairs`);
  t.equal(refused?.extensions.code, 'BRG_ERR_GQL_COST');
  t.not(mergeError(parse(`{ ${'a: stats { devices } '.repeat(20)} ... { ${'a: stats { devices } '.repeat(90)} } }`)), null, 'inline fragments merge');
  t.not(mergeError(parse(`{ ...F ${'a: stats { devices } '.repeat(60)} } fragment F on Query { ${'a: stats { devices } '.repeat(60)} }`)), null, 'fragments merge');
  t.equal(mergeError(parse(`{ ${aliases(3000, '__typename')} }`)), null, 'distinct names never pair');
  t.equal(mergeError(parse(`{ ...F ...F ...F } fragment F on Query { ${'a: stats { devices } '.repeat(60)} }`)), null, 'a fragment spread twice in one place counts once');
  t.match(mergeError(parse(`{ ${aliases(30, 'stats { ...F }')} } fragment F on Stats { ${aliases(30, 'messages { ...G }')} } fragment G on MessageCounts { ${aliases(100, 'accepted')} }`), 50_000)?.message, /over 50000 fields/, 'expansion is bounded');
  t.equal(mergeError(parse('{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }')), null, 'cycles are left to validation');
});

t.test('boundedJson writes what JSON.stringify writes, and nothing over the budget', async (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.integer({ min: 0, max: 2000 }), (value, budget) => {
      const json = JSON.stringify(value);
      if (boundedJson(value, Infinity) !== json) return false;
      const bounded = boundedJson(value, budget);
      return Buffer.byteLength(json) <= budget ? bounded === json : bounded === null;
    }),
    { numRuns: 2000 },
  );
  const leaf = { note: 'é'.repeat(10), list: [1, 'x'] };
  const leaves = new WeakSet<object>([leaf]);
  const value = { data: { a: { attributes: leaf }, b: { attributes: leaf }, c: [null, true, 1.5, Number.NaN] } };
  t.equal(boundedJson(value, Infinity, leaves), JSON.stringify(value), 'leaves are written as JSON.stringify writes them');
  t.equal(boundedJson({ a: undefined, b: () => 1, c: [undefined] }, Infinity), '{"c":[null]}', 'undefined as JSON.stringify');
  t.equal(boundedJson({ toJSON: () => 'x' }, Infinity), '"x"', 'toJSON');
  const over = answerJson({ data: { a: 'x'.repeat(2000) } }, 1024);
  t.equal(over.tooLarge, true);
  t.same(JSON.parse(over.json), {
    data: null,
    errors: [{ message: 'the answer is over the limit of 1024 bytes (GRAPHQL_MAX_RESPONSE_BYTES): ask for fewer fields or smaller pages', extensions: { code: 'BRG_ERR_GQL_TOO_LARGE' } }],
  });
});

t.test('turns: one job per turn of the event loop', async (t) => {
  const turns = new Turns();
  const order: string[] = [];
  const jobs = ['a', 'b', 'c'].map((name) =>
    turns.run(async () => {
      order.push(name);
      setImmediate(() => order.push(`after ${name}`)); // the next turn: before the next job
      return name;
    }),
  );
  t.equal(turns.waiting, 3);
  t.same(await Promise.all(jobs), ['a', 'b', 'c']);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(order, ['a', 'after a', 'b', 'after b', 'c', 'after c']);
  const failing = turns.run(async () => {
    throw new Error('no');
  });
  await t.rejects(failing, /no/, 'a failing job rejects its own promise');
  t.equal(await turns.run(async () => 'next'), 'next', 'and the turns go on');
});
