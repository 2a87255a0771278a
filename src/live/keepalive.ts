import type { WebSocket } from 'ws';
import type { Clock, Timer } from '../clock.js';
import type { LiveClient } from './clients.js';

// SPEC §5: live connections are kept alive, and dead ones found, one way: a loop that asks each
// open client to keep itself alive. A WebSocket (/ws, /graphql) is pinged every WS_PING_SECONDS
// and dropped when it did not answer the previous ping; an SSE stream gets a comment line every
// SSE_KEEPALIVE_SECONDS, so that idle proxies keep it open.

export interface Peer {
  readonly socket: WebSocket;
  /** Set on each pong; cleared on each ping. */
  alive: boolean;
}

/** Marks a peer alive on every pong; call once per socket. */
export function trackPongs(peer: Peer): void {
  peer.socket.on('pong', () => {
    peer.alive = true;
  });
}

/** A WebSocket's keep-alive: drops it when the last ping went unanswered, else pings it. */
export function pingPeer(peer: Peer): void {
  if (!peer.alive) {
    peer.socket.terminate();
    return;
  }
  peer.alive = false;
  peer.socket.ping();
}

/**
 * Asks every client of `clients` (read at each tick) to keep itself alive, every `intervalMs` of
 * the service's clock; returns the timer, to clear with that clock on close.
 */
export function keepAliveLoop(clients: () => Iterable<Pick<LiveClient, 'keepAlive'>>, intervalMs: number, clock: Pick<Clock, 'setInterval'>): Timer {
  return clock.setInterval(() => {
    for (const client of clients()) client.keepAlive();
  }, intervalMs);
}
