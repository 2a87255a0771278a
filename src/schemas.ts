import { readFileSync } from 'node:fs';

// The shapes of schema/*.json, for ajv, fast-json-stringify and openapi.yaml alike. A schema may
// refer to another file by `"$ref": "./x.schema.json"` (as @asyncapi/parser resolves it too);
// loadSchema() inlines it, so a shape is written once and each consumer gets one self-contained
// schema. `"anyOf": [{"type": "null"}, {"$ref": "./x.schema.json"}]` becomes x with `null` among
// its types: fast-json-stringify serializes a nullable type directly, where an anyOf would make
// it validate each value against the branches first.

const SCHEMAS = new URL('../schema/', import.meta.url);

type Json = Record<string, unknown>;

/** schema/<file> with its file references inlined; `$id` and `$schema` kept only at the top. */
export function loadSchema(file: string): Json {
  return inline(JSON.parse(readFileSync(new URL(file, SCHEMAS), 'utf8')) as Json, true);
}

function inline(value: Json, top: boolean): Json {
  const nullable = nullableRef(value);
  if (nullable !== null) {
    const { anyOf: _anyOf, ...rest } = value;
    const { $id: _id, $schema: _schema, ...referenced } = loadSchema(nullable);
    return { ...referenced, ...inline(rest, false), type: [referenced.type, 'null'] };
  }
  const out: Json = {};
  const ref = value.$ref;
  if (typeof ref === 'string' && ref.startsWith('./')) {
    const { $id: _id, $schema: _schema, ...referenced } = loadSchema(ref.slice(2));
    Object.assign(out, referenced);
  }
  for (const [key, v] of Object.entries(value)) {
    if (key === '$ref' && typeof v === 'string' && v.startsWith('./')) continue;
    if (!top && (key === '$id' || key === '$schema')) continue;
    out[key] = typeof v === 'object' && v !== null && !Array.isArray(v) ? inline(v as Json, false) : v;
  }
  return out;
}

/** The file of `anyOf: [{type: null}, {$ref: "./file"}]`, or null for any other schema. */
function nullableRef(value: Json): string | null {
  const branches = value.anyOf;
  if (!Array.isArray(branches) || branches.length !== 2) return null;
  const [a, b] = branches as Json[];
  if (a?.type !== 'null' || Object.keys(a).length !== 1) return null;
  const ref = b?.$ref;
  return typeof ref === 'string' && ref.startsWith('./') && Object.keys(b!).length === 1 ? ref.slice(2) : null;
}
