import { GraphQLError, type ExecutionResult } from 'graphql';

// SPEC §5: the answer's size is bounded too. The field count (limits.ts) bounds the work of a
// query, not its bytes: an alias repeated 300 times over a device with 64 KB of attributes is 300
// fields and 19.7 MB (issue 13), and an alias name is as long as the document lets it be. So the
// answer is serialized here with a byte budget, and stops as soon as it is over it.

/** Thrown inside the walk when the budget is spent. */
const OVER = Symbol('over');

/**
 * JSON of `value` (JSON.stringify's output for the plain data an execution returns), or null when
 * it is over `maxBytes` UTF-8 bytes. The work is bounded by the budget and the number of values
 * walked, not by the value: `leaves` are objects that hold no GraphQL fields (values of the JSON
 * scalar, each as large as one MQTT message at most), written by JSON.stringify once per walk
 * however often they are repeated.
 */
export function boundedJson(value: unknown, maxBytes: number, leaves?: WeakSet<object>): string | null {
  const out = new Writer(maxBytes, leaves);
  try {
    out.value(value);
  } catch (err) {
    if (err === OVER) return null;
    throw err;
  }
  const json = out.text;
  // the walk counted UTF-16 units: at most the bytes, so a text under it may still be over in UTF-8
  return json.length * 3 <= maxBytes || Buffer.byteLength(json) <= maxBytes ? json : null;
}

class Writer {
  text = '';
  /** The JSON of each leaf written so far. */
  readonly #written = new Map<object, string>();
  constructor(
    private readonly maxBytes: number,
    private readonly leaves: WeakSet<object> | undefined,
  ) {}

  #push(piece: string): void {
    this.text += piece;
    if (this.text.length > this.maxBytes) throw OVER;
  }

  value(value: unknown): void {
    switch (typeof value) {
      case 'string':
        return this.#push(JSON.stringify(value));
      case 'number':
        return this.#push(Number.isFinite(value) ? String(value) : 'null');
      case 'boolean':
        return this.#push(value ? 'true' : 'false');
      case 'object':
        if (value === null) return this.#push('null');
        if (this.leaves?.has(value)) return this.#leaf(value);
        if (Array.isArray(value)) return this.#array(value);
        if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
          return this.value((value as { toJSON(): unknown }).toJSON());
        }
        return this.#object(value as Record<string, unknown>);
      case 'bigint':
        throw new TypeError('a bigint is no JSON'); // as JSON.stringify
      default:
        return this.#push('null'); // undefined, functions, symbols: only where JSON.stringify says null (arrays)
    }
  }

  #leaf(value: object): void {
    let json = this.#written.get(value);
    if (json === undefined) {
      json = JSON.stringify(value);
      this.#written.set(value, json);
    }
    this.#push(json);
  }

  #array(list: readonly unknown[]): void {
    this.#push('[');
    for (let i = 0; i < list.length; i++) {
      if (i > 0) this.#push(',');
      this.value(list[i]);
    }
    this.#push(']');
  }

  #object(object: Record<string, unknown>): void {
    this.#push('{');
    let first = true;
    for (const key in object) {
      if (!Object.hasOwn(object, key)) continue;
      const v = object[key];
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      this.#push(first ? `${JSON.stringify(key)}:` : `,${JSON.stringify(key)}:`);
      first = false;
      this.value(v);
    }
    this.#push('}');
  }
}

export const TOO_LARGE = 'BRG_ERR_GQL_TOO_LARGE';

/** The error an answer over the budget is replaced with. */
export function tooLarge(maxBytes: number): GraphQLError {
  return new GraphQLError(`the answer is over the limit of ${maxBytes} bytes (GRAPHQL_MAX_RESPONSE_BYTES): ask for fewer fields or smaller pages`, {
    extensions: { code: TOO_LARGE },
  });
}

/** An execution result as JSON within the budget, or the JSON of the error that replaces it. */
export function answerJson(result: ExecutionResult, maxBytes: number, leaves?: WeakSet<object>): { json: string; tooLarge: boolean } {
  const json = boundedJson(result, maxBytes, leaves);
  if (json !== null) return { json, tooLarge: false };
  return { json: JSON.stringify({ data: null, errors: [tooLarge(maxBytes).toJSON()] }), tooLarge: true };
}
