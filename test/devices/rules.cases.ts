import type { DeviceRecord } from '../../src/devices/types.js';
import { record } from '../helpers/records.js';

// SPEC §4, one row per case, as data: the rules' unit test and every store's contract run them.
// `history` messages are applied first, in order; then `message`; `expected` is what it gives.

export interface RuleCase {
  name: string;
  history: DeviceRecord[];
  message: DeviceRecord;
  expected:
    | {
      kind: 'update';
      changed: boolean;
      state: string;
      /** The event's: the state before this message. */
      previousState: string | null;
      /** The device's: the state before its last change. */
      devicePreviousState: string | null;
      /** Unix seconds. */
      lastChangedAt: number;
      messages: number;
    }
    | { kind: 'duplicate' }
    | { kind: 'late' };
}

const T = 1_700_000_000;

export const ruleCases: RuleCase[] = [
  {
    name: 'device unknown: a new device, a state change from null',
    history: [],
    message: record({ state: 'open', timestamp: T }),
    expected: { kind: 'update', changed: true, state: 'open', previousState: null, devicePreviousState: null, lastChangedAt: T, messages: 1 },
  },
  {
    name: 'newer timestamp, state differs: a change, lastChangedAt moves',
    history: [record({ state: 'close', timestamp: T })],
    message: record({ state: 'open', timestamp: T + 10 }),
    expected: { kind: 'update', changed: true, state: 'open', previousState: 'close', devicePreviousState: 'close', lastChangedAt: T + 10, messages: 2 },
  },
  {
    name: 'newer timestamp, same state: a heartbeat, lastChangedAt stays',
    history: [record({ state: 'close', timestamp: T })],
    message: record({ state: 'close', timestamp: T + 10 }),
    expected: { kind: 'update', changed: false, state: 'close', previousState: 'close', devicePreviousState: null, lastChangedAt: T, messages: 2 },
  },
  {
    name: 'same timestamp, same state: a duplicate, nothing stored',
    history: [record({ state: 'close', timestamp: T })],
    message: record({ state: 'close', timestamp: T, batteryLevel: 1 }),
    expected: { kind: 'duplicate' },
  },
  {
    name: 'same timestamp, state differs: taken as newer',
    history: [record({ state: 'close', timestamp: T })],
    message: record({ state: 'open', timestamp: T }),
    expected: { kind: 'update', changed: true, state: 'open', previousState: 'close', devicePreviousState: 'close', lastChangedAt: T, messages: 2 },
  },
  {
    name: 'older timestamp: late, the latest state untouched',
    history: [record({ state: 'close', timestamp: T })],
    message: record({ state: 'open', timestamp: T - 100 }),
    expected: { kind: 'late' },
  },
  {
    name: 'a late message redelivered: a duplicate',
    history: [record({ state: 'close', timestamp: T }), record({ state: 'open', timestamp: T - 100 })],
    message: record({ state: 'open', timestamp: T - 100 }),
    expected: { kind: 'duplicate' },
  },
  {
    name: 'a heartbeat after a change keeps the previous state and the change time',
    history: [record({ state: 'close', timestamp: T }), record({ state: 'open', timestamp: T + 5 })],
    message: record({ state: 'open', timestamp: T + 50 }),
    expected: { kind: 'update', changed: false, state: 'open', previousState: 'open', devicePreviousState: 'close', lastChangedAt: T + 5, messages: 3 },
  },
  {
    name: 'the platform offline state is an ordinary state change',
    history: [record({ state: 'close', timestamp: T })],
    message: record({ state: 'offline', timestamp: T + 1 }),
    expected: { kind: 'update', changed: true, state: 'offline', previousState: 'close', devicePreviousState: 'close', lastChangedAt: T + 1, messages: 2 },
  },
];
