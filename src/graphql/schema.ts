import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { checkEntry } from '../devices/registry.js';
import type { RegistryEntry } from '../devices/types.js';
import { BRG_ERR_INVALID_ENTRY } from '../errors.js';
import { collectStats } from '../stats.js';
import { alarmResolvers } from './alarms.js';
import { clampLimit } from './limits.js';

// The SDL lives in schema/schema.graphql; the resolvers read the store, and the mutations write
// the registry, as REST does (http/registry.ts): the same check of the key, the same checkEntry.
// The alarms' resolvers are in alarms.ts.

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

/** What every operation runs with (run.ts): the request it came with. */
export interface GraphqlContext {
  /**
   * POST or GET /graphql's request; for graphql-ws, the upgrade request, whose `apiKey` is the
   * connection's key (the one of connection_init's payload, or the upgrade's: plugin.ts).
   */
  request: FastifyRequest;
}

interface DevicesArgs {
  state?: string | null;
  silent?: boolean | null;
  zone?: string | null;
  q?: string | null;
  limit?: number | null;
  cursor?: string | null;
}

interface RegistryArgs {
  zone?: string | null;
  seen?: boolean | null;
  limit?: number | null;
  cursor?: string | null;
}

const after = (cursor: string | null | undefined): string | undefined => (cursor ? decodeCursor(cursor) : undefined);
const nextCursor = (lastId: string | null): string | null => (lastId === null ? null : encodeCursor(lastId));

export function resolvers(app: FastifyInstance, leaves: WeakSet<object>) {
  const store = () => app.devices.store;
  const alarms = alarmResolvers(app);
  return {
    JSON: jsonScalar(leaves),
    Device: alarms.Device,
    Query: {
      device: async (_: unknown, args: { deviceId: string }) => (await store().get(args.deviceId)) ?? null,
      devices: async (_: unknown, args: DevicesArgs) => {
        const page = await store().list({
          state: args.state ?? undefined,
          silent: args.silent ?? undefined,
          zone: args.zone ?? undefined,
          q: args.q ?? undefined,
          after: after(args.cursor),
          limit: clampLimit(args.limit, 100),
        });
        return { items: page.items, nextCursor: nextCursor(page.lastId), total: page.total };
      },
      history: async (_: unknown, args: { deviceId: string; limit?: number | null }) =>
        (await store().history(args.deviceId, clampLimit(args.limit, 50))) ?? [],
      stats: () => collectStats(app),
      registry: async (_: unknown, args: RegistryArgs) => {
        const page = await store().listEntries({
          zone: args.zone ?? undefined,
          seen: args.seen ?? undefined,
          after: after(args.cursor),
          limit: clampLimit(args.limit, 100),
        });
        return { items: page.items.map((item) => item.entry), nextCursor: nextCursor(page.lastId), total: page.total };
      },
      ...alarms.Query,
    },
    // SPEC §9/§11: every write is checked first (a key of API_READ_KEYS: BRG_ERR_READ_ONLY_KEY, a
    // foreign Origin: BRG_ERR_WRITE_ORIGIN_FORBIDDEN); its error code reaches `extensions` (run.ts)
    Mutation: {
      setDeviceMeta: async (_: unknown, args: { deviceId: string; meta: unknown }, context: GraphqlContext): Promise<RegistryEntry> => {
        app.checkWrite(context.request);
        const checked = checkEntry(args.deviceId, args.meta);
        if (!checked.ok) throw new BRG_ERR_INVALID_ENTRY(checked.reason);
        await app.devices.setMeta(checked.entry);
        return checked.entry;
      },
      deleteDeviceMeta: async (_: unknown, args: { deviceId: string }, context: GraphqlContext): Promise<boolean> => {
        app.checkWrite(context.request);
        return app.devices.deleteMeta(args.deviceId);
      },
      ...alarms.Mutation,
    },
  };
}
