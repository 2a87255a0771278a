import type { Test } from 'tap';
import WebSocket from 'ws';

export type Frame = Record<string, unknown> & { type: string };

/** A real `ws` client that keeps every frame, so that tests wait on frames, never on time. */
export class WsProbe {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #cursor = 0;
  #waiters = new Set<() => void>();

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      if (!isBinary) this.frames.push(JSON.parse(data.toString()) as Frame);
      for (const wake of this.#waiters) wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const wake of this.#waiters) wake();
      });
    });
    socket.on('error', () => {}); // reported through 'close'
  }

  static async open(t: Test, url: string, options: WebSocket.ClientOptions = {}): Promise<WsProbe> {
    const socket = new WebSocket(url, options);
    t.teardown(() => socket.terminate());
    // listening before 'open': the first frame can arrive in the same read as the handshake
    const probe = new WsProbe(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      socket.once('error', reject);
    });
    return probe;
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame after those already taken that `match` accepts; frames before it are skipped. */
  next(match: (frame: Frame) => boolean = () => true, what = 'a frame', timeoutMs = 10_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        while (this.#cursor < this.frames.length) {
          const frame = this.frames[this.#cursor++]!;
          if (match(frame)) {
            done();
            resolve(frame);
            return;
          }
        }
        if (this.socket.readyState === WebSocket.CLOSED) {
          done();
          reject(new Error(`closed while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}
