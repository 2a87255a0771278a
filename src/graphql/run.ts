import { BRG_ERR_STORE_UNAVAILABLE } from '../errors.js';
import {
  GraphQLError,
  execute,
  getOperationAST,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ValidationRule,
} from 'graphql';
import { getVariableValues } from 'graphql/execution/values.js';
import { answerJson } from './answer.js';
import { mergeError } from './merges.js';
import { Turns } from './turns.js';

// One way from a GraphQL request to its answer, for POST and GET /graphql and for graphql-ws
// `subscribe` messages alike, so that the same rules hold on every transport (issue 13): the
// request's shape; parse (a token bound), validate (the work of validation, merges.ts; depth and
// cost, limits.ts) and coerce the variables; for queries, execute; answer within a byte budget
// (answer.ts). Each of the last three phases is bounded, and takes a turn of its own (turns.ts).

/** A GraphQL request whose members have the types GraphQL over HTTP gives them. */
export interface GraphqlRequest {
  query: string;
  variables: Record<string, unknown> | null;
  operationName: string | null;
}

/** Characters of a query, as openapi.yaml says (GraphiQL's introspection query has about 2,000). */
export const MAX_QUERY_LENGTH = 65_536;

/** The extension code of a request that is no GraphQL request (SPEC §5: 400, below error level). */
export const BAD_REQUEST = 'BRG_ERR_GQL_REQUEST';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The request in a body (POST) or a query string (GET, where `variables` is JSON text), or why it
 * is none. `variables` may be JSON text in a POST body too, as some clients send it; either way
 * it must be an object or null (GraphQL over HTTP). `extensions` is accepted and ignored.
 */
export function readRequest(body: unknown): GraphqlRequest | string {
  if (Array.isArray(body)) return 'batched queries are not supported: send one request per query';
  if (!isObject(body)) return 'the body must be a JSON object: {"query": …, "variables": {…}, "operationName": …}';
  if (typeof body.query !== 'string' || body.query.trim() === '') return 'a query is required (a non-empty string)';
  if (body.query.length > MAX_QUERY_LENGTH) return `the query is over ${MAX_QUERY_LENGTH} characters`;
  let variables: unknown = body.variables ?? null;
  if (variables === '') variables = null; // `?variables=` with nothing after it
  if (typeof variables === 'string') {
    try {
      variables = JSON.parse(variables) as unknown;
    } catch {
      return 'variables must be a JSON object';
    }
  }
  if (variables !== null && !isObject(variables)) return 'variables must be a JSON object or null';
  const operationName = body.operationName ?? null;
  if (operationName !== null && typeof operationName !== 'string') return 'operationName must be a string or null';
  if (body.extensions !== undefined && body.extensions !== null && !isObject(body.extensions)) {
    return 'extensions must be a JSON object or null';
  }
  return { query: body.query, variables, operationName };
}

/** A request that parsed and validated, with its one operation and coerced variables. */
export interface Prepared {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  operationName: string | undefined;
  variables: Record<string, unknown>;
}

export interface RunnerOptions {
  schema: GraphQLSchema;
  /** Validation rules beyond graphql's own: depth and cost (limits.ts). */
  rules: readonly ValidationRule[];
  maxTokens: number;
  /** GRAPHQL_MAX_RESPONSE_BYTES: the most an answer may have. */
  maxResponseBytes: number;
  /** Values of the JSON scalar met in answers (schema.ts), written natively (answer.ts). */
  leaves: WeakSet<object>;
  /** An execution that failed outside the resolvers: a bug, logged at error level. */
  onError(err: unknown): void;
}

export interface Answer {
  /** The ExecutionResult's JSON. */
  json: string;
  /** The answer was over the byte budget and is an error instead (BRG_ERR_GQL_TOO_LARGE). */
  tooLarge: boolean;
}

export class GraphqlRunner {
  readonly #rules: readonly ValidationRule[];
  readonly #turns = new Turns();

  constructor(readonly options: RunnerOptions) {
    this.#rules = [...specifiedRules, ...options.rules];
  }

  /** The request made ready to run, or why it cannot run, on a turn of its own: nothing is executed. */
  prepare(request: GraphqlRequest): Promise<Prepared | readonly GraphQLError[]> {
    return this.#turns.run(async () => this.#prepare(request));
  }

  #prepare(request: GraphqlRequest): Prepared | readonly GraphQLError[] {
    const { schema } = this.options;
    let document: DocumentNode;
    try {
      document = parse(request.query, { maxTokens: this.options.maxTokens });
    } catch (err) {
      return [err instanceof GraphQLError ? err : new GraphQLError((err as Error).message)];
    }
    const merges = mergeError(document); // before graphql's validation, whose cost it bounds
    if (merges) return [merges];
    const errors = validate(schema, document, this.#rules);
    if (errors.length > 0) return errors;
    const operationName = request.operationName ?? undefined;
    const operation = getOperationAST(document, operationName);
    if (!operation) {
      return [new GraphQLError(operationName === undefined ? 'the document has several operations: name one with operationName' : `the document has no operation named "${operationName}"`)];
    }
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], request.variables ?? {});
    if (coerced.errors) return coerced.errors;
    return { document, operation, operationName, variables: coerced.coerced as Record<string, unknown> };
  }

  /**
   * Executes a prepared query or mutation, and answers within the byte budget: each on a turn of
   * its own, so that a turn of the loop holds one of them, not their sum. `context` is what the
   * resolvers get (schema.ts GraphqlContext: the request, whose key a mutation checks).
   */
  async run(prepared: Prepared, context: object): Promise<Answer> {
    const result = await this.#turns.run(async (): Promise<ExecutionResult> => {
      try {
        const executed = await execute({
          schema: this.options.schema,
          document: prepared.document,
          operationName: prepared.operationName,
          variableValues: prepared.variables,
          contextValue: context,
        });
        return publicResult(executed, this.options.onError);
      } catch (err) {
        this.options.onError(err);
        return { data: null, errors: [new GraphQLError('internal error')] };
      }
    });
    return this.#turns.run(async () => answerJson(result, this.options.maxResponseBytes, this.options.leaves));
  }
}

/**
 * SPEC §9: no internal detail leaves the service. An error a resolver threw on purpose (a 4xx,
 * such as an invalid cursor) keeps its message, and its code (src/errors.ts: BRG_ERR_INVALID_CURSOR,
 * BRG_ERR_READ_ONLY_KEY, BRG_ERR_INVALID_ENTRY) as `extensions.code`, the code REST answers with;
 * any other says only "internal error", and is given to `onError` (a failing store is worth an
 * error line; a bad cursor is not).
 */
export function publicResult(result: ExecutionResult, onError: (err: unknown) => void): ExecutionResult {
  if (!result.errors) return result;
  return {
    ...result,
    errors: result.errors.map((error) => {
      const original = error.originalError as { statusCode?: number; code?: unknown; name?: string } | undefined;
      if (original?.name === 'StoreUnavailableError') {
        // SPEC §8: Redis away; the code REST answers 503 with, and no internal detail
        const unavailable = new BRG_ERR_STORE_UNAVAILABLE();
        return new GraphQLError(unavailable.message, { nodes: error.nodes, path: error.path, extensions: { code: unavailable.code } });
      }
      const status = original?.statusCode;
      if (original && !(status !== undefined && status >= 400 && status < 500)) {
        onError(original);
        return new GraphQLError('internal error', { nodes: error.nodes, path: error.path });
      }
      if (original && typeof original.code === 'string' && error.extensions.code === undefined) {
        return new GraphQLError(error.message, {
          nodes: error.nodes,
          path: error.path,
          originalError: error.originalError,
          extensions: { ...error.extensions, code: original.code },
        });
      }
      return error;
    }),
  };
}

/** GraphQL's error shape for errors found before execution. */
export function requestErrors(errors: readonly GraphQLError[]): { data: null; errors: unknown[] } {
  return { data: null, errors: errors.map((e) => e.toJSON()) };
}
