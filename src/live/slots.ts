import type { FastifyRequest } from 'fastify';
import { BRG_ERR_TOO_MANY_STREAMS } from '../errors.js';

// SPEC §9: a cap on open stream connections (/ws, /events, graphql-ws) per client address, so
// that one client cannot hold every socket and its buffers. Counted over all three kinds.

export class StreamSlots {
  readonly #open = new Map<string, number>();

  /** `max` 0: no cap (the count is still kept). */
  constructor(readonly max: number) {}

  /** Takes a slot for the request's address until `released` fires, or throws BRG_ERR_TOO_MANY_STREAMS. */
  take(request: FastifyRequest, released: { destroyed: boolean; once(event: 'close', listener: () => void): unknown }): void {
    // gone already: its 'close' has fired, and a slot taken now would never be given back
    if (released.destroyed) return;
    const address = request.ip;
    const open = this.#open.get(address) ?? 0;
    if (this.max > 0 && open >= this.max) {
      request.log.info({ client: address, open }, 'stream refused: too many open from this address');
      throw new BRG_ERR_TOO_MANY_STREAMS(this.max);
    }
    this.#open.set(address, open + 1);
    released.once('close', () => {
      const left = (this.#open.get(address) ?? 1) - 1;
      if (left <= 0) this.#open.delete(address);
      else this.#open.set(address, left);
    });
  }

  /** Open streams of one address. */
  count(address: string): number {
    return this.#open.get(address) ?? 0;
  }
}
