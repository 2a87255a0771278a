import { GraphQLError, Kind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';

// Validation has a cost of its own. graphql's OverlappingFieldsCanBeMergedRule compares every
// two fields that answer under the same response name, their sub-fields too: quadratic in the
// document. graphql 16 stops it after 500,000 steps, but that is 100 to 250 ms of a 2-core
// machine, and a 2,000-token document with one alias repeated 330 times passed in 80 ms. So,
// before graphql validates, this walk counts the pairs that rule may compare, in linear time,
// and refuses a document with too many: real queries repeat a response name a few times at most.

/** Field pairs under one response path a document may have: a few ms of graphql's comparisons. */
export const MAX_MERGE_PAIRS = 10_000;

/** Field nodes the walk visits at most (a fragment spread under many paths is visited under each). */
export const MAX_MERGE_VISITS = 50_000;

interface PathNode {
  /** Field nodes answering at this response path. */
  count: number;
  children: Map<string, PathNode> | undefined;
  /** Fragments spread here: a second spread adds nothing (graphql collects each once). */
  spread: Set<string> | undefined;
}

/**
 * An error if the document has more than `maxPairs` pairs of fields under one response path
 * (fields of inline fragments and spread fragments in their place, as graphql merges them), or
 * is too large to count; null otherwise. Unknown and cyclic fragments are left to validation.
 */
export function mergeError(document: DocumentNode, maxPairs = MAX_MERGE_PAIRS, maxVisits = MAX_MERGE_VISITS): GraphQLError | null {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  let pairs = 0;
  let visits = 0;
  const visiting = new Set<string>();
  const walk = (set: SelectionSetNode, at: PathNode): boolean => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        if (++visits > maxVisits) return false;
        const name = selection.alias?.value ?? selection.name.value;
        at.children ??= new Map();
        let child = at.children.get(name);
        if (child === undefined) {
          child = { count: 0, children: undefined, spread: undefined };
          at.children.set(name, child);
        }
        pairs += child.count; // this field pairs with each one already there
        child.count++;
        if (pairs > maxPairs) return false;
        if (selection.selectionSet && !walk(selection.selectionSet, child)) return false;
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        if (!walk(selection.selectionSet, at)) return false;
      } else {
        const name = selection.name.value;
        const fragment = fragments.get(name);
        if (fragment === undefined || visiting.has(name) || at.spread?.has(name)) continue;
        (at.spread ??= new Set()).add(name);
        visiting.add(name);
        const ok = walk(fragment.selectionSet, at);
        visiting.delete(name);
        if (!ok) return false;
      }
    }
    return true;
  };
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    if (walk(definition.selectionSet, { count: 1, children: undefined, spread: undefined })) continue;
    const message =
      pairs > maxPairs
        ? `the document repeats response names too often: over ${maxPairs} pairs of fields to merge`
        : `the document expands to over ${maxVisits} fields (fragments spread over and over)`;
    return new GraphQLError(message, { nodes: [definition], extensions: { code: 'BRG_ERR_GQL_COST' } });
  }
  return null;
}
