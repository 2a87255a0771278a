import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

// Holds real frames to the schemas of asyncapi.yaml (SPEC §5: "the tests hold real frames to its
// schemas"). Synchronous, so any test can call it inline: the document is read once at module load,
// its $refs (internal and ./schema/*.json) are inlined into self-contained schemas, and each
// message's validator is compiled once, on first use.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ASYNCAPI_PATH = resolve(ROOT, 'asyncapi.yaml');

export type FrameName =
  | 'mqttMessage'
  | 'wsSnapshot'
  | 'wsUpdate'
  | 'wsSilent'
  | 'wsMeta'
  | 'wsAlarm'
  | 'wsError'
  | 'wsSubscribe'
  | 'sseUpdate'
  | 'sseSilent'
  | 'sseMeta'
  | 'sseAlarm'
  | 'sseReset'
  | 'webhook'
  | 'webhookAlarm';

/** Each frame's message in asyncapi.yaml (`components.messages`): the one table to change when a name moves. */
export const FRAME_MESSAGES: Readonly<Record<FrameName, string>> = {
  mqttMessage: 'mqttMessage',
  wsSnapshot: 'wsSnapshot',
  wsUpdate: 'wsUpdate',
  wsMeta: 'wsMeta',
  sseMeta: 'sseMeta',
  wsAlarm: 'wsAlarm',
  sseAlarm: 'sseAlarm',
  webhookAlarm: 'webhookAlarm',
  wsSilent: 'wsSilent',
  wsError: 'wsError',
  wsSubscribe: 'wsSubscribe',
  sseUpdate: 'sseUpdate',
  sseSilent: 'sseSilent',
  sseReset: 'sseReset',
  webhook: 'webhook',
};

type Json = Record<string, unknown>;

const documents = new Map<string, unknown>();

function load(file: string): unknown {
  let doc = documents.get(file);
  if (doc === undefined) {
    const text = readFileSync(file, 'utf8');
    doc = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
    documents.set(file, doc);
  }
  return doc;
}

const asyncapi = load(ASYNCAPI_PATH) as { components?: { messages?: Record<string, Json> } };

/** RFC 6901 */
function pointerGet(doc: unknown, pointer: string, ref: string): unknown {
  let node = doc;
  if (pointer === '' || pointer === '/') return node;
  for (const raw of pointer.slice(1).split('/')) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) {
      throw new Error(`$ref ${ref} does not resolve`);
    }
    node = (node as Json)[key];
  }
  return node;
}

/**
 * A copy of `node` with every $ref replaced by its target, relative files read from disk. The
 * targets' `$id` and `$schema` are dropped: once inlined, `"$id": "device"` would change ajv's base
 * URI and collide between two schemas that both embed a Device.
 */
function inline(node: unknown, file: string, chain: readonly string[]): unknown {
  if (Array.isArray(node)) return node.map((item) => inline(item, file, chain));
  if (node === null || typeof node !== 'object') return node;
  const obj = node as Json;
  if (typeof obj.$ref === 'string') {
    // draft-07 and AsyncAPI 3: keywords beside $ref are ignored
    const hash = obj.$ref.indexOf('#');
    const path = hash === -1 ? obj.$ref : obj.$ref.slice(0, hash);
    const pointer = hash === -1 ? '' : obj.$ref.slice(hash + 1);
    const target = path === '' ? file : resolve(dirname(file), path);
    const key = `${target}#${pointer}`;
    if (chain.includes(key)) throw new Error(`circular $ref: ${[...chain, key].join(' → ')}`);
    const resolved = inline(pointerGet(load(target), pointer, obj.$ref), target, [...chain, key]);
    if (resolved === null || typeof resolved !== 'object' || Array.isArray(resolved)) return resolved;
    const { $id: _id, $schema: _schema, ...rest } = resolved as Json;
    return rest;
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(obj)) out[k] = inline(v, file, chain);
  return out;
}

// strict: false because AsyncAPI schemas may carry keywords ajv does not know (x-…, discriminator)
// verbose: errors carry their schema, whose description explains a failed `not`
const ajv = new Ajv({ strict: false, allErrors: true, verbose: true });
addFormats.default(ajv);
const validators = new Map<string, ValidateFunction>();

function message(id: string): Json {
  const msg = asyncapi.components?.messages?.[id];
  if (msg === undefined) throw new Error(`asyncapi.yaml has no components.messages.${id}`);
  return inline(msg, ASYNCAPI_PATH, []) as Json;
}

function validator(messageId: string, part: 'payload' | 'headers'): ValidateFunction {
  const key = `${messageId}/${part}`;
  let validate = validators.get(key);
  if (validate === undefined) {
    const schema = message(messageId)[part];
    if (schema === undefined) throw new Error(`components.messages.${messageId} has no ${part} schema`);
    validate = ajv.compile(schema as Json);
    validators.set(key, validate);
  }
  return validate;
}

function describe(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const where = e.instancePath === '' ? '(root)' : e.instancePath;
    const description = (e.parentSchema as Json | undefined)?.description;
    if (e.keyword === 'not' && typeof description === 'string') return `${where} fails "${description}"`;
    let detail = '';
    if (e.keyword === 'additionalProperties') detail = `: ${String(e.params.additionalProperty)}`;
    else if (e.keyword === 'const') detail = `: ${JSON.stringify(e.params.allowedValue)}`;
    else if (e.keyword === 'enum') detail = `: ${JSON.stringify(e.params.allowedValues)}`;
    return `${where} ${e.message ?? e.keyword}${detail}`;
  });
}

/** Errors of `value` against the payload or headers schema of a message of asyncapi.yaml; [] when it matches. */
export function checkMessage(messageId: string, part: 'payload' | 'headers', value: unknown): string[] {
  const validate = validator(messageId, part);
  return validate(value) ? [] : describe(validate.errors);
}

/**
 * Errors of `frame` against the payload schema of that message in asyncapi.yaml; [] when it matches.
 * Synchronous. For SSE pass the parsed JSON of the `data:` line; for a webhook, the parsed body.
 */
export function checkFrame(name: FrameName, frame: unknown): string[] {
  return checkMessage(FRAME_MESSAGES[name], 'payload', frame);
}

/**
 * Errors of a frame's headers: for a webhook the HTTP request headers (lower-case names, as Node
 * gives them), for SSE the `id` and `event` fields of the block. Throws for frames without headers.
 */
export function checkFrameHeaders(name: FrameName, headers: Record<string, unknown>): string[] {
  return checkMessage(FRAME_MESSAGES[name], 'headers', headers);
}

export interface MessageExample {
  messageId: string;
  name: string;
  payload?: unknown;
  headers?: Record<string, unknown>;
}

/** Every `examples` entry of every message in components.messages, in document order. */
export function messageExamples(): MessageExample[] {
  const out: MessageExample[] = [];
  for (const [messageId, msg] of Object.entries(asyncapi.components?.messages ?? {})) {
    const examples = (msg.examples ?? []) as { name?: string; payload?: unknown; headers?: Record<string, unknown> }[];
    examples.forEach((example, i) => out.push({ messageId, name: example.name ?? String(i), ...example }));
  }
  return out;
}
