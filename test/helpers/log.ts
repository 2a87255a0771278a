import { EventEmitter } from 'node:events';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino destination that keeps every line, for tests that assert what the log says. */
export class LogCapture extends EventEmitter<{ line: [LogLine] }> {
  readonly lines: LogLine[] = [];

  write(chunk: string): void {
    for (const text of chunk.split('\n')) {
      if (text === '') continue;
      const line = JSON.parse(text) as LogLine;
      this.lines.push(line);
      this.emit('line', line);
    }
  }

  /** The first line (already written or still to come) that `match` accepts. */
  waitFor(match: (line: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> {
    const found = this.lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onLine = (line: LogLine): void => {
        if (!match(line)) return;
        clearTimeout(timer);
        this.off('line', onLine);
        resolve(line);
      };
      const timer = setTimeout(() => {
        this.off('line', onLine);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line: ${what}`));
      }, timeoutMs);
      this.on('line', onLine);
    });
  }

  text(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
  }
}
