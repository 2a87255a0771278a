import {
  GraphQLError,
  Kind,
  execute,
  getNamedType,
  getOperationAST,
  isInterfaceType,
  isObjectType,
  print,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
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

export type SubscriptionField = 'deviceUpdated' | 'stateChanged' | 'deviceSilent' | 'alarmChanged';

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
  /** alarmChanged's `type` argument. */
  alarmType: string | null;
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
    alarmChanged: new DeviceIndex(),
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
        return;
      case 'alarm': {
        // SPEC §12: every transition; the event has AlarmEvent's fields (seq, transition, alarm)
        const type = event.alarm.type;
        this.#byField.alarmChanged.forDevice(event.deviceId, (group) => {
          if (group.alarmType === null || group.alarmType === type) this.#execute(group, event);
        });
      }
    }
  }

  #deliver(groups: DeviceIndex<Group>, device: Device, value: unknown): void {
    groups.forDevice(device.deviceId, (group) => {
      if (group.state === null || group.state === device.state) this.#execute(group, value);
    });
  }

  #execute(group: Group, value: unknown): void {
    let payload: string;
    try {
      const result = execute({
        schema: this.schema,
        document: group.document,
        rootValue: { [group.field]: value },
        operationName: group.operationName,
        variableValues: group.variables,
      }) as ExecutionResult; // every resolver below Subscription is synchronous (storeFieldsRule)
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
    const args = getArgumentValues(definition, node, request.variables) as { deviceId?: string | null; state?: string | null; type?: string | null };
    return {
      key,
      field,
      deviceId: args.deviceId ?? null,
      state: args.state ?? null,
      alarmType: args.type ?? null,
      document: request.document,
      operationName: request.operationName,
      variables: request.variables,
      subscribers: new Set(),
    };
  }
}

/**
 * Fields whose resolvers read the store. The hub computes each event's answer synchronously, once
 * per group (a store read per event and group would put the store on the fan-out's path), so a
 * subscription selecting one is refused when it is validated, on every transport.
 */
export const STORE_FIELDS: ReadonlySet<string> = new Set(['Device.alarms']);

export function storeFieldsRule(): ValidationRule {
  return (context) => ({
    OperationDefinition(operation) {
      if (operation.operation !== 'subscription') return;
      const root = context.getSchema().getSubscriptionType();
      if (!root) return;
      const found = storeField(context, root, operation.selectionSet, new Set());
      if (found === null) return;
      context.reportError(
        new GraphQLError(`${found} reads the store and is not available in subscriptions: query it`, {
          nodes: [operation],
          extensions: { code: 'BRG_ERR_GQL_SUBSCRIPTION_FIELD' },
        }),
      );
    },
  });
}

/** The first field of STORE_FIELDS the selection reaches (`Type.field`), or null. Each fragment is walked once. */
function storeField(context: ValidationContext, parent: GraphQLNamedType, set: SelectionSetNode, seen: Set<string>): string | null {
  const schema = context.getSchema();
  for (const selection of set.selections) {
    let found: string | null = null;
    if (selection.kind === Kind.FIELD) {
      if (!isObjectType(parent) && !isInterfaceType(parent)) continue;
      const field = parent.getFields()[selection.name.value];
      if (field === undefined) continue; // an unknown field is another rule's error
      const key = `${parent.name}.${field.name}`;
      if (STORE_FIELDS.has(key)) return key;
      if (selection.selectionSet) found = storeField(context, getNamedType(field.type), selection.selectionSet, seen);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
      if (type) found = storeField(context, type, selection.selectionSet, seen);
    } else {
      const name = selection.name.value;
      const fragment = context.getFragment(name);
      if (!fragment || seen.has(name)) continue; // the fragment's type fixes its fields: once is enough
      seen.add(name);
      const type = schema.getType(fragment.typeCondition.name.value);
      if (type) found = storeField(context, type, fragment.selectionSet, seen);
    }
    if (found !== null) return found;
  }
  return null;
}
