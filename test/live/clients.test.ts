import t from 'tap';
import pino from 'pino';
import { Socket } from 'node:net';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';
import { rawSocket, sweep, type LiveClient, type LiveLimits } from '../../src/live/clients.js';

// The live sweep against object literals: no sockets, no timers, a clock given by the test.

interface FakeClient extends LiveClient {
  behindSince: number | null;
  dropped: string | null;
  held: number;
  catchesUp: boolean;
}

function client(name: string, held: number, behindSince: number | null = null, catchesUp = false): FakeClient {
  return {
    kind: 'ws',
    address: name,
    behindSince,
    held,
    catchesUp,
    dropped: null,
    unsentBytes() {
      return this.held;
    },
    flush() {
      if (!this.catchesUp) return false;
      this.behindSince = null;
      return true;
    },
    dropSlow(why) {
      this.dropped = why;
    },
    keepAlive() {},
  };
}

const log = pino({ level: 'silent' });

function run(clients: FakeClient[], now: number, limits: Partial<LiveLimits> = {}): void {
  sweep({ clients: () => clients, limits: { slowCloseMs: 30_000, maxTotalBufferedBytes: 0, ...limits }, now: () => now, log });
}

t.test('a client behind for longer than slowCloseMs is dropped; one that catches up is not', async (t) => {
  const late = client('late', 10, 0);
  const fresh = client('fresh', 10, 5_000);
  const recovered = client('recovered', 0, 0, true);
  const keeping = client('keeping', 10);
  run([late, fresh, recovered, keeping], 30_001);
  t.match(late.dropped, /too slow/);
  t.equal(fresh.dropped, null, 'behind for 25 s: still within the bound of time');
  t.equal(recovered.dropped, null, 'flushed, caught up');
  t.equal(recovered.behindSince, null);
  t.equal(keeping.dropped, null);
});

t.test('past the total bound, the clients holding the most go first, and only as many as needed', async (t) => {
  const clients = [client('a', 100), client('b', 400), client('c', 300), client('d', 200)];
  run(clients, 0, { maxTotalBufferedBytes: 500 });
  t.same(
    clients.map((c) => c.dropped !== null),
    [false, true, true, false],
    'b (400) and c (300) closed: 300 left, under 500',
  );
  t.match(clients[1]!.dropped, /server busy/);
});

t.test('a total bound of 0 bounds nothing; within the bound nobody is closed', async (t) => {
  const clients = [client('a', 1e9), client('b', 1e9)];
  run(clients, 0, { maxTotalBufferedBytes: 0 });
  t.ok(clients.every((c) => c.dropped === null));
  run(clients, 0, { maxTotalBufferedBytes: 2e9 });
  t.ok(clients.every((c) => c.dropped === null));
});

t.test('ws keeps the TCP socket where rawSocket looks (a ws upgrade that moves it fails here)', async (t) => {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close());
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as { port: number }).port}`);
  t.teardown(() => client.terminate());
  const [socket] = await accepted;
  t.ok(rawSocket(socket) instanceof Socket, 'the server side of a connection has its net.Socket there');
  const got = new Promise<string[]>((resolve) => {
    const frames: string[] = [];
    client.on('message', (data) => frames.push(data.toString()) === 3 && resolve(frames));
  });
  rawSocket(socket)!.cork();
  for (const frame of ['a', 'b', 'c']) socket.send(frame);
  rawSocket(socket)!.uncork();
  t.same(await got, ['a', 'b', 'c'], 'frames sent while corked arrive whole and in order');
});
