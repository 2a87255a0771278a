import t from 'tap';
import { SseParser, parseSse, type SseBlock } from './sse.js';

// The tests' SSE parser against the rules EventSource follows (WHATWG HTML, "Parsing an event stream").

const block = (fields: Partial<SseBlock>): SseBlock => ({ id: null, event: null, data: null, retry: null, comments: [], ...fields });

// what GET /events writes: the opening, events, a keep-alive comment; é and 😀 span chunk boundaries below
const STREAM =
  'retry: 3000\n\n' +
  'id: 1\nevent: update\ndata: {"device":{"deviceId":"é😀"}}\n\n' +
  ': keep-alive\n\n' +
  'id: 2\nevent: silent\ndata: {"device":{"deviceId":"b"}}\n\n';
const BLOCKS = [
  block({ retry: '3000' }),
  block({ id: '1', event: 'update', data: '{"device":{"deviceId":"é😀"}}' }),
  block({ comments: ['keep-alive'] }),
  block({ id: '2', event: 'silent', data: '{"device":{"deviceId":"b"}}' }),
];

function feed(chunks: (string | Uint8Array)[]): SseBlock[] {
  const parser = new SseParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

t.test('a whole stream in one chunk', async (t) => {
  t.same(parseSse(STREAM), BLOCKS);
});

t.test('split anywhere: between characters, and between the bytes of one', async (t) => {
  for (let i = 0; i <= STREAM.length; i++) {
    t.same(feed([STREAM.slice(0, i), STREAM.slice(i)]), BLOCKS, `text split at ${i}`);
  }
  const bytes = new TextEncoder().encode(STREAM);
  for (let i = 0; i <= bytes.length; i++) {
    t.same(feed([bytes.subarray(0, i), bytes.subarray(i)]), BLOCKS, `bytes split at ${i}`);
  }
  t.same(feed([...bytes].map((b) => Uint8Array.of(b))), BLOCKS, 'one byte at a time');
});

t.test('CRLF, LF and CR all end a line, also when a chunk ends between CR and LF', async (t) => {
  for (const [name, eol] of [['CRLF', '\r\n'], ['CR', '\r'], ['LF', '\n']] as const) {
    const text = STREAM.replaceAll('\n', eol);
    t.same(parseSse(text), BLOCKS, name);
    for (let i = 0; i <= text.length; i++) t.same(feed([text.slice(0, i), text.slice(i)]), BLOCKS, `${name} split at ${i}`);
  }
  t.same(parseSse('data: a\r\nid: 1\rdata: b\n\r\n'), [block({ id: '1', data: 'a\nb' })], 'mixed in one block');
  t.same(feed(['data: a\r', '', '\n', '\r', '\n']), [block({ data: 'a' })], 'an empty chunk between CR and LF');
});

t.test('fields: data lines joined, one space dropped, values without a colon, unknown fields', async (t) => {
  t.same(parseSse('data: one\ndata:two\ndata:  three\ndata\ndata:\n\n'), [block({ data: 'one\ntwo\n three\n\n' })]);
  t.same(parseSse('event:update\nid:7\ndata: {"a":"b: c"}\n\n'), [block({ id: '7', event: 'update', data: '{"a":"b: c"}' })], 'a colon in the value');
  t.same(parseSse('foo: bar\nEvent: x\ndata: y\n\n'), [block({ data: 'y' })], 'unknown fields (and case matters) are ignored');
  t.same(parseSse('id\nevent\n\n'), [block({ id: '', event: '' })], 'a field name alone: an empty value');
});

t.test('comments: kept on the block, never ending it', async (t) => {
  t.same(parseSse(':\n: a\n:b\nid: 1\n: between\ndata: x\n\n'), [block({ id: '1', data: 'x', comments: ['', 'a', 'b', 'between'] })]);
});

t.test('blank lines: only a block that had a line is one', async (t) => {
  t.same(parseSse('\n\n\ndata: x\n\n\n\n'), [block({ data: 'x' })]);
});

t.test('retry only as digits; id never with NUL; the last event ID carries on', async (t) => {
  const parser = new SseParser();
  t.same(parser.push('retry: 1.5\nretry: 2000\n\nretry: soon\n\n'), [block({ retry: '2000' }), block({})]);
  t.same(parser.push('id: 5\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\n'), [block({ id: '5', data: 'a' }), block({ data: 'b' }), block({ data: 'c' })]);
  t.equal(parser.lastEventId, '5', "EventSource's last event ID: the last valid id line");
  parser.push('id\n\n');
  t.equal(parser.lastEventId, '', 'an empty id resets it');
});

t.test('a BOM is dropped at the start of the stream only', async (t) => {
  t.same(parseSse('\uFEFFdata: x\n\n'), [block({ data: 'x' })]);
  t.same(feed(['', '\uFEFF', 'data: \uFEFF\n\n']), [block({ data: '\uFEFF' })], 'the second one is data');
  const bytes = new TextEncoder().encode('\uFEFFdata: x\n\n');
  t.same(feed([bytes.subarray(0, 1), bytes.subarray(1, 2), bytes.subarray(2)]), [block({ data: 'x' })], 'split inside its bytes');
});

t.test('a block the stream ends in the middle of is never complete', async (t) => {
  const parser = new SseParser();
  t.same(parser.push('id: 1\ndata: a\n\nid: 2\ndata: b\n'), [block({ id: '1', data: 'a' })]);
});
