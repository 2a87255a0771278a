// A Server-Sent Events parser for the tests' /events clients, fed chunks as they arrive, with the
// rules EventSource follows (WHATWG HTML, "Parsing an event stream"): lines end in CRLF, LF or CR,
// even when a chunk ends between CR and LF; a leading BOM is dropped; `:` starts a comment; a field
// without `:` has an empty value, and one space after the `:` is not part of the value; `data`
// lines join with \n; an `id` containing NUL and a `retry` that is not all digits are ignored; a
// blank line ends the block; a block cut off by the end of the stream is never complete.
//
// Unlike EventSource it hands the test every block, comments and `retry:` included, and leaves
// `event` null when the block names none (EventSource would dispatch "message", and only blocks
// with data): the tests look at keep-alive comments and the opening `retry:` too.

/** One blank-line-terminated block of the stream. */
export interface SseBlock {
  /** The block's `id:` field; null when it has none (EventSource keeps the previous id then: see lastEventId). */
  id: string | null;
  event: string | null;
  /** The `data:` lines joined by \n; null when it has none. */
  data: string | null;
  retry: string | null;
  /** Comment lines, without the `:` and one space after it. */
  comments: string[];
}

export class SseParser {
  /** The last `id:` seen, carried across blocks as EventSource's last event ID. */
  lastEventId = '';
  readonly #decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  #line = '';
  #block: SseBlock | null = null;
  #started = false;
  /** The previous chunk ended in CR: an LF opening the next one belongs to it. */
  #afterCR = false;

  /** Parses the next chunk: the blocks it completes, in order. Bytes may split a character. */
  push(chunk: string | Uint8Array): SseBlock[] {
    let text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (text.length === 0) return [];
    if (!this.#started) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    if (this.#afterCR) {
      this.#afterCR = false;
      if (text.charCodeAt(0) === 0x0a) start = 1;
    }
    const blocks: SseBlock[] = [];
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      this.#takeLine(this.#line + text.slice(start, i), blocks);
      this.#line = '';
      if (c === 0x0d) {
        if (i + 1 === text.length) this.#afterCR = true;
        else if (text.charCodeAt(i + 1) === 0x0a) i++;
      }
      start = i + 1;
    }
    this.#line += text.slice(start);
    return blocks;
  }

  #takeLine(line: string, blocks: SseBlock[]): void {
    if (line === '') {
      if (this.#block !== null) blocks.push(this.#block);
      this.#block = null;
      return;
    }
    const block = (this.#block ??= { id: null, event: null, data: null, retry: null, comments: [] });
    const colon = line.indexOf(':');
    if (colon === 0) {
      block.comments.push(line.slice(line.charCodeAt(1) === 0x20 ? 2 : 1));
      return;
    }
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1);
    if (field === 'data') block.data = block.data === null ? value : `${block.data}\n${value}`;
    else if (field === 'event') block.event = value;
    else if (field === 'id') {
      if (!value.includes('\0')) block.id = this.lastEventId = value;
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) block.retry = value;
    }
  }
}

/** Every complete block of a whole stream (or of one block's text, as `sseBlock()` writes it). */
export function parseSse(text: string): SseBlock[] {
  return new SseParser().push(text);
}
