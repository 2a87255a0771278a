import {
  GraphQLError,
  Kind,
  getNamedType,
  isListType,
  isNonNullType,
  type FieldNode,
  type GraphQLField,
  type GraphQLOutputType,
  type GraphQLType,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
  type ValueNode,
} from 'graphql';

// SPEC §5: queries are bounded before they run. The schema nests only a few levels, so the
// guard that matters is cost: the list items a query could return in all. Depth is limited
// too, with introspection exempt (GraphiQL's introspection query nests deeper than 8).

/** `limit` arguments are clamped to this (resolvers clamp the same way). */
export const MAX_LIMIT = 1000;

export function clampLimit(limit: number | null | undefined, fallback: number): number {
  return Math.min(MAX_LIMIT, Math.max(1, Math.floor(limit ?? fallback)));
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
 * Counts the list items a query could return: each list field counts its `limit` argument (or
 * its default) times the items of its parent; a `limit` set by a variable counts as the most
 * it can be. Every alias counts. Over `maxItems` the query is refused.
 */
export function costRule(maxItems: number): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      const root =
        operation.operation === 'query'
          ? context.getSchema().getQueryType()
          : operation.operation === 'subscription'
            ? context.getSchema().getSubscriptionType()
            : context.getSchema().getMutationType();
      if (!root) return;
      const items = selectionCost(context, root, operation.selectionSet, 1, new Set(), new Map());
      if (items > maxItems) {
        context.reportError(
          new GraphQLError(`the query could return ${items} list items, over the limit of ${maxItems}`, {
            nodes: [operation],
            extensions: { code: 'BRG_ERR_GQL_COST' },
          }),
        );
      }
    },
  });
}

type Composite = { getFields(): Record<string, GraphQLField<unknown, unknown>> };

/**
 * The cost is linear in the multiplier, so each fragment's cost is measured once, at a multiplier
 * of 1, and scaled where it is spread. Sums saturate at Infinity, which is over any limit.
 */
function selectionCost(
  context: ValidationContext,
  parent: GraphQLType,
  set: SelectionSetNode,
  multiplier: number,
  visiting: Set<string>,
  known: Map<string, number>,
): number {
  const type = getNamedType(parent) as unknown as Partial<Composite>;
  const fields = typeof type.getFields === 'function' ? type.getFields() : {};
  let items = 0;
  for (const selection of set.selections) {
    if (selection.kind === Kind.INLINE_FRAGMENT) {
      items += selectionCost(context, parent, selection.selectionSet, multiplier, visiting, known);
      continue;
    }
    if (selection.kind === Kind.FRAGMENT_SPREAD) {
      const name = selection.name.value;
      const fragment = context.getFragment(name);
      if (!fragment || visiting.has(name)) continue;
      let unit = known.get(name);
      if (unit === undefined) {
        visiting.add(name);
        unit = selectionCost(context, parent, fragment.selectionSet, 1, visiting, known);
        visiting.delete(name);
        known.set(name, unit);
      }
      items += unit * multiplier;
      continue;
    }
    const field = fields[selection.name.value];
    if (field === undefined) continue; // an unknown field is another rule's error
    const limit = limitOf(field, selection);
    const inner = limit === null ? multiplier : multiplier * limit;
    if (isList(field.type)) items += inner;
    if (selection.selectionSet) items += selectionCost(context, field.type, selection.selectionSet, inner, visiting, known);
  }
  return items;
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
