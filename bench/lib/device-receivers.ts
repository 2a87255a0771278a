import { startScript, waitFor, type Proc } from './procs.js';

// Live clients that each follow ONE device (a "device page"), for bench/scenarios/ingest-clients.ts:
// COUNT /ws clients (`?snapshot=false&deviceId=d<i>`) and COUNT graphql-ws subscribers
// (`deviceUpdated(deviceId: "d<i>")`), client i on device d<i % DEVICES>, in a process of their own
// (bench/lib/device-receivers-main.ts). They count update frames per client and check each one:
// its device is the client's, its seq is above the last one the client saw. Frames are read with
// string scans, not JSON.parse, and GraphQL speaks graphql-transport-ws over a bare `ws` socket:
// the receivers share the machine's two cores with the bridge, so they keep their own cost low.

export type DeviceKind = 'ws' | 'graphql';
export const DEVICE_KINDS: readonly DeviceKind[] = ['ws', 'graphql'];

/** What one kind of client saw, per client. */
export interface DeviceKindReport {
  clients: number;
  /** Clients connected (and, for GraphQL, acknowledged and subscribed). */
  connected: number;
  /** Clients whose connection ended after it opened. */
  closed: number;
  /** Update frames per client, since the client connected. */
  updates: number[];
  /** Frames whose seq was not above the previous frame's, over all clients. */
  outOfOrder: number;
  /** Frames of a device other than the client's, over all clients. */
  otherDevice: number;
  /** Frames the scan could not read (no seq or no deviceId), over all clients. */
  unreadable: number;
}

export interface DeviceReceiverReport {
  n: number;
  final: boolean;
  kinds: Record<DeviceKind, DeviceKindReport>;
}

export interface DeviceReceivers extends Proc {
  /** The counters now (cheap: an array per kind). */
  poll(): Promise<DeviceReceiverReport>;
  /** The final counters; the process closes its clients and exits after it. */
  finish(): Promise<DeviceReceiverReport>;
}

/** The device client `i` follows. */
export function deviceOf(i: number, devices: number): string {
  return `d${i % devices}`;
}

/** `count` clients of each kind on the bridge at `base` (http://host:port), spread over `devices` devices. */
export async function startDeviceReceivers(base: string, count: number, devices: number): Promise<DeviceReceivers> {
  const proc = await startScript('lib/device-receivers-main.ts', [base, String(count), String(devices)]);
  const ask = async (signal: NodeJS.Signals): Promise<DeviceReceiverReport> => {
    const from = proc.lines.length;
    proc.child.kill(signal);
    let line: string | undefined;
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null && signal !== 'SIGTERM') throw new Error(`bench/lib/device-receivers-main.ts exited: ${proc.output()}`);
        line = proc.lines.slice(from).find((l) => l.startsWith('report '));
        return line !== undefined;
      },
      30_000,
      'the device receivers to report',
      10,
    );
    return JSON.parse(line!.slice('report '.length)) as DeviceReceiverReport;
  };
  return { ...proc, poll: () => ask('SIGUSR2'), finish: () => ask('SIGTERM') };
}

/** Every client of every kind with at least `min[kind][i]` updates. */
export function everyClientHas(report: DeviceReceiverReport, min: (kind: DeviceKind, i: number) => number): boolean {
  return DEVICE_KINDS.every((kind) => report.kinds[kind].updates.every((got, i) => got >= min(kind, i)));
}
