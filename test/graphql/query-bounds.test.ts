import t from 'tap';
import fc from 'fast-check';
import {
  buildSchema,
  getNamedType,
  isCompositeType,
  isNonNullType,
  isObjectType,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLObjectType,
} from 'graphql';
import { SDL } from '../../src/graphql/schema.js';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { record } from '../helpers/records.js';
import { codes, countReads, get, gql, seedBig, staticCount, ts, type GqlAnswer } from './hostile.js';

// Issue 13, as a property: for any document generated from the schema (random selections, aliases
// repeated up to hundreds of times, named and inline fragments, introspection, nesting past the
// depth limit), the server either refuses it before executing anything, or answers within
// GRAPHQL_MAX_RESPONSE_BYTES; and the count it refuses by is honest: an answer never has more
// fields or list items than the count said it could.

const schema = buildSchema(SDL);
const MAX_RESPONSE_BYTES = 4_194_304; // the default
/** JSON scalar fields: their values are data, not fields. */
const JSON_FIELDS = new Set(['attributes', 'byState']);

type Gen = fc.GeneratorValue;

interface Doc {
  g: Gen;
  fragments: string[];
  aliases: number;
  /** Selections left to generate: bounds the recursion. */
  budget: number;
  /** Characters left: documents stay under the 65,536 of openapi.yaml. */
  room: number;
}

function argumentsOf(doc: Doc, field: GraphQLField<unknown, unknown>): string {
  const args: string[] = [];
  for (const arg of field.args) {
    const required = isNonNullType(arg.type) && arg.defaultValue === undefined;
    if (!required && !doc.g(fc.boolean)) continue;
    let value: string | undefined;
    if (arg.name === 'deviceId') value = doc.g(fc.constantFrom, '"big"', '"d1"', '"nope"');
    else if (arg.name === 'name') value = doc.g(fc.constantFrom, '"Device"', '"Query"', '"__Type"', '"__Schema"', '"Nope"', '"String"', '"__DirectiveLocation"');
    else if (arg.name === 'limit') value = String(doc.g(fc.constantFrom, 1, 7, 100, 1000, 5000));
    else if (arg.name === 'state') value = '"open"';
    else if (arg.name === 'silent' || arg.name === 'includeDeprecated') value = String(doc.g(fc.boolean));
    if (value !== undefined) args.push(`${arg.name}: ${value}`);
  }
  return args.length === 0 ? '' : `(${args.join(', ')})`;
}

function fieldsOf(type: GraphQLObjectType, root: boolean): GraphQLField<unknown, unknown>[] {
  const fields = Object.values(type.getFields());
  if (!root) return fields;
  const schemaField = { name: '__schema', args: [], type: schema.getType('__Schema') } as unknown as GraphQLField<unknown, unknown>;
  const typeField = { name: '__type', args: [{ name: 'name', type: schema.getType('String'), defaultValue: undefined }], type: schema.getType('__Type') };
  return [...fields, schemaField, schemaField, typeField as unknown as GraphQLField<unknown, unknown>];
}

function selectionSet(doc: Doc, type: GraphQLObjectType, depth: number, root: boolean): string {
  const parts: string[] = [];
  const count = doc.g(fc.integer, { min: 1, max: 4 });
  for (let i = 0; i < count; i++) {
    if (--doc.budget < 0) {
      parts.push('__typename');
      break;
    }
    const kind = doc.g(fc.constantFrom, 'field', 'field', 'field', 'field', 'typename', 'inline', 'fragment');
    const times = doc.g(fc.constantFrom, 1, 1, 1, 2, 3, 20, 90, 300);
    const copies = (selection: string, name: string): string => {
      const n = Math.max(1, Math.min(times, Math.floor(doc.room / (selection.length + name.length + 8))));
      const text = Array.from({ length: n }, () => (n === 1 && doc.g(fc.boolean) ? selection : `x${doc.aliases++}_${name}: ${selection}`)).join(' ');
      doc.room -= text.length;
      return text;
    };
    if (kind === 'typename') {
      parts.push(copies('__typename', '__typename'));
    } else if (kind === 'inline') {
      parts.push(`... ${doc.g(fc.boolean) ? `on ${type.name} ` : ''}{ ${selectionSet(doc, type, depth, root)} }`);
    } else if (kind === 'fragment') {
      const name = `F${doc.fragments.length}`;
      doc.fragments.push('');
      doc.fragments[Number(name.slice(1))] = `fragment ${name} on ${type.name} { ${selectionSet(doc, type, depth, root)} }`;
      parts.push(`...${name}`);
    } else {
      const fields = fieldsOf(type, root);
      const field = fields[doc.g(fc.nat, { max: fields.length - 1 })]!; // an index: fast-check compares the values it picks
      const named: GraphQLNamedType = getNamedType(field.type);
      let sub = '';
      if (isCompositeType(named)) {
        sub = depth > 0 && isObjectType(named) ? ` { ${selectionSet(doc, named, depth - 1, false)} }` : ' { __typename }';
      }
      parts.push(copies(`${field.name}${argumentsOf(doc, field)}${sub}`, field.name));
    }
  }
  return parts.join(' ');
}

const documents = fc.gen().map((g) => {
  const doc: Doc = { g, fragments: [], aliases: 0, budget: g(fc.integer, { min: 3, max: 60 }), room: 60_000 };
  const body = selectionSet(doc, schema.getQueryType()!, g(fc.integer, { min: 0, max: 10 }), true);
  return new Document(`query Q { ${body} } ${doc.fragments.join(' ')}`, g(fc.integer, { min: 0, max: 4 }) === 0);
});

class Document {
  constructor(
    readonly query: string,
    readonly get: boolean,
  ) {}

  /** How fast-check prints a counterexample: a document can be 60,000 characters. */
  [fc.toStringMethod](): string {
    return `${this.get ? 'GET' : 'POST'} (${this.query.length} characters) ${this.query.slice(0, 2000)}`;
  }
}

/** What the answer has: each key of each object a field, each element of each list an item. */
function actualCount(value: unknown, count = { items: 0, fields: 0 }): { items: number; fields: number } {
  if (Array.isArray(value)) {
    count.items += value.length;
    for (const element of value) actualCount(element, count);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, v] of Object.entries(value)) {
      count.fields++;
      if (!JSON_FIELDS.has(key.replace(/^x\d+_/, ''))) actualCount(v, count);
    }
  }
  return count;
}

t.test('any document is refused before it runs, or answered within GRAPHQL_MAX_RESPONSE_BYTES, and counted honestly', async (t) => {
  const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
  await app.ready();
  await seedBig(app, 'big');
  for (let i = 0; i < 200; i++) await app.devices.accept(record({ deviceId: `d${i}`, state: i % 2 ? 'open' : 'close', timestamp: ts }), Date.now());
  for (let i = 0; i < 20; i++) await seedBig(app, `e${i}`);
  const reads = countReads(app);
  const seen = { refused: 0, answered: 0, tooLarge: 0 };
  await fc.assert(
    fc.asyncProperty(documents, async ({ query, get: viaGet }) => {
      if (query.length > 65_536) throw new Error(`the generator made ${query.length} characters`);
      const before = reads.reads;
      const res: GqlAnswer = viaGet ? await get(app, { query }) : await gql(app, query);
      if (res.bytes > MAX_RESPONSE_BYTES) throw new Error(`${res.bytes} bytes answered`);
      if (res.status === 400) {
        if (res.body.data !== null || !res.body.errors?.length) throw new Error(`a 400 without errors: ${JSON.stringify(res.body)}`);
        if (codes(res).includes('BRG_ERR_GQL_TOO_LARGE')) {
          seen.tooLarge++;
          return;
        }
        if (reads.reads !== before) throw new Error(`refused after reading the store: ${res.body.errors[0]?.message}`);
        seen.refused++;
        return;
      }
      if (res.status !== 200) throw new Error(`status ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
      seen.answered++;
      const bound = staticCount(schema, query);
      const actual = actualCount(res.body.data);
      if (actual.fields > bound.fields || actual.items > bound.items) {
        throw new Error(`the answer has ${JSON.stringify(actual)}, the count said at most ${JSON.stringify(bound)}`);
      }
    }),
    { numRuns: 500 },
  );
  t.comment(JSON.stringify(seen));
  t.ok(seen.refused > 10 && seen.answered > 10, `both kinds happen: ${JSON.stringify(seen)}`);
});
