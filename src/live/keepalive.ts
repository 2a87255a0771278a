import type { WebSocket } from 'ws';

// SPEC §5: the server pings every WS_PING_SECONDS and drops a peer that did not answer the
// previous ping. One loop for every WebSocket kind (/ws and /graphql).

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

/** Starts the ping loop over `peers` (read at each tick); returns the timer to clear on close. */
export function pingLoop(peers: Iterable<Peer>, intervalMs: number): NodeJS.Timeout {
  const timer = setInterval(() => {
    for (const peer of peers) {
      if (!peer.alive) {
        peer.socket.terminate();
        continue;
      }
      peer.alive = false;
      peer.socket.ping();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}
