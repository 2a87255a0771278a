import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { collectStats } from '../stats.js';
import { clampLimit } from './limits.js';

// The SDL lives in schema/schema.graphql; the resolvers read the store, as REST does.

export const SDL = readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8');

function literal(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.LIST:
      return node.values.map(literal);
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value)]));
    default:
      return null;
  }
}

/**
 * Any JSON value. Objects it answers are added to `leaves`, so that an answer writes them with
 * JSON.stringify once however often a query repeats them (answer.ts).
 */
function jsonScalar(leaves: WeakSet<object>): GraphQLScalarType {
  return new GraphQLScalarType({
    name: 'JSON',
    serialize: (value) => {
      if (typeof value === 'object' && value !== null) leaves.add(value);
      return value;
    },
    parseValue: (value) => value,
    parseLiteral: literal,
  });
}

interface DevicesArgs {
  state?: string | null;
  silent?: boolean | null;
  limit?: number | null;
  cursor?: string | null;
}

export function resolvers(app: FastifyInstance, leaves: WeakSet<object>) {
  const store = () => app.devices.store;
  return {
    JSON: jsonScalar(leaves),
    Query: {
      device: async (_: unknown, args: { deviceId: string }) => (await store().get(args.deviceId)) ?? null,
      devices: async (_: unknown, args: DevicesArgs) => {
        const page = await store().list({
          state: args.state ?? undefined,
          silent: args.silent ?? undefined,
          after: args.cursor ? decodeCursor(args.cursor) : undefined,
          limit: clampLimit(args.limit, 100),
        });
        return { items: page.items, nextCursor: page.lastId === null ? null : encodeCursor(page.lastId), total: page.total };
      },
      history: async (_: unknown, args: { deviceId: string; limit?: number | null }) =>
        (await store().history(args.deviceId, clampLimit(args.limit, 50))) ?? [],
      stats: () => collectStats(app),
    },
  };
}
