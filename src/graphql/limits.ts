import {
  GraphQLError,
  Kind,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  TypeNameMetaFieldDef,
  getNamedType,
  isAbstractType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  type FieldNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
  type ValueNode,
} from 'graphql';
import { REGISTRY_LIMITS } from '../devices/registry.js';

// SPEC §5: queries are bounded before they run. The bound counts every field the answer can
// contain, on every type: aliases, fragments, inline fragments and introspection included (issue
// 13: 600 aliases of `__schema` answered 19.6 MB and held the event loop for 3.25 s, because the
// list-item count saw no list outside Query). Depth is limited too, with introspection exempt
// (GraphiQL's introspection query nests deeper than 8): its size is held by the field count.

/** `limit` arguments are clamped to this (resolvers clamp the same way). */
export const MAX_LIMIT = 1000;

/** Device.alarms answers at most this many, newest first (alarms.ts), and is counted so (listSizes). */
export const DEVICE_ALARMS = 100;

export function clampLimit(limit: number | null | undefined, fallback: number): number {
  return Math.min(MAX_LIMIT, Math.max(1, Math.floor(limit ?? fallback)));
}

/** What one document may ask for in all. */
export interface CostLimits {
  /** List items (GRAPHQL_MAX_ITEMS). */
  maxItems: number;
  /** Fields, each counted once per object it is selected on (GRAPHQL_MAX_FIELDS). */
  maxFields: number;
}

const INTROSPECTION = new Set(['__schema', '__type']);

export function depthRule(maxDepth: number): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const depth = selectionDepth(context, operation.selectionSet, new Set(), new Map());
      if (depth > maxDepth) {
        context.reportError(
          new GraphQLError(`query depth ${depth} is over the limit of ${maxDepth}`, {
            nodes: [operation],
            extensions: { code: 'BRG_ERR_GQL_DEPTH' },
          }),
        );
      }
    },
  });
}

// Each fragment is measured once and remembered: a fragment spread many times over, nested in
// others that are too, must not make the walk exponential (a 700-byte document did that).
function selectionDepth(context: ValidationContext, set: SelectionSetNode, visiting: Set<string>, known: Map<string, number>): number {
  let depth = 0;
  for (const selection of set.selections) {
    let d = 0;
    if (selection.kind === Kind.FIELD) {
      if (INTROSPECTION.has(selection.name.value)) continue;
      d = selection.selectionSet ? 1 + selectionDepth(context, selection.selectionSet, visiting, known) : 1;
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      d = selectionDepth(context, selection.selectionSet, visiting, known);
    } else {
      const name = selection.name.value;
      const fragment = context.getFragment(name);
      if (!fragment || visiting.has(name)) continue; // cycles are another rule's error
      let measured = known.get(name);
      if (measured === undefined) {
        visiting.add(name);
        measured = selectionDepth(context, fragment.selectionSet, visiting, known);
        visiting.delete(name);
        known.set(name, measured);
      }
      d = measured;
    }
    if (d > depth) depth = d;
  }
  return depth;
}

/**
 * Counts what a query could return: every field once per object it is selected on, and every list
 * item. A list field counts its `limit` argument (or its default; a variable counts as the clamp)
 * times the objects of its parent. A field with a `limit` that is no list (`devices`) gives it to
 * the page inside (`items`: `devices`, `registry`). Other lists count the size the schema gives
 * them (listSizes). Mutations are counted as queries are, on the Mutation type.
 * Every alias counts. Over either limit the query is refused.
 */
export function costRule(limits: CostLimits): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const schema = context.getSchema();
      const root =
        operation.operation === 'query'
          ? schema.getQueryType()
          : operation.operation === 'subscription'
            ? schema.getSubscriptionType()
            : schema.getMutationType();
      if (!root) return;
      const walk: Walk = { context, sizes: listSizes(schema), visiting: new Set(), known: new Map() };
      const cost = selectionCost(walk, root, operation.selectionSet, 1, NO_PAGE);
      // fractional averages (listSizes) add up to a little over the whole number they stand for
      const items = Math.ceil(cost.items - 1e-6);
      const fields = Math.ceil(cost.fields - 1e-6);
      const refuse = (message: string): void =>
        context.reportError(new GraphQLError(message, { nodes: [operation], extensions: { code: 'BRG_ERR_GQL_COST' } }));
      // negated, so that a count that is no number is refused too
      if (!(items <= limits.maxItems)) refuse(`the query could return ${items} list items, over the limit of ${limits.maxItems}`);
      if (!(fields <= limits.maxFields)) refuse(`the query could return ${fields} fields, over the limit of ${limits.maxFields}`);
    },
  });
}

interface Cost {
  items: number;
  fields: number;
}

interface Walk {
  context: ValidationContext;
  sizes: ListSizes;
  visiting: Set<string>;
  /** Each fragment's cost at a multiplier of 1, by name and context. */
  known: Map<string, Cost>;
}

/**
 * What the objects of a selection are, beyond their type: the objects of the list `types` are all
 * the schema's types, each once, so the `fields` in them are all its fields, each once (listSizes).
 * `page`: the `limit` of the field whose object this is, for the paged list in it.
 */
interface Context {
  population: Population;
  page: number | null;
}

type Population = 'types' | 'fields' | 'directives' | null;

const NO_PAGE: Context = { population: null, page: null };

/** The population of the objects of a list, by `population:Type.field` or `Type.field`. */
const POPULATIONS: Record<string, Population> = {
  '__Schema.types': 'types',
  '__Schema.directives': 'directives',
  'types:__Type.fields': 'fields',
};

type Composite = { getFields(): Record<string, GraphQLField<unknown, unknown>> };

/**
 * The cost is linear in the multiplier, so each fragment's cost is measured once (per context), at
 * a multiplier of 1, and scaled where it is spread. Sums saturate at Infinity, over any limit.
 */
function selectionCost(walk: Walk, parent: GraphQLNamedType, set: SelectionSetNode, multiplier: number, at: Context): Cost {
  const fields = isObjectType(parent) || isInterfaceType(parent) ? (parent as Composite).getFields() : {};
  const cost: Cost = { items: 0, fields: 0 };
  const add = (inner: Cost, n: number): void => {
    cost.items += times(inner.items, n);
    cost.fields += times(inner.fields, n);
  };
  for (const selection of set.selections) {
    if (selection.kind === Kind.INLINE_FRAGMENT) {
      const type = conditionType(walk, selection.typeCondition?.name.value) ?? parent;
      add(selectionCost(walk, type, selection.selectionSet, multiplier, at), 1);
      continue;
    }
    if (selection.kind === Kind.FRAGMENT_SPREAD) {
      const name = selection.name.value;
      const fragment = walk.context.getFragment(name);
      if (!fragment || walk.visiting.has(name)) continue; // unknown and cyclic fragments are other rules' errors
      const key = `${name}\u0000${at.population}\u0000${at.page}`;
      let unit = walk.known.get(key);
      if (unit === undefined) {
        walk.visiting.add(name);
        unit = selectionCost(walk, conditionType(walk, fragment.typeCondition.name.value) ?? parent, fragment.selectionSet, 1, at);
        walk.visiting.delete(name);
        walk.known.set(key, unit);
      }
      add(unit, multiplier);
      continue;
    }
    const field = fieldOf(walk.context.getSchema(), parent, fields, selection.name.value);
    if (field === undefined) continue; // an unknown field is another rule's error
    cost.fields += multiplier;
    const limit = limitOf(field, selection);
    const key = `${parent.name}.${field.name}`;
    const list = isList(field.type);
    let inner = multiplier;
    if (list) {
      const size = walk.sizes.get(`${at.population}:${key}`) ?? walk.sizes.get(key);
      inner = times(multiplier, limit ?? (size === PAGE ? at.page : size) ?? MAX_LIMIT);
      cost.items += inner;
    }
    if (selection.selectionSet && inner > 0) {
      const population = POPULATIONS[`${at.population}:${key}`] ?? POPULATIONS[key] ?? null;
      const next = { population, page: list ? null : limit };
      add(selectionCost(walk, getNamedType(field.type), selection.selectionSet, inner, next), 1);
    }
  }
  return cost;
}

/** A product that saturates: nothing times Infinity (a multiplier past 1e308) is nothing, not NaN. */
function times(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : a * b;
}

function conditionType(walk: Walk, name: string | undefined): GraphQLNamedType | undefined {
  return name === undefined ? undefined : walk.context.getSchema().getType(name);
}

/** A field of the type, the meta fields included (they are in no getFields()). */
function fieldOf(
  schema: GraphQLSchema,
  parent: GraphQLNamedType,
  fields: Record<string, GraphQLField<unknown, unknown>>,
  name: string,
): GraphQLField<unknown, unknown> | undefined {
  if (name === '__typename') return TypeNameMetaFieldDef;
  if (parent === schema.getQueryType()) {
    if (name === '__schema') return SchemaMetaFieldDef;
    if (name === '__type') return TypeMetaFieldDef;
  }
  return fields[name];
}

function isList(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

/** The `limit` a field is asked for, clamped; null for a field without one. */
function limitOf(field: GraphQLField<unknown, unknown>, node: FieldNode): number | null {
  const arg = field.args.find((a) => a.name === 'limit');
  if (arg === undefined) return null;
  const value: ValueNode | undefined = node.arguments?.find((a) => a.name.value === 'limit')?.value;
  if (value === undefined) return clampLimit(arg.defaultValue as number | undefined, MAX_LIMIT);
  if (value.kind === Kind.INT) return clampLimit(Number(value.value), MAX_LIMIT);
  return MAX_LIMIT; // a variable: it may be anything up to the clamp
}

/** A list of one page: as many items as the `limit` of the field that holds it. */
const PAGE = 'page';

/**
 * Items of the lists without a `limit`, by `Type.field`, or by `population:Type.field` where the
 * objects holding the list are known (POPULATIONS); a list in neither counts MAX_LIMIT.
 */
type ListSizes = ReadonlyMap<string, number | typeof PAGE>;

const sizesOf = new WeakMap<GraphQLSchema, ListSizes>();

/**
 * Introspection lists hold what the schema has. Where the objects are any type (`__type`, a
 * field's `type`), a list counts its largest instance: `fields` the fields of the largest type,
 * `args` the most arguments of any field. Where they are every type once (`types`), a list counts
 * its average, so that `types { fields { args } }` counts every field and argument of the schema
 * once, as the answer has them: that keeps GraphiQL's introspection query at a few thousand fields.
 * `DeviceConnection.items`, `RegistryConnection.items` and `AlarmConnection.items` hold one page:
 * the `limit` of `devices`, `registry` and `alarms`. `RegistryEntry.tags` holds at most the tags
 * an entry may have (SPEC §11: 32); `Device.alarms` the most its resolver answers (DEVICE_ALARMS).
 */
export function listSizes(schema: GraphQLSchema): ListSizes {
  const cached = sizesOf.get(schema);
  if (cached) return cached;
  const types = Object.values(schema.getTypeMap()); // what __Schema.types returns
  const directives = schema.getDirectives();
  const composites = types.filter((t) => isObjectType(t) || isInterfaceType(t)) as (Composite & { getInterfaces(): readonly unknown[] })[];
  const fields = composites.flatMap((t) => Object.values(t.getFields()));
  const counts = {
    fields: composites.map((t) => Object.keys(t.getFields()).length),
    interfaces: composites.map((t) => t.getInterfaces().length),
    possibleTypes: types.filter(isAbstractType).map((t) => schema.getPossibleTypes(t).length),
    enumValues: types.filter(isEnumType).map((t) => t.getValues().length),
    inputFields: types.filter(isInputObjectType).map((t) => Object.keys(t.getFields()).length),
    fieldArgs: fields.map((f) => f.args.length),
    directiveArgs: directives.map((d) => d.args.length),
    locations: directives.map((d) => d.locations.length),
  };
  const most = (values: number[]): number => values.reduce((a, b) => Math.max(a, b), 0);
  const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
  const average = (values: number[], over: number): number => (over === 0 ? 0 : sum(values) / over);
  const anyArgs = most([...counts.fieldArgs, ...counts.directiveArgs]);
  const sizes = new Map<string, number | typeof PAGE>([
    ['__Schema.types', types.length],
    ['__Schema.directives', directives.length],
    ['__Type.fields', most(counts.fields)],
    ['__Type.interfaces', most(counts.interfaces)],
    ['__Type.possibleTypes', most(counts.possibleTypes)],
    ['__Type.enumValues', most(counts.enumValues)],
    ['__Type.inputFields', most(counts.inputFields)],
    ['__Field.args', anyArgs],
    ['__Directive.args', anyArgs],
    ['__Directive.locations', most(counts.locations)],
    ['types:__Type.fields', average(counts.fields, types.length)],
    ['types:__Type.interfaces', average(counts.interfaces, types.length)],
    ['types:__Type.possibleTypes', average(counts.possibleTypes, types.length)],
    ['types:__Type.enumValues', average(counts.enumValues, types.length)],
    ['types:__Type.inputFields', average(counts.inputFields, types.length)],
    ['fields:__Field.args', average(counts.fieldArgs, fields.length)],
    ['directives:__Directive.args', average(counts.directiveArgs, directives.length)],
    ['directives:__Directive.locations', average(counts.locations, directives.length)],
    ['DeviceConnection.items', PAGE],
    ['RegistryConnection.items', PAGE],
    ['AlarmConnection.items', PAGE],
    ['RegistryEntry.tags', REGISTRY_LIMITS.tags],
    ['Device.alarms', DEVICE_ALARMS],
  ]);
  sizesOf.set(schema, sizes);
  return sizes;
}
