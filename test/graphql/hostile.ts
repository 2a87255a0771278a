import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import type { Test } from 'tap';
import { getIntrospectionQuery, parse, validate, type GraphQLSchema } from 'graphql';
import { costRule } from '../../src/graphql/limits.js';
import { withTimeout } from '../helpers/app.js';
import { record } from '../helpers/records.js';

// Shared by the tests of issue 13: hostile GraphQL documents, seeding, and a raw graphql-ws client
// for the messages the graphql-ws library refuses to send.

export const ts = Math.floor(Date.now() / 1000);

export interface GqlAnswer {
  status: number;
  bytes: number;
  body: { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: { code?: string } }[] };
}

/** POST /graphql with a raw JSON body. */
export async function post(app: FastifyInstance, payload: string): Promise<GqlAnswer> {
  const res = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' }, payload });
  return { status: res.statusCode, bytes: res.rawPayload.length, body: res.json() };
}

export function gql(app: FastifyInstance, query: string, extra: Record<string, unknown> = {}): Promise<GqlAnswer> {
  return post(app, JSON.stringify({ query, ...extra }));
}

export async function get(app: FastifyInstance, query: Record<string, string>): Promise<GqlAnswer> {
  const res = await app.inject({ method: 'GET', url: '/graphql', query });
  return { status: res.statusCode, bytes: res.rawPayload.length, body: res.json() };
}

export const codes = (answer: GqlAnswer): (string | undefined)[] => (answer.body.errors ?? []).map((e) => e.extensions?.code);

/** `n` aliased copies of `selection`, each under its own alias. */
export function aliases(n: number, selection: string, prefix = 'a'): string {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}: ${selection}`).join(' ');
}

/** The document: 600 aliases of `__schema { ...S }`, S a two-level introspection fragment. */
export const SCHEMA_ALIASES = `{ ${aliases(600, '__schema { ...S }')} } fragment S on __Schema { types { name kind fields { name type { name kind } } } }`;

/** GraphiQL 3's introspection (@graphiql/react useIntrospectionQuery), with and without subscriptionType. */
export function graphiqlQueries(): { name: string; query: string; operationName?: string }[] {
  const graphiql = getIntrospectionQuery({ inputValueDeprecation: true, schemaDescription: true });
  return [
    { name: "graphql's getIntrospectionQuery()", query: getIntrospectionQuery() },
    { name: 'GraphiQL 3', query: graphiql, operationName: 'IntrospectionQuery' },
    { name: 'GraphiQL 3 without subscriptions', query: graphiql.replace('subscriptionType { name }', ''), operationName: 'IntrospectionQuery' },
    {
      name: 'every option of getIntrospectionQuery',
      query: getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true, oneOf: true } as never),
    },
  ];
}

/** 64 KiB of attributes, in many small values: the slowest kind to serialize. */
export function bigAttributes(deviceId: string): Record<string, unknown> {
  const attributes: Record<string, unknown> = { DeviceID: deviceId, State: 'open', Timestamp: ts };
  let length = JSON.stringify(attributes).length;
  for (let i = 0; length < 64 * 1024; i++) {
    const value = i % 2 === 0 ? i : `v${i}`;
    attributes[`k${i}`] = value;
    length += JSON.stringify(`k${i}`).length + JSON.stringify(value).length + 2; // "key":value,
  }
  return attributes;
}

export async function seedBig(app: FastifyInstance, deviceId = 'big'): Promise<void> {
  await app.devices.accept(record({ deviceId, state: 'open', timestamp: ts, attributes: bigAttributes(deviceId) }), Date.now());
}

/** Counts the store reads, to tell a refused document (none) from an executed one. */
export function countReads(app: FastifyInstance): { readonly reads: number } {
  const store = app.devices.store;
  const counter = { reads: 0 };
  const get = store.get.bind(store);
  const list = store.list.bind(store);
  const history = store.history.bind(store);
  store.get = (...args) => {
    counter.reads++;
    return get(...args);
  };
  store.list = (...args) => {
    counter.reads++;
    return list(...args);
  };
  store.history = (...args) => {
    counter.reads++;
    return history(...args);
  };
  return counter;
}

/** A graphql-ws connection over a raw socket, acknowledged: send any text, read what comes back. */
export async function rawGqlWs(t: Test, port: number) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
  t.teardown(() => socket.terminate());
  const frames: Record<string, unknown>[] = [];
  let wake = (): void => {};
  let closed: { code: number; reason: string } | null = null;
  socket.on('message', (data) => {
    frames.push(JSON.parse(data.toString()) as Record<string, unknown>);
    wake();
  });
  socket.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
    wake();
  });
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  /** The next frame matching `match`, or the close if the socket closes first. */
  const next = (match: (frame: Record<string, unknown>) => boolean, what: string) =>
    withTimeout(
      new Promise<Record<string, unknown> | { closed: { code: number; reason: string } }>((resolve) => {
        const check = (): void => {
          const found = frames.find(match);
          if (found) {
            frames.splice(frames.indexOf(found), 1);
            resolve(found);
          } else if (closed) resolve({ closed });
        };
        wake = check;
        check();
      }),
      10_000,
      () => what,
    );
  socket.send('{"type":"connection_init"}');
  await next((f) => f.type === 'connection_ack', 'connection_ack');
  return {
    socket,
    send: (text: string) => socket.send(text),
    next,
    /** The `next` or `error` message of operation `id`. */
    answer: (id: string) => next((f) => f.id === id && (f.type === 'next' || f.type === 'error'), `the answer of ${id}`),
  };
}

/** What the cost rule says a document could return (it tells the counts when the limits are 0). */
export function staticCount(schema: GraphQLSchema, query: string): { items: number; fields: number } {
  const messages = validate(schema, parse(query), [costRule({ maxItems: 0, maxFields: 0 })]).map((e) => e.message);
  const number = (re: RegExp): number => Number(messages.map((m) => re.exec(m)?.[1]).find((n) => n !== undefined) ?? 0);
  return { items: number(/return (\d+|Infinity) list items/), fields: number(/return (\d+|Infinity) fields/) };
}
