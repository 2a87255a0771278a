import WebSocket from 'ws';

// A process's live memory, from outside: its inspector (started with NODE_OPTIONS=--inspect=
// 127.0.0.1:0) forces a full garbage collection, then reports process.memoryUsage(). Resident
// memory alone mixes what a process holds with garbage V8 has not collected yet.

export interface LiveMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface Inspector {
  /** A full garbage collection, then process.memoryUsage(). */
  memory(): Promise<LiveMemory>;
  /** Disconnects; before the process is stopped, or its exit waits for the debugger. */
  close(): void;
}

/** The inspector's environment for a child process: a port of its own, on loopback. */
export const INSPECT_ENV = { NODE_OPTIONS: '--inspect=127.0.0.1:0' };

/** Connects to the inspector a child announced on its stderr ("Debugger listening on ws://…"). */
export async function inspect(output: () => string): Promise<Inspector> {
  const url = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(output())?.[1];
  if (url === undefined) throw new Error('the process announced no inspector (NODE_OPTIONS=--inspect=127.0.0.1:0)');
  const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let id = 0;
  const waiting = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>();
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
    const call = message.id === undefined ? undefined : waiting.get(message.id);
    if (call === undefined) return;
    waiting.delete(message.id!);
    if (message.error) call.reject(new Error(`inspector: ${message.error.message}`));
    else call.resolve(message.result);
  });
  socket.on('close', () => {
    for (const call of waiting.values()) call.reject(new Error('inspector: disconnected'));
    waiting.clear();
  });
  const call = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const at = ++id;
      waiting.set(at, { resolve, reject });
      socket.send(JSON.stringify({ id: at, method, params }));
    });
  return {
    async memory() {
      await call('HeapProfiler.collectGarbage');
      const got = (await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
        result: { value: string };
      };
      return JSON.parse(got.result.value) as LiveMemory;
    },
    close() {
      socket.terminate();
    },
  };
}
