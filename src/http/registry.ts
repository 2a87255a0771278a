import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { checkEntry } from '../devices/registry.js';
import type { RegistryEntry } from '../devices/types.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import {
  BRG_ERR_IMPORT_TOO_LARGE,
  BRG_ERR_INVALID_ENTRY,
  BRG_ERR_INVALID_IMPORT,
  BRG_ERR_REGISTRY_NOT_FOUND,
  BRG_ERR_UNSUPPORTED_MEDIA_TYPE,
} from '../errors.js';
import { route, type OpenApiDocument } from '../openapi.js';
import { csvHeader, csvRow, jsonExportEnd, jsonExportStart, jsonRow, parseRegistryCsv, parseRegistryJson, type FileProblem } from './registry-files.js';

// SPEC §11 REST: the registry's entries, one at a time or as a whole file. Writes need a key of
// API_KEYS (app.checkWrite, before the body is read); each change is a meta event (devices/service.ts).

export interface RegistryRoutesOptions {
  doc: OpenApiDocument;
  registry: { importMaxBytes: number };
}

/** Entries read from the store at a time for an export. */
const EXPORT_PAGE = 1000;

const IMPORT_TYPES = ['text/csv', 'application/json'];

/** The media type of a request, without parameters, in lower case. */
function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

export async function registryRoutes(app: FastifyInstance, opts: RegistryRoutesOptions): Promise<void> {
  const { devices } = app;
  const { store } = devices;
  // writes are checked first, before their body is read: a read-only key uploads nothing
  const writeCheck = async (request: FastifyRequest): Promise<void> => app.checkWrite(request);

  app.route<{ Querystring: { zone?: string; seen?: boolean; limit: number; cursor?: string } }>({
    ...route(opts.doc, 'listRegistry'),
    handler: async (request) => {
      const { zone, seen, limit, cursor } = request.query;
      const page = await store.listEntries({ zone, seen, limit, after: cursor === undefined ? undefined : decodeCursor(cursor) });
      return { items: page.items.map((i) => i.entry), nextCursor: page.lastId === null ? null : encodeCursor(page.lastId), total: page.total };
    },
  });

  app.route<{ Querystring: { format: 'csv' | 'json' } }>({
    ...route(opts.doc, 'exportRegistry'),
    handler: async (request, reply) => {
      const csv = request.query.format === 'csv';
      reply
        .type(csv ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
        .header('content-disposition', `attachment; filename="registry.${request.query.format}"`);
      // page by page as the client reads: a registry of a million entries is never held whole
      return reply.send(Readable.from(exportFile(csv, (after) => store.listEntries({ after, limit: EXPORT_PAGE }))));
    },
  });

  app.route<{ Params: { deviceId: string } }>({
    ...route(opts.doc, 'getRegistryEntry'),
    handler: async (request) => {
      const entry = await store.getEntry(request.params.deviceId);
      if (entry === undefined) throw new BRG_ERR_REGISTRY_NOT_FOUND(request.params.deviceId);
      return entry;
    },
  });

  app.route<{ Params: { deviceId: string }; Body: unknown }>({
    ...route(opts.doc, 'putRegistryEntry'),
    onRequest: writeCheck,
    handler: async (request, reply) => {
      // JSON only: a text/plain body is what a foreign page's form can send without a preflight
      if (mediaType(request) !== 'application/json') throw new BRG_ERR_UNSUPPORTED_MEDIA_TYPE(mediaType(request), 'application/json');
      const checked = checkEntry(request.params.deviceId, request.body);
      if (!checked.ok) throw new BRG_ERR_INVALID_ENTRY(checked.reason);
      const created = await devices.setMeta(checked.entry);
      return reply.code(created ? 201 : 200).send(checked.entry);
    },
  });

  app.route<{ Params: { deviceId: string } }>({
    ...route(opts.doc, 'deleteRegistryEntry'),
    onRequest: writeCheck,
    handler: async (request, reply) => {
      if (!(await devices.deleteMeta(request.params.deviceId))) throw new BRG_ERR_REGISTRY_NOT_FOUND(request.params.deviceId);
      return reply.code(204).send();
    },
  });

  await app.register(async (imports) => importRoute(imports, opts, writeCheck));
}

/** POST /registry/import, in a context of its own: it reads its body as bytes, up to REGISTRY_IMPORT_MAX_BYTES. */
async function importRoute(app: FastifyInstance, opts: RegistryRoutesOptions, writeCheck: (request: FastifyRequest) => Promise<void>): Promise<void> {
  const max = opts.registry.importMaxBytes;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(IMPORT_TYPES, { parseAs: 'buffer', bodyLimit: max }, (_request, body, done) => done(null, body));
  app.addContentTypeParser('*', (request, _payload, done) => done(new BRG_ERR_UNSUPPORTED_MEDIA_TYPE(mediaType(request).slice(0, 100), IMPORT_TYPES.join(' or '))));
  app.route<{ Querystring: { dryRun: boolean }; Body: Buffer | undefined }>({
    ...route(opts.doc, 'importRegistry'),
    bodyLimit: max,
    onRequest: async (request) => {
      await writeCheck(request);
      // refused before a byte of the body is read; a chunked body is cut at the limit (FST_ERR_CTP_BODY_TOO_LARGE)
      if (Number(request.headers['content-length'] ?? 0) > max) throw new BRG_ERR_IMPORT_TOO_LARGE(max);
    },
    handler: async (request) => {
      const body = request.body;
      if (body === undefined) throw new BRG_ERR_UNSUPPORTED_MEDIA_TYPE('(none)', IMPORT_TYPES.join(' or '));
      const text = decodeUtf8(body);
      const parsed = 'line' in text ? { ok: false as const, errors: [text] } : mediaType(request) === 'text/csv' ? parseRegistryCsv(text.text) : parseRegistryJson(text.text);
      if (!parsed.ok) throw Object.assign(new BRG_ERR_INVALID_IMPORT(parsed.errors.length), { errors: parsed.errors });
      const dryRun = request.query.dryRun;
      const result = await app.devices.importEntries(parsed.entries, { dryRun });
      request.log.info({ ...result, dryRun }, 'registry imported');
      return { ...result, dryRun };
    },
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The file as text, or the line of its first byte that is not UTF-8 (SPEC §11: UTF-8, with or without BOM). */
function decodeUtf8(body: Buffer): { text: string } | FileProblem {
  try {
    return { text: UTF8.decode(body) };
  } catch {
    let line = 1;
    let start = 0;
    for (let i = 0; i <= body.length; i++) {
      if (i < body.length && body[i] !== 0x0a) continue;
      try {
        UTF8.decode(body.subarray(start, i));
      } catch {
        break;
      }
      line++;
      start = i + 1;
    }
    return { line, reason: 'the file is not UTF-8 text' };
  }
}

/** The export's text, a page at a time. */
async function* exportFile(
  csv: boolean,
  page: (after: string | undefined) => Promise<{ items: { entry: RegistryEntry }[]; lastId: string | null }>,
): AsyncGenerator<string> {
  yield csv ? csvHeader() : jsonExportStart;
  let after: string | undefined;
  let first = true;
  do {
    const { items, lastId } = await page(after);
    let chunk = '';
    for (const { entry } of items) {
      chunk += csv ? csvRow(entry) : jsonRow(entry, first);
      first = false;
    }
    if (chunk !== '') yield chunk;
    after = lastId ?? undefined;
  } while (after !== undefined);
  if (!csv) yield jsonExportEnd(first);
}
