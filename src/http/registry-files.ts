import { checkEntry, deviceIdProblem, ENTRY_FIELDS, type CheckedEntry } from '../devices/registry.js';
import type { RegistryEntry } from '../devices/types.js';

// SPEC §11: POST /registry/import reads CSV or a JSON array of entries, and GET /registry/export
// writes them so that they come back through import unchanged. A file with any bad row changes
// nothing, so the answer lists every bad row at once ({line, reason}, the header being line 1):
// whoever fixes a spreadsheet wants all of its mistakes in one go, not one per upload.
// Reader and writer share one file (a little over 300 lines) because each is the other's test.

export type FileProblem = { line: number; reason: string };
export type ParsedFile = { ok: true; entries: RegistryEntry[] } | { ok: false; errors: FileProblem[] };

/** At most this many problems in one answer: enough to fix a file by, small enough to send. */
export const MAX_FILE_ERRORS = 1000;

type Field = (typeof ENTRY_FIELDS)[number];

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const HEADER_REASON = `the first line must be a header naming deviceId, and any of ${ENTRY_FIELDS.slice(1).join(', ')}`;
// strict: "12abc", "0x10", "" and " 1" are no coordinates (Number() would take some of them)
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
// European spreadsheets write 52,517 and separate cells with ';' (SPEC §11: comma or semicolon)
const DECIMAL_COMMA = /^[^.,]*,[^.,]*$/;

/** CSV text (already decoded from UTF-8) as entries, or every bad row's line and reason. */
export function parseRegistryCsv(text: string): ParsedFile {
  const body = withoutBom(text);
  if (body.length === 0 || lineEndAt(body, 0) > 0) return failed(1, HEADER_REASON);
  const delimiter = delimiterOf(body);
  const rows = records(body, delimiter.charCodeAt(0));
  const header = rows.next().value!; // the body is not empty and does not start with a line end
  const columns = header.fields.map((cell) => ENTRY_FIELDS.find((field) => field.toLowerCase() === cell.trim().toLowerCase()) ?? null);
  if (header.problem !== null || !columns.includes('deviceId')) return failed(1, HEADER_REASON);
  const twice = columns.find((column, i) => column !== null && columns.indexOf(column) !== i);
  if (twice !== undefined) return failed(1, `the header names ${twice} twice`);

  const collected = new Collector();
  for (const row of rows) {
    if (row.problem !== null) {
      const where = columns[row.problem.field] ?? `field ${row.problem.field + 1}`;
      collected.refuse(row.problem.line, `${where} ${row.problem.unclosed ? 'opens a quote that is never closed' : 'has text after its closing quote'}`);
    } else if (row.fields.length !== columns.length) {
      collected.refuse(row.line, `${row.fields.length} fields where the header has ${columns.length}`);
    } else {
      const { deviceId, input, problem } = rowInput(columns, row.fields, delimiter);
      collected.add(row.line, deviceId, problem ?? checkEntry(deviceId, input));
    }
    if (collected.full()) break;
  }
  return collected.result();
}

/** A JSON array of entries as entries, or every bad element's line and reason. */
export function parseRegistryJson(text: string): ParsedFile {
  const body = withoutBom(text);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    return failed(syntaxErrorLine(body, err), syntaxReason(err));
  }
  if (!Array.isArray(value)) return failed(1, 'the file must be a JSON array of entries');
  const lines = elementLines(body);
  const collected = new Collector();
  for (let i = 0; i < value.length && !collected.full(); i++) {
    const element: unknown = value[i];
    const line = lines[i] ?? 1;
    const deviceId = typeof element === 'object' && element !== null ? (element as { deviceId?: unknown }).deviceId : undefined;
    const problem = Array.isArray(element) || typeof element !== 'object' || element === null ? 'entry must be a JSON object' : deviceIdProblem(deviceId);
    collected.add(line, deviceId, problem ?? checkEntry(deviceId as string, element));
  }
  return collected.result();
}

export function csvHeader(): string {
  return `${ENTRY_FIELDS.join(',')}\r\n`;
}

/** One CSV record (RFC 4180: comma, CRLF), read back by parseRegistryCsv as the same entry. */
export function csvRow(entry: RegistryEntry): string {
  const cells = [
    entry.deviceId,
    entry.name ?? '',
    entry.address ?? '',
    entry.latitude === null ? '' : String(entry.latitude), // String(n) reads back as the same double
    entry.longitude === null ? '' : String(entry.longitude),
    entry.zone ?? '',
    entry.tags.join('|'),
  ];
  return `${cells.map(csvCell).join(',')}\r\n`;
}

// JSON export in pieces, so GET /registry/export?format=json can stream page by page; one entry a
// line: "[\n{…},\n{…}\n]\n", and "[\n]\n" for none
export const jsonExportStart = '[\n';

export function jsonRow(entry: RegistryEntry, first: boolean): string {
  const { deviceId, name, address, latitude, longitude, zone, tags } = entry; // ENTRY_FIELDS order
  return `${first ? '' : ',\n'}${JSON.stringify({ deviceId, name, address, latitude, longitude, zone, tags })}`;
}

export function jsonExportEnd(empty: boolean): string {
  return empty ? ']\n' : '\n]\n';
}

/** Entries and problems as rows come in: one problem per bad row, the first deviceId wins. */
class Collector {
  readonly entries: RegistryEntry[] = [];
  readonly errors: FileProblem[] = [];
  /** deviceId → the line it first came on, good row or bad, so a later copy is named either way. */
  readonly #lines = new Map<string, number>();

  add(line: number, deviceId: unknown, checked: string | CheckedEntry): void {
    const first = typeof deviceId === 'string' ? this.#lines.get(deviceId) : undefined;
    if (typeof deviceId === 'string' && first === undefined && deviceIdProblem(deviceId) === null) this.#lines.set(deviceId, line);
    if (typeof checked === 'string') this.refuse(line, checked);
    else if (!checked.ok) this.refuse(line, checked.reason);
    else if (first !== undefined) this.refuse(line, `deviceId '${deviceId as string}' is already on line ${first}`);
    else this.entries.push(checked.entry);
  }

  refuse(line: number, reason: string): void {
    if (!this.full()) this.errors.push({ line, reason });
  }

  full(): boolean {
    return this.errors.length >= MAX_FILE_ERRORS;
  }

  result(): ParsedFile {
    return this.errors.length > 0 ? { ok: false, errors: this.errors } : { ok: true, entries: this.entries };
  }
}

function failed(line: number, reason: string): ParsedFile {
  return { ok: false, errors: [{ line, reason }] };
}

function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The length of the record separator (LF or CR LF) at i, or 0. A lone CR is text. */
function lineEndAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  return c === LF ? 1 : c === CR && text.charCodeAt(i + 1) === LF ? 2 : 0;
}

/** ';' when the header has one outside quotes and no ',' (SPEC §11: comma or semicolon). */
function delimiterOf(text: string): string {
  let quoted = false;
  let semicolon = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted; // "" inside quotes flips twice: still quoted
    else if (quoted) continue;
    else if (c === ',') return ',';
    else if (c === ';') semicolon = true;
    else if (lineEndAt(text, i) > 0) break;
  }
  return semicolon ? ';' : ',';
}

interface CsvRecord {
  /** The physical line the record starts on. */
  line: number;
  fields: string[];
  /** A quoting mistake in the record: the field's index and the line that field started on. */
  problem: { field: number; line: number; unclosed: boolean } | null;
}

/** RFC 4180 records; completely empty lines are skipped, quoted CR LF is read as LF (SPEC §11). */
function* records(text: string, delimiter: number): Generator<CsvRecord, void> {
  const n = text.length;
  let i = 0;
  let line = 1;
  while (i < n) {
    const blank = lineEndAt(text, i);
    if (blank > 0) {
      i += blank;
      line++;
      continue;
    }
    const record: CsvRecord = { line, fields: [], problem: null };
    for (;;) {
      let value = '';
      if (text.charCodeAt(i) === QUOTE) {
        const opened = line;
        let from = i + 1;
        for (;;) {
          const close = text.indexOf('"', from);
          if (close === -1) {
            // nothing after an unclosed quote can be told apart from its text: the rest is this field
            record.problem = { field: record.fields.length, line: opened, unclosed: true };
            yield record;
            return;
          }
          const chunk = text.slice(from, close);
          line += count(chunk, '\n');
          // addresses span lines; a file saved on Windows writes them CR LF, the entry holds LF
          value += chunk.includes('\r\n') ? chunk.replaceAll('\r\n', '\n') : chunk;
          if (text.charCodeAt(close + 1) !== QUOTE) {
            i = close + 1;
            break;
          }
          value += '"';
          from = close + 2;
        }
        if (i < n && text.charCodeAt(i) !== delimiter && lineEndAt(text, i) === 0) {
          record.problem ??= { field: record.fields.length, line: opened, unclosed: false };
        }
      }
      let end = i;
      while (end < n && text.charCodeAt(end) !== delimiter && lineEndAt(text, end) === 0) end++;
      value += text.slice(i, end); // a '"' inside an unquoted field is text
      record.fields.push(value);
      i = end;
      if (i < n && text.charCodeAt(i) === delimiter) {
        i++;
        continue;
      }
      if (i < n) {
        i += lineEndAt(text, i);
        line++;
      }
      break;
    }
    yield record;
  }
}

/** A CSV row as checkEntry's input: cells as values, empty as null, coordinates as numbers. */
function rowInput(columns: (Field | null)[], cells: string[], delimiter: string): { deviceId: string; input: Record<string, unknown>; problem: string | null } {
  const input: Record<string, unknown> = {};
  let deviceId = '';
  let problem: string | null = null;
  for (let k = 0; k < columns.length; k++) {
    const column = columns[k];
    const cell = cells[k]!;
    if (column === null || column === undefined) continue; // an unknown column (SPEC §11: ignored)
    if (column === 'deviceId') deviceId = cell;
    else if (cell === '') input[column] = null;
    else if (column === 'tags') input.tags = cell.split('|');
    else if (column === 'latitude' || column === 'longitude') {
      const number = coordinate(cell, delimiter);
      if (number === null) problem ??= `${column} is not a number: '${excerpt(cell)}'`;
      input[column] = number;
    } else input[column] = cell;
  }
  return { deviceId, input, problem: deviceIdProblem(deviceId) ?? problem };
}

function coordinate(cell: string, delimiter: string): number | null {
  const written = delimiter === ';' && DECIMAL_COMMA.test(cell) ? cell.replace(',', '.') : cell;
  return NUMBER.test(written) ? Number(written) : null;
}

/** At most 40 code points of a cell, for a reason that quotes it. */
function excerpt(cell: string): string {
  const points = Array.from(cell.slice(0, 81));
  return points.length > 40 ? `${points.slice(0, 40).join('')}…` : cell;
}

/** RFC 4180: quoted when it holds the delimiter, a quote or a line end; also when a spreadsheet would trim it. */
function csvCell(value: string): string {
  const quote = /[",\r\n]/.test(value) || value.startsWith(' ') || value.endsWith(' ');
  return quote ? `"${value.replaceAll('"', '""')}"` : value;
}

function count(text: string, what: string): number {
  let n = 0;
  for (let i = text.indexOf(what); i !== -1; i = text.indexOf(what, i + 1)) n++;
  return n;
}

function lineAt(text: string, position: number): number {
  return count(text.slice(0, position), '\n') + 1;
}

/** JSON.parse's message without the position and the excerpt of the text: the line says where. */
function syntaxReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `the file is not valid JSON: ${message.replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '').replace(/ in JSON at position \d+.*$/s, '')}`;
}

/**
 * The line of a JSON.parse error. V8 names a position for most ("… in JSON at position 12"), but
 * not for an unexpected token, as in the trailing comma of a hand-edited file ("[{…},\n]"). Then
 * the shortest prefix that fails by itself ends at the mistake: a prefix that is only cut short
 * fails at its end. A binary search costs about 24 parses of a 10 MiB file, on a refusal only.
 */
function syntaxErrorLine(text: string, err: unknown): number {
  const position = positionOf(err);
  if (position !== null) return lineAt(text, position);
  let fine = 0; // the longest prefix known to fail only at its end
  let failing = text.length;
  while (failing - fine > 1) {
    const k = (fine + failing) >>> 1;
    if (failsInside(text.slice(0, k))) failing = k;
    else fine = k;
  }
  return lineAt(text, failing - 1);
}

function positionOf(err: unknown): number | null {
  const match = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
  return match ? Number(match[1]) : null;
}

function failsInside(prefix: string): boolean {
  try {
    JSON.parse(prefix);
    return false;
  } catch (err) {
    if (/Unexpected end of JSON input/.test((err as Error).message)) return false;
    const position = positionOf(err);
    return position === null || position < prefix.length;
  }
}

/**
 * The line each top-level element of a JSON array starts on. The text has parsed already, so a
 * scan that skips string literals and counts nesting is enough; no second parser is needed.
 */
function elementLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let depth = 0;
  let expecting = false; // after the array's '[' or a ',' at depth 1: the next token starts an element
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') continue;
    if (c === ']' || c === '}') {
      depth--;
      expecting = false; // "[]": no element
      continue;
    }
    if (depth === 1 && c === ',') {
      expecting = true;
      continue;
    }
    if (expecting) {
      lines.push(line);
      expecting = false;
    }
    if (c === '[' || c === '{') {
      if (++depth === 1) expecting = true;
    } else if (c === '"') {
      // a valid string holds no raw line end: skip to its closing quote
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
    }
  }
  return lines;
}
