import type { Test } from 'tap';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { SseParser } from '../helpers/sse.js';

// Live subscribers of one replica, each recording the seqs of the update events it receives:
// /ws, /events (SSE) and a graphql-ws deviceUpdated subscription. They wait on the events
// themselves (until()), and say what is wrong with what they got (problems()).

export class SeqRecorder {
  readonly seqs: number[] = [];
  /** Set when the connection ends (a reset, a close) before the test is done. */
  ended: string | null = null;
  readonly #waiters = new Set<() => void>();

  private constructor(readonly name: string) {}

  #add(seq: number): void {
    this.seqs.push(seq);
    for (const wake of this.#waiters) wake();
  }

  #end(why: string): void {
    this.ended ??= why;
    for (const wake of this.#waiters) wake();
  }

  /** Resolves once `count` events came; rejects after `timeoutMs` or when the connection ended. */
  until(count: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.seqs.length >= count) finish(null);
        else if (this.ended !== null) finish(new Error(`${this.name} ended after ${this.seqs.length} of ${count} events: ${this.ended}`));
      };
      const finish = (err: Error | null): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err === null) resolve();
        else reject(err);
      };
      const timer = setTimeout(() => finish(new Error(`${this.name}: ${this.seqs.length} of ${count} events after ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** What is wrong with the seqs received against 1..count, each once, in order: an empty list when nothing is. */
  problems(count: number, first = 1): string[] {
    const problems: string[] = [];
    if (this.seqs.length !== count) problems.push(`${this.seqs.length} events, not ${count}`);
    for (let i = 0; i < this.seqs.length && problems.length < 5; i++) {
      if (this.seqs[i] !== first + i) problems.push(`event ${i} has seq ${this.seqs[i]}, not ${first + i}`);
    }
    return problems;
  }

  static async ws(t: Test, base: string, name: string): Promise<SeqRecorder> {
    const recorder = new SeqRecorder(name);
    const socket = new WebSocket(`${base.replace('http', 'ws')}/ws?snapshot=false`);
    t.teardown(() => socket.terminate());
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
      if (frame.type === 'update') recorder.#add(frame.seq!);
    });
    socket.on('close', (code, reason) => recorder.#end(`closed ${code} ${reason.toString()}`));
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    return recorder;
  }

  static async sse(t: Test, base: string, name: string): Promise<SeqRecorder> {
    const recorder = new SeqRecorder(name);
    const controller = new AbortController();
    t.teardown(() => controller.abort());
    const res = await fetch(`${base}/events`, { signal: controller.signal });
    if (res.status !== 200 || res.body === null) throw new Error(`${name}: HTTP ${res.status}`);
    const parser = new SseParser();
    void (async () => {
      try {
        for await (const chunk of res.body!) {
          for (const block of parser.push(chunk as Uint8Array)) {
            if (block.event === 'update') recorder.#add(Number(block.id));
            else if (block.event === 'reset') recorder.#end('reset');
          }
        }
        recorder.#end('the stream ended');
      } catch (err) {
        recorder.#end(`the stream failed: ${(err as Error).message}`);
      }
    })();
    return recorder;
  }

  static async graphql(t: Test, base: string, name: string): Promise<SeqRecorder> {
    const recorder = new SeqRecorder(name);
    const client = createClient({ url: `${base.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, retryAttempts: 0 });
    t.teardown(() => client.dispose());
    await new Promise<void>((resolve, reject) => {
      client.on('connected', () => resolve());
      client.on('error', reject);
      client.subscribe(
        { query: 'subscription { deviceUpdated { seq kind } }' },
        {
          next: (r) => {
            const event = (r.data as { deviceUpdated: { seq: number; kind: string } } | undefined)?.deviceUpdated;
            if (event?.kind === 'update') recorder.#add(event.seq);
          },
          error: (e) => recorder.#end(`error ${JSON.stringify(e)}`),
          complete: () => recorder.#end('completed'),
        },
      );
    });
    return recorder;
  }
}
