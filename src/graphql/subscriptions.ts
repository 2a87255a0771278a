import {
  execute,
  getOperationAST,
  print,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { getArgumentValues } from 'graphql/execution/values.js';
import type { DeviceEvent } from '../devices/events.js';
import type { Device } from '../devices/types.js';
import { DeviceIndex } from '../live/index.js';
import { answerJson } from './answer.js';

// SPEC §5/§10: GraphQL subscriptions fed by the one event stream, and each event executed and
// serialized once per distinct subscription (document + variables), not once per subscriber.
// mercurius would run subscribe() and JSON.stringify for every subscriber and every event.
// Each event's answer has the byte budget of a query's (answer.ts): aliases of `device {
// attributes }` must not turn one event into megabytes; an event over it gets an error instead.

export type SubscriptionField = 'deviceUpdated' | 'stateChanged' | 'deviceSilent';

/** Where `next` frames go: one graphql-ws operation of one socket. */
export interface Subscriber {
  /** Sends the payload (a serialized ExecutionResult) as this operation's `next` message. */
  next(payloadJson: string): void;
}

interface Group {
  key: string;
  field: SubscriptionField;
  deviceId: string | null;
  state: string | null;
  document: DocumentNode;
  operationName: string | undefined;
  variables: Record<string, unknown> | undefined;
  subscribers: Set<Subscriber>;
}

export interface HubOptions {
  /** GRAPHQL_MAX_RESPONSE_BYTES: the most one event's answer may have. */
  maxResponseBytes: number;
  /** Values of the JSON scalar (schema.ts), written natively (answer.ts). */
  leaves?: WeakSet<object>;
  onError(err: unknown): void;
}

export interface SubscriptionRequest {
  document: DocumentNode;
  operationName?: string | undefined;
  variables?: Record<string, unknown> | undefined;
}

export class SubscriptionHub {
  readonly #groups = new Map<string, Group>();
  /** Each field's groups, filed by the device their `deviceId` argument names (live/index.ts). */
  readonly #byField: Record<SubscriptionField, DeviceIndex<Group>> = {
    deviceUpdated: new DeviceIndex(),
    stateChanged: new DeviceIndex(),
    deviceSilent: new DeviceIndex(),
  };

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly options: HubOptions,
  ) {}

  /** Distinct executions per event: subscribers of the same document and variables share one. */
  get groupCount(): number {
    return this.#groups.size;
  }

  get size(): number {
    let n = 0;
    for (const group of this.#groups.values()) n += group.subscribers.size;
    return n;
  }

  /** Adds a validated subscription operation; returns the function that removes it. */
  add(request: SubscriptionRequest, subscriber: Subscriber): () => void {
    // the printed document: spacing and comments do not make another group (and another execution)
    const key = `${request.operationName ?? ''}\u0000${JSON.stringify(request.variables ?? {})}\u0000${print(request.document)}`;
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = this.#group(key, request);
      this.#groups.set(key, group);
      this.#byField[group.field].set(group, group.deviceId === null ? null : [group.deviceId]);
    }
    group.subscribers.add(subscriber);
    const g = group;
    return () => {
      g.subscribers.delete(subscriber);
      if (g.subscribers.size === 0) {
        this.#groups.delete(g.key);
        this.#byField[g.field].delete(g);
      }
    };
  }

  /** For every event of the stream, in seq order. */
  publish(event: DeviceEvent): void {
    switch (event.kind) {
      case 'silent':
        this.#deliver(this.#byField.deviceSilent, event.device, event.device);
        return;
      case 'update':
        this.#deliver(this.#byField.deviceUpdated, event.device, event);
        if (event.changed) this.#deliver(this.#byField.stateChanged, event.device, event);
        return;
      case 'meta':
        // SPEC §11: a registry change reaches deviceUpdated, as a DeviceEvent of kind meta that
        // changed nothing: the state before it is the state now (as for a heartbeat update), so
        // that `changed` stays `previousState !== device.state`. A device never heard from has
        // no Device to send (the registry query has its entry).
        if (event.device !== null) {
          const value = { seq: event.seq, kind: 'meta', device: event.device, previousState: event.device.state, changed: false };
          this.#deliver(this.#byField.deviceUpdated, event.device, value);
        }
    }
  }

  #deliver(groups: DeviceIndex<Group>, device: Device, value: unknown): void {
    groups.forDevice(device.deviceId, (group) => this.#execute(group, device, value));
  }

  #execute(group: Group, device: Device, value: unknown): void {
    if (group.state !== null && group.state !== device.state) return;
    let payload: string;
    try {
      const result = execute({
        schema: this.schema,
        document: group.document,
        rootValue: { [group.field]: value },
        operationName: group.operationName,
        variableValues: group.variables,
      }) as ExecutionResult; // every resolver below Subscription is synchronous
      payload = answerJson(result, this.options.maxResponseBytes, this.options.leaves).json;
    } catch (err) {
      this.options.onError(err);
      return;
    }
    for (const subscriber of group.subscribers) subscriber.next(payload);
  }

  #group(key: string, request: SubscriptionRequest): Group {
    const operation = getOperationAST(request.document, request.operationName) as OperationDefinitionNode;
    // graphql's validation (SingleFieldSubscriptionsRule) left exactly one root field
    const node = operation.selectionSet.selections[0];
    if (node === undefined || node.kind !== 'Field') throw new Error('a subscription selects one root field');
    const field = node.name.value as SubscriptionField;
    const definition = this.schema.getSubscriptionType()!.getFields()[field]!;
    const args = getArgumentValues(definition, node, request.variables) as { deviceId?: string | null; state?: string | null };
    return {
      key,
      field,
      deviceId: args.deviceId ?? null,
      state: args.state ?? null,
      document: request.document,
      operationName: request.operationName,
      variables: request.variables,
      subscribers: new Set(),
    };
  }
}
