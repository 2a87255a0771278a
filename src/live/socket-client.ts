import type { WebSocket } from 'ws';
import { boundedWrite, closeSocket, type LiveClient } from './clients.js';
import { WsClose } from './close-codes.js';
import { pingPeer, trackPongs, type Peer } from './keepalive.js';

/**
 * A live client whose only buffer is its WebSocket's (graphql-ws: each message is an answer to
 * one subscriber's operation, nothing to conflate). Its policy when over the bound: closed with
 * 1013 (SPEC §5), the subscriber resubscribes.
 */
export class SocketClient implements LiveClient, Peer {
  readonly kind = 'graphql';
  readonly behindSince = null;
  alive = true;

  constructor(
    readonly socket: WebSocket,
    readonly address: string,
    private readonly maxBufferedBytes: number,
  ) {
    trackPongs(this);
  }

  unsentBytes(): number {
    return this.socket.bufferedAmount;
  }

  write(chunk: string): void {
    this.socket.send(chunk);
  }

  /** Sends a message, or closes a client this far behind; false when it was not sent. */
  send(chunk: string): boolean {
    if (boundedWrite(this, chunk, this.maxBufferedBytes)) return true;
    this.dropSlow('too slow: reconnect and subscribe again');
    return false;
  }

  flush(): boolean {
    return true;
  }

  dropSlow(why: string): void {
    closeSocket(this.socket, WsClose.TryAgainLater, why);
  }

  keepAlive(): void {
    pingPeer(this);
  }
}
