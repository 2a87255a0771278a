import { readFileSync } from 'node:fs';
import createError from '@fastify/error';
import type { FastifyInstance, FastifyRequest, FastifySchema, HTTPMethods } from 'fastify';
import YAML from 'yaml';
import { loadSchema } from './schemas.js';

// openapi.yaml is the single source of the REST shapes: routes take their request and response
// schemas from it by operationId, so the document and the routes cannot drift apart.
// Shapes shared with ajv and the other documents live in schema/*.json; the document refers to
// them and loadOpenApi() inlines them into components.schemas.

const ROOT = new URL('../', import.meta.url);

type Json = Record<string, unknown>;

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; parameters: Record<string, Parameter> };
  [key: string]: unknown;
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  description?: string;
  schema: Json;
}

interface Operation {
  operationId: string;
  parameters?: (Parameter | { $ref: string })[];
  responses: Record<string, { content?: { 'application/json'?: { schema: Json } } }>;
}

export interface RouteSpec {
  method: HTTPMethods;
  url: string;
  schema: FastifySchema;
  preValidation?: (request: FastifyRequest) => Promise<void>;
}

const FST_ERR_VALIDATION = createError('FST_ERR_VALIDATION', '%s', 400);

/**
 * Ajv's type coercion turns `Infinity` and `1e400` into Infinity, and then skips `maximum`
 * (its generated code checks bounds only for finite numbers): `?limit=Infinity` would list every
 * device. Numbers in a query string are therefore plain decimal digits, checked before ajv.
 */
function decimalQueryNumbers(names: string[]): RouteSpec['preValidation'] {
  if (names.length === 0) return undefined;
  return async (request) => {
    const query = request.query as Record<string, unknown>;
    for (const name of names) {
      const value = query[name];
      if (value === undefined) continue;
      if (typeof value !== 'string' || !/^-?[0-9]{1,15}$/.test(value.trim())) {
        throw Object.assign(new FST_ERR_VALIDATION(`querystring/${name} must be an integer written in decimal digits`), { validation: [] });
      }
    }
  };
}

export function loadOpenApi(): OpenApiDocument {
  const doc = YAML.parse(readFileSync(new URL('openapi.yaml', ROOT), 'utf8')) as OpenApiDocument;
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    const ref = schema.$ref;
    if (typeof ref === 'string' && ref.startsWith('./schema/')) {
      const { $id: _id, $schema: _schema, ...inlined } = loadSchema(ref.slice('./schema/'.length));
      doc.components.schemas[name] = inlined;
    }
  }
  return doc;
}

/** Registers every component schema with Fastify as `Name#`, for routes and the serializer. */
export function addComponentSchemas(app: FastifyInstance, doc: OpenApiDocument): void {
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    app.addSchema({ $id: name, ...(toFastify(schema) as Json) });
  }
}

/** The method, Fastify url and schema of an operation of the document. */
export function route(doc: OpenApiDocument, operationId: string): RouteSpec {
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (operation.operationId !== operationId) continue;
      const spec: RouteSpec = { method: method.toUpperCase() as HTTPMethods, url: toFastifyPath(path), schema: schemaOf(doc, operation) };
      const numbers = parametersOf(doc, operation).filter((p) => p.in === 'query' && ['integer', 'number'].includes(p.schema.type as string));
      const check = decimalQueryNumbers(numbers.map((p) => p.name));
      return check ? { ...spec, preValidation: check } : spec;
    }
  }
  throw new Error(`openapi.yaml has no operation ${operationId}`);
}

export function toFastifyPath(path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1');
}

function parametersOf(doc: OpenApiDocument, operation: Operation): Parameter[] {
  return (operation.parameters ?? []).map((p) => ('$ref' in p ? doc.components.parameters[p.$ref.replace('#/components/parameters/', '')]! : p));
}

function schemaOf(doc: OpenApiDocument, operation: Operation): FastifySchema {
  const schema: FastifySchema = { response: {} };
  const params = parametersOf(doc, operation);
  for (const [where, key] of [['path', 'params'], ['query', 'querystring'], ['header', 'headers']] as const) {
    const list = params.filter((p) => p.in === where);
    if (list.length === 0) continue;
    // Node lower-cases header names; headers are never all listed, so others pass
    const name = (p: Parameter): string => (where === 'header' ? p.name.toLowerCase() : p.name);
    schema[key] = {
      type: 'object',
      ...(where === 'header' ? {} : { additionalProperties: false }),
      properties: Object.fromEntries(list.map((p) => [name(p), toFastify(p.schema)])),
      required: list.filter((p) => p.required).map(name),
    };
  }
  for (const [status, response] of Object.entries(operation.responses)) {
    const body = response.content?.['application/json']?.schema;
    if (body !== undefined) (schema.response as Json)[status] = toFastify(body);
  }
  return schema;
}

/** `#/components/schemas/X` → `X#`, the id addComponentSchemas() gives it. */
function toFastify(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toFastify);
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof v === 'string' ? v.replace(/^#\/components\/schemas\/(.+)$/, '$1#') : toFastify(v);
  }
  return out;
}
