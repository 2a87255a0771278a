import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Test } from 'tap';
import { Webhook } from 'standardwebhooks';

export const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

export interface Received {
  id: string;
  timestamp: string;
  body: { type: string; timestamp: string; data: { seq: number; device: { deviceId: string; state: string }; previousState: string | null } };
  /** The signature verified with a Standard Webhooks library, as a receiver would. */
  verified: boolean;
  /** What the receiver answered; 0 while it has not (or never did: the sender gave up first). */
  status: number;
}

/** How the receiver answers a request; `hold`: not at all, until the sender hangs up (a timeout on the sender's clock). */
export type Behaviour = (req: IncomingMessage) => { status: number; hold?: boolean; headers?: Record<string, string> };

/** A real HTTP webhook receiver that verifies signatures and answers as `behaviour` says. */
export class Receiver {
  readonly received: Received[] = [];
  behaviour: Behaviour = () => ({ status: 204 });
  #server: Server | null = null;
  #port = 0;
  #waiters = new Set<() => void>();
  readonly #verifier = new Webhook(SECRET);

  static async start(t: Test): Promise<Receiver> {
    const receiver = new Receiver();
    await receiver.up();
    t.teardown(() => receiver.down());
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/hook`;
  }

  /** Only the deliveries it accepted (2xx). */
  get accepted(): Received[] {
    return this.received.filter((r) => r.status >= 200 && r.status < 300);
  }

  async up(): Promise<void> {
    const server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(this.#port, '127.0.0.1', resolve));
    this.#port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Stops listening: deliveries meet a refused connection until up() again, on the same port. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  /** Resolves when `match` holds for the deliveries so far (checked on each new one). */
  until(match: (r: Receiver) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!match(this)) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${this.received.length}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += chunk;
    const headers = { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) };
    let verified = false;
    try {
      this.#verifier.verify(text, headers);
      verified = true;
    } catch {
      verified = false;
    }
    const entry: Received = { id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], body: JSON.parse(text) as Received['body'], verified, status: 0 };
    this.received.push(entry);
    this.#wake();
    const answer = this.behaviour(req);
    if (answer.hold) {
      if (!res.destroyed) await new Promise((resolve) => res.once('close', resolve));
      return;
    }
    if (res.destroyed) return;
    res.writeHead(answer.status, answer.headers).end();
    entry.status = answer.status;
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
  }
}
