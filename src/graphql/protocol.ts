import { GraphQLError } from 'graphql';
import type { Clock, Timer } from '../clock.js';
import type { GraphqlRequest, Prepared } from './run.js';
import type { SubscriptionHub } from './subscriptions.js';

// The graphql-ws protocol (graphql-transport-ws), server side, as a state machine over a tiny
// socket interface, so that its rules are tested with object literals (as graphql-ws does).
// github.com/enisdenjo/graphql-ws PROTOCOL.md; SPEC §5 adds: 4408 when no connection_init comes
// within 3 s, 4403 for a refused one, and nothing but pong is sent before connection_ack.

export const GRAPHQL_WS_PROTOCOL = 'graphql-transport-ws';

/** graphql-ws close codes (PROTOCOL.md). */
export const GqlClose = {
  BadRequest: 4400,
  Unauthorized: 4401,
  Forbidden: 4403,
  SubprotocolNotAcceptable: 4406,
  ConnectionInitialisationTimeout: 4408,
  SubscriberAlreadyExists: 4409,
  TooManyInitialisationRequests: 4429,
} as const;

export interface GqlSocket {
  readonly protocol: string;
  send(data: string): void;
  close(code: number, reason: string): void;
}

export interface GqlConnectionOptions {
  hub: SubscriptionHub;
  /** Parses, validates and coerces a subscribe message's payload: the rules of POST /graphql (run.ts). */
  prepare(request: GraphqlRequest): Promise<Prepared | readonly GraphQLError[]>;
  /**
   * Runs a query or a mutation (not a subscription) for a subscribe message: the `next` payload,
   * as JSON. A mutation is checked with the connection's key there, as over POST (plugin.ts).
   */
  executeQuery(prepared: Prepared): Promise<string>;
  /** Decides a connection_init; false closes with 4403. */
  onConnect(payload: Record<string, unknown> | null): boolean | Promise<boolean>;
  initTimeoutMs: number;
  /** Whose timer closes a connection without connection_init: the service's clock. */
  clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>;
  onError(err: unknown): void;
}

/** Operations one socket may run at once: each subscription is executed for every event. */
export const MAX_OPERATIONS = 100;

interface Operation {
  /** Stops a subscription; null while the operation is prepared, and for a query. */
  stop: (() => void) | null;
}

interface SubscribePayload {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: Record<string, unknown> | null;
}

type Message =
  | { type: 'connection_init'; payload?: Record<string, unknown> | null }
  | { type: 'ping' | 'pong'; payload?: unknown }
  | { type: 'subscribe'; id: string; payload: SubscribePayload }
  | { type: 'complete'; id: string };

export class GqlConnection {
  #initReceived = false;
  #acknowledged = false;
  #closed = false;
  /** Operations by id, each a token of its own: a finishing query never touches a newer one of its id. */
  readonly #operations = new Map<string, Operation>();
  #initTimer: Timer | undefined;

  constructor(
    private readonly socket: GqlSocket,
    private readonly options: GqlConnectionOptions,
  ) {
    if (socket.protocol !== GRAPHQL_WS_PROTOCOL) {
      this.close(GqlClose.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    this.#initTimer = options.clock.setTimeout(() => {
      if (!this.#acknowledged) this.close(GqlClose.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }, options.initTimeoutMs);
  }

  get operations(): number {
    return this.#operations.size;
  }

  async receive(text: string): Promise<void> {
    if (this.#closed) return;
    const message = parseMessage(text);
    if (typeof message === 'string') return this.close(GqlClose.BadRequest, message);
    switch (message.type) {
      case 'connection_init': {
        if (this.#initReceived) return this.close(GqlClose.TooManyInitialisationRequests, 'Too many initialisation requests');
        this.#initReceived = true;
        let allowed = false;
        try {
          allowed = await this.options.onConnect(message.payload ?? null);
        } catch (err) {
          this.options.onError(err);
        }
        if (this.#closed) return;
        if (!allowed) return this.close(GqlClose.Forbidden, 'Forbidden');
        this.options.clock.clearTimeout(this.#initTimer);
        this.#acknowledged = true;
        this.socket.send('{"type":"connection_ack"}');
        return;
      }
      case 'ping':
        this.socket.send('{"type":"pong"}');
        return;
      case 'pong':
        return;
      case 'complete': {
        const operation = this.#operations.get(message.id);
        this.#operations.delete(message.id);
        operation?.stop?.();
        return;
      }
      case 'subscribe':
        if (!this.#acknowledged) return this.close(GqlClose.Unauthorized, 'Unauthorized');
        if (this.#operations.has(message.id)) {
          return this.close(GqlClose.SubscriberAlreadyExists, `Subscriber for ${message.id} already exists`);
        }
        return this.#subscribe(message.id, message.payload);
    }
  }

  /** The socket closed: stop every operation. */
  closed(): void {
    this.#closed = true;
    this.options.clock.clearTimeout(this.#initTimer);
    for (const operation of this.#operations.values()) operation.stop?.();
    this.#operations.clear();
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.closed();
    this.socket.close(code, reason);
  }

  async #subscribe(id: string, payload: SubscribePayload): Promise<void> {
    const errors = (list: readonly GraphQLError[]): void =>
      this.socket.send(JSON.stringify({ id, type: 'error', payload: list.map((e) => e.toJSON()) }));
    if (this.#operations.size >= MAX_OPERATIONS) {
      return errors([new GraphQLError(`at most ${MAX_OPERATIONS} operations at once on one connection`)]);
    }
    // the id is taken while the request waits for its turns: a second subscribe with it is 4409
    const token: Operation = { stop: null };
    this.#operations.set(id, token);
    const current = (): boolean => !this.#closed && this.#operations.get(id) === token;
    const done = (): void => {
      this.#operations.delete(id);
    };
    const prepared = await this.options.prepare({
      query: payload.query,
      variables: payload.variables ?? null,
      operationName: payload.operationName ?? null,
    });
    if (!current()) return; // completed by the client, or the socket closed, meanwhile
    if (!('document' in prepared)) {
      done();
      return errors(prepared);
    }
    const { document, operation, operationName, variables } = prepared;

    if (operation.operation === 'subscription') {
      const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
      try {
        token.stop = this.options.hub.add({ document, operationName, variables }, { next: (json) => this.socket.send(`${prefix}${json}}`) });
      } catch (err) {
        done();
        return errors([new GraphQLError((err as Error).message)]);
      }
      return;
    }
    // a query or a mutation over the socket: one result, then complete
    let payloadJson: string;
    try {
      payloadJson = await this.options.executeQuery(prepared);
    } catch (err) {
      this.options.onError(err);
      payloadJson = JSON.stringify({ errors: [new GraphQLError('internal error')] });
    }
    if (!current()) return;
    done();
    this.socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":${payloadJson}}`);
    this.socket.send(`{"id":${JSON.stringify(id)},"type":"complete"}`);
  }
}

/** A protocol message, or why the text is not one (a reason for close code 4400). */
function parseMessage(text: string): Message | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'Invalid message received: not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'Invalid message received: not an object';
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'connection_init':
    case 'ping':
    case 'pong':
      if (m.payload !== undefined && m.payload !== null && (typeof m.payload !== 'object' || Array.isArray(m.payload))) {
        return `Invalid message received: "${m.type}" payload must be an object`;
      }
      return m as Message;
    case 'complete':
      return typeof m.id === 'string' && m.id !== '' ? (m as Message) : 'Invalid message received: "complete" needs an id';
    case 'subscribe': {
      if (typeof m.id !== 'string' || m.id === '') return 'Invalid message received: "subscribe" needs an id';
      const p = m.payload as Record<string, unknown> | null | undefined;
      if (typeof p !== 'object' || p === null || typeof p.query !== 'string') {
        return 'Invalid message received: "subscribe" needs a payload with a query';
      }
      if (p.variables !== undefined && p.variables !== null && (typeof p.variables !== 'object' || Array.isArray(p.variables))) {
        return 'Invalid message received: variables must be an object';
      }
      if (p.operationName !== undefined && p.operationName !== null && typeof p.operationName !== 'string') {
        return 'Invalid message received: operationName must be a string';
      }
      if (p.extensions !== undefined && p.extensions !== null && (typeof p.extensions !== 'object' || Array.isArray(p.extensions))) {
        return 'Invalid message received: extensions must be an object';
      }
      return m as Message;
    }
    default:
      return `Invalid message received: unknown type ${JSON.stringify(String(m.type)).slice(0, 40)}`;
  }
}
