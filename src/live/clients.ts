import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { Clock, Timer } from '../clock.js';

// SPEC §5 and §9: every live client (/ws, /events, graphql-ws) has a byte bound, and so has their
// sum. A client's unsent bytes are all it was given and has not read: its socket's buffer plus
// whatever waits in the client itself (a /ws snapshot being written, conflated updates). One
// sweep, a few times a second, flushes the clients that fell behind as their sockets drain,
// closes those that stay behind, and, when the sum over every client passes its bound, closes
// the clients holding the most until the sum is back under it.

export type LiveKind = 'ws' | 'sse' | 'graphql';

export interface LiveClient {
  readonly kind: LiveKind;
  /** The client's address (rate limits and slots count the same). */
  readonly address: string;
  /** Bytes given to this client and not read yet, wherever they wait. */
  unsentBytes(): number;
  /** Since when (ms) the client is behind, or null while it keeps up. */
  readonly behindSince: number | null;
  /** Writes what waits, within the client's bound. True once it has caught up. */
  flush(now: number): boolean;
  /** Closes a client for being too slow, its protocol's way (1013; a dropped SSE stream). */
  dropSlow(why: string): void;
  /** Keeps the connection alive, or finds it dead (keepalive.ts). */
  keepAlive(): void;
}

/** Where the one bounded write puts a chunk: a socket's write, no bound of its own. */
export interface LiveSink {
  unsentBytes(): number;
  write(chunk: string): void;
}

/**
 * The one bounded write of every live protocol (SPEC §5): a chunk goes out while the client holds
 * at most `bound` bytes it has not read; otherwise it is not written (false), and the protocol
 * applies its stated policy:
 * - /ws conflates: the newest update per device waits; past the bound again, or behind for
 *   WS_SLOW_CLOSE_SECONDS, the client is closed with 1013;
 * - SSE waits: the stream keeps its place in the event buffer and writes on as the socket drains;
 *   dropped when that place leaves the buffer or it is behind for WS_SLOW_CLOSE_SECONDS;
 * - graphql-ws closes with 1013: a subscriber resubscribes.
 */
export function boundedWrite(sink: LiveSink, chunk: string, bound: number): boolean {
  if (sink.unsentBytes() > bound) return false;
  sink.write(chunk);
  return true;
}

export interface LiveLimits {
  /** A client that stays behind this long is closed (WS_SLOW_CLOSE_SECONDS). */
  slowCloseMs: number;
  /** The sum of every client's unsent bytes (STREAMS_MAX_TOTAL_BUFFERED_BYTES); 0: no bound. */
  maxTotalBufferedBytes: number;
}

/** How often the sweep runs: drained sockets are refilled within this. */
export const SWEEP_MS = 250;

/** After a close frame, how long a peer that reads nothing has before its socket is cut. */
const CLOSE_GRACE_MS = 1000;

/**
 * A WebSocket closed for being slow or for memory. The close frame queues behind what the peer
 * has not read: a peer that reads nothing would keep its buffer for ws's 30 s closing handshake.
 * So each CLOSE_GRACE_MS the peer must have read something, or its socket is cut (it then sees
 * 1006, not the code: asyncapi.yaml and the README say so). A peer still reading gets its code.
 * Once closing, further calls do nothing.
 */
export function closeSocket(socket: WebSocket, code: number, reason: string): void {
  if (socket.readyState !== socket.OPEN) return;
  socket.close(code, reason);
  let left = socket.bufferedAmount;
  const timer = setInterval(() => {
    const now = socket.bufferedAmount;
    if (now === 0 || now >= left) socket.terminate();
    left = now;
  }, CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearInterval(timer));
}

/**
 * The TCP socket under a `ws` WebSocket, to cork while a batch of frames is sent: one write for
 * the batch instead of one per frame. ws keeps it in `_socket` (ws 8, lib/websocket.js setSocket);
 * test/live/clients.test.ts fails if a ws upgrade moves it.
 */
export function rawSocket(socket: WebSocket): { cork(): void; uncork(): void } | undefined {
  return (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
}

export interface SweepOptions {
  /** Every open client, read at each sweep. */
  clients: () => Iterable<LiveClient>;
  limits: LiveLimits;
  now: () => number;
  log: FastifyBaseLogger;
}

/** Starts the sweep on the service's clock; returns its timer, to clear with that clock when the server closes. */
export function startSweep(opts: SweepOptions, clock: Pick<Clock, 'setInterval'>): Timer {
  return clock.setInterval(() => sweep(opts), SWEEP_MS);
}

/** One pass: flush or drop the clients behind, then hold the total bound. Exported for tests. */
export function sweep({ clients, limits, now: clock, log }: SweepOptions): void {
  const now = clock();
  let total = 0;
  const open: { client: LiveClient; unsent: number }[] = [];
  for (const client of clients()) {
    if (client.behindSince !== null && !client.flush(now) && now - client.behindSince > limits.slowCloseMs) {
      log.info({ kind: client.kind, client: client.address, behindMs: now - client.behindSince }, 'closing a live client that stayed behind');
      client.dropSlow('too slow: reconnect and resubscribe');
      continue;
    }
    const unsent = client.unsentBytes();
    total += unsent;
    if (unsent > 0) open.push({ client, unsent });
  }
  if (limits.maxTotalBufferedBytes === 0 || total <= limits.maxTotalBufferedBytes) return;
  // the clients holding the most go first: the fewest closed for the most memory returned
  open.sort((a, b) => b.unsent - a.unsent);
  let closed = 0;
  for (const { client, unsent } of open) {
    if (total <= limits.maxTotalBufferedBytes) break;
    client.dropSlow('server busy: too much unsent to slow clients, reconnect');
    total -= unsent;
    closed++;
  }
  log.warn(
    { closed, maxTotalBufferedBytes: limits.maxTotalBufferedBytes },
    'live clients held more unsent bytes than STREAMS_MAX_TOTAL_BUFFERED_BYTES: closed the slowest',
  );
}
