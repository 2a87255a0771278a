import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createClient, type Client } from 'graphql-ws';
import mqtt, { type MqttClient } from 'mqtt';
import WebSocket from 'ws';
import { startScript, waitFor, type Proc } from './procs.js';
import { wiiheyMessage } from './publish.js';
import { latencies, lost, round, type Latencies } from './stats.js';

// The live streams measured from outside: a paced publisher, the receivers of bench/receivers.ts
// (their own process) and what they report. A message's latency is the receiver's clock minus the
// `sentAt` the publisher stamped into it (ms, both of this machine's wall clock, with the
// sub-millisecond part of performance.now()). The bridge keeps `sentAt` in device.attributes; the
// bare forwarder passes the MQTT payload as it came: either way the frame holds `"sentAt":<ms>`.
// Warm-up messages carry no sentAt: counted apart, never measured.

export const TOPIC = 'iot/bench/inbox';

/** What a receiver connects to: the bridge's three streams, or the bare forwarder. */
export type ReceiverKind = 'ws' | 'graphql' | 'sse' | 'forwarder';
export const KINDS: readonly ReceiverKind[] = ['ws', 'graphql', 'sse', 'forwarder'];
export const LABEL: Record<ReceiverKind, string> = {
  ws: '/ws',
  graphql: 'GraphQL subscription',
  sse: '/events (SSE)',
  forwarder: 'bare ws forwarder',
};

const SUBSCRIPTION = 'subscription { deviceUpdated { seq device { attributes } } }';
/** Latencies kept per kind: a uniform sample beyond it (stats.latencies spreads its input into Math.max). */
export const SAMPLE_LIMIT = 50_000;

/** Wall-clock milliseconds with a fractional part: Date.now() rounds to whole ms. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

const KEY = '"sentAt":';

/** The `sentAt` of a frame, or null for a warm-up message (none, or not a number). */
export function sentAtOf(frame: Buffer | string): number | null {
  const at = frame.indexOf(KEY);
  if (at === -1) return null;
  const start = at + KEY.length;
  const text = typeof frame === 'string' ? frame.slice(start, start + 32) : frame.toString('latin1', start, start + 32);
  const value = Number.parseFloat(text);
  return Number.isFinite(value) ? value : null;
}

// --- the receiver side (bench/receivers.ts) ---

/** Latencies: a uniform sample of at most SAMPLE_LIMIT (reservoir sampling, Algorithm R), the exact max. */
export class Sampler {
  readonly #sample: number[] = [];
  #seen = 0;
  #max = Number.NEGATIVE_INFINITY;

  add(ms: number): void {
    if (ms > this.#max) this.#max = ms;
    this.#seen++;
    if (this.#sample.length < SAMPLE_LIMIT) this.#sample.push(ms);
    else {
      const j = Math.floor(Math.random() * this.#seen);
      if (j < SAMPLE_LIMIT) this.#sample[j] = ms;
    }
  }

  summary(): Latency {
    return { ...latencies(this.#sample), max: this.#seen === 0 ? Number.NaN : round(this.#max), count: this.#seen, sampled: this.#sample.length };
  }
}

/** Percentiles of the sample, the exact max, `count` latencies in all, `sampled` of them kept. */
export type Latency = Latencies & { sampled: number };

/** What one kind of receiver saw: per-client counters, a bounded sample of latencies. */
export class Tally {
  /** Stamped messages per client. */
  readonly delivered: number[];
  /** Warm-up messages per client. */
  readonly warm: number[];
  connected = 0;
  /** Clients whose connection ended or failed while measuring. */
  closed = 0;
  readonly latency = new Sampler();

  /** `all`: the latencies of every kind of the process, together. */
  constructor(
    readonly clients: number,
    private readonly all: Sampler,
  ) {
    this.delivered = new Array<number>(clients).fill(0);
    this.warm = new Array<number>(clients).fill(0);
  }

  /** One frame of client `i` received at `at` (nowMs). */
  frame(i: number, at: number, sentAt: number | null): void {
    if (sentAt === null) {
      this.warm[i] = this.warm[i]! + 1;
      return;
    }
    this.delivered[i] = this.delivered[i]! + 1;
    this.latency.add(at - sentAt);
    this.all.add(at - sentAt);
  }

  report(withLatency: boolean): KindReport {
    return {
      clients: this.clients,
      connected: this.connected,
      closed: this.closed,
      delivered: this.delivered,
      warmMin: this.clients === 0 ? 0 : Math.min(...this.warm),
      latency: withLatency ? this.latency.summary() : null,
    };
  }
}

export interface KindReport {
  clients: number;
  connected: number;
  closed: number;
  /** Stamped messages per client. */
  delivered: number[];
  /** The fewest warm-up messages any client got: ≥ 1 once every client's subscription is live. */
  warmMin: number;
  /** In the final report only. */
  latency: Latency | null;
}

export interface ReceiverReport {
  n: number;
  final: boolean;
  kinds: Partial<Record<ReceiverKind, KindReport>>;
  /** In the final report only: the latencies of every client of every kind together. */
  all: Latency | null;
}

/** ws://… or http://… for a kind, from the server's http://host:port. */
function endpoint(kind: ReceiverKind, base: string): string {
  const ws = base.replace(/^http/, 'ws');
  switch (kind) {
    case 'ws':
      return `${ws}/ws?snapshot=false`;
    case 'graphql':
      return `${ws}/graphql`;
    case 'sse':
      return `${base}/events`;
    case 'forwarder':
      return `${ws}/`;
  }
}

/**
 * Connects client `i` of `kind` and counts its frames in `tally`; resolves once it receives (the
 * socket is open, graphql-ws acknowledged and the subscribe sent, the SSE response begun) with the
 * function that closes it.
 */
export function openReceiver(kind: ReceiverKind, base: string, i: number, tally: Tally): Promise<() => void> {
  const url = endpoint(kind, base);
  if (kind === 'graphql') return openGraphql(url, i, tally);
  if (kind === 'sse') return openSse(url, i, tally);
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    let open = false;
    socket.on('message', (data: Buffer, isBinary) => {
      const at = nowMs();
      // /ws: update frames only (no snapshot with snapshot=false; a silent frame is no message)
      if (kind === 'ws' && !(data.length > 16 && data.toString('latin1', 0, 16) === '{"type":"update"')) return;
      if (!isBinary) tally.frame(i, at, sentAtOf(data));
    });
    socket.once('open', () => {
      open = true;
      tally.connected++;
      resolve(() => socket.terminate());
    });
    socket.once('close', () => {
      if (open) tally.closed++;
    });
    socket.once('error', (err) => {
      if (!open) reject(new Error(`${url}: ${err.message}`));
    });
  });
}

function openGraphql(url: string, i: number, tally: Tally): Promise<() => void> {
  return new Promise((resolve, reject) => {
    let acknowledged = false;
    const client: Client = createClient({
      url,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      shouldRetry: () => false,
      on: {
        connected: () => {
          acknowledged = true;
          tally.connected++;
          resolve(() => {
            void client.dispose();
          });
        },
        closed: (event) => {
          if (acknowledged) tally.closed++;
          else reject(new Error(`${url}: closed before connection_ack (${(event as { code?: number }).code ?? '?'})`));
        },
      },
      onNonLazyError: (err) => reject(new Error(`${url}: ${String((err as Error).message ?? err)}`)),
    });
    client.subscribe<{ deviceUpdated: { device: { attributes: { sentAt?: unknown } } } }>(
      { query: SUBSCRIPTION },
      {
        next: (result) => {
          const at = nowMs();
          const sentAt = result.data?.deviceUpdated.device.attributes.sentAt;
          tally.frame(i, at, typeof sentAt === 'number' ? sentAt : null);
        },
        error: () => {}, // the socket closed: counted in `closed` above
        complete: () => {},
      },
    );
  });
}

function openSse(url: string, i: number, tally: Tally): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`${url}: HTTP ${res.statusCode}`));
        res.resume();
        return;
      }
      tally.connected++;
      res.setEncoding('utf8');
      let rest = '';
      res.on('data', (chunk: string) => {
        const at = nowMs();
        rest += chunk;
        let end: number;
        while ((end = rest.indexOf('\n\n')) !== -1) {
          const block = rest.slice(0, end);
          rest = rest.slice(end + 2);
          if (block.includes('\nevent: update\n')) tally.frame(i, at, sentAtOf(block));
        }
      });
      res.once('close', () => tally.closed++);
      resolve(() => req.destroy());
    });
    req.once('error', (err) => reject(new Error(`${url}: ${err.message}`)));
    req.end();
  });
}

// --- the bench side ---

/** Clients of `kind`, `count` each, in bench/receivers.ts: their own process, reporting on SIGUSR2 and SIGTERM. */
export interface Receivers extends Proc {
  lines: string[];
  /** Counters now (no percentiles: cheap enough to ask while messages flow). */
  poll(): Promise<ReceiverReport>;
  /** The final report, with the latencies; the process exits after it. */
  finish(): Promise<ReceiverReport>;
}

export async function startReceivers(base: string, kinds: readonly ReceiverKind[], count: number): Promise<Receivers> {
  const proc = await startScript('receivers.ts', [base, kinds.join(','), String(count)]);
  const ask = async (signal: NodeJS.Signals): Promise<ReceiverReport> => {
    const from = proc.lines.length;
    proc.child.kill(signal);
    let line: string | undefined;
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null && signal !== 'SIGTERM') throw new Error(`bench/receivers.ts exited: ${proc.output()}`);
        line = proc.lines.slice(from).find((l) => l.startsWith('report '));
        return line !== undefined;
      },
      30_000,
      'the receivers to report',
      10,
    );
    return JSON.parse(line!.slice('report '.length)) as ReceiverReport;
  };
  return { ...proc, poll: () => ask('SIGUSR2'), finish: () => ask('SIGTERM') };
}

/** Messages a kind's clients missed, client by client: a duplicate on one never hides a loss on another. */
export function lostOf(kind: KindReport, perClient: number): number {
  let n = 0;
  for (const got of kind.delivered) n += lost(perClient, got);
  return n;
}

function missing(report: ReceiverReport, perClient: number): number {
  let n = 0;
  for (const kind of Object.values(report.kinds)) n += lostOf(kind, perClient);
  return n;
}

/**
 * After the last publish: waits until every client has `perClient` messages, or until nothing
 * came for `stallMs`, then takes the final report. The first look comes after a pause, so that
 * even its cheap counters do not hold up the last frames.
 */
export async function drain(receivers: Receivers, perClient: number, stallMs = 3000, timeoutMs = 60_000): Promise<ReceiverReport> {
  await sleep(300);
  const started = Date.now();
  let lastMissing = Number.NaN;
  let lastChange = Date.now();
  for (;;) {
    const now = missing(await receivers.poll(), perClient);
    if (now === 0) break;
    if (now !== lastMissing) {
      lastMissing = now;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stallMs) break;
    if (Date.now() - started > timeoutMs) break;
    await sleep(200);
  }
  return receivers.finish();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Publishes QoS 0 at a steady rate: a timer tick every 10 ms sends what is due since the start
 * (20 a tick at 2,000 msg/s; a late tick catches up, so the rate holds). Warm-up messages (no
 * sentAt) go out until the receivers take every client's first one and `warmMs` passed; then
 * exactly `stamped` messages with sentAt. Every message is a new update: device i % devices,
 * its own timestamp one second later than its previous one (starting an hour ago, so that
 * neither the silence sweep nor the clock-skew check ever sees them).
 */
export async function publishPaced(
  url: string,
  opts: { rate: number; stamped: number; devices: number; warmMs: number; receivers: Receivers },
): Promise<{ warm: number; stamped: number; ms: number }> {
  const client: MqttClient = await mqtt.connectAsync(url, { clientId: `bench-pace-${process.pid}-${Math.random()}`, clean: true });
  // MQTT.js leaves Nagle's algorithm on: a publish could wait for the broker's delayed ACK (40 ms on Linux)
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  const base = Math.floor(Date.now() / 1000) - 3600;
  const rounds = new Array<number>(opts.devices).fill(0);
  let sent = 0;
  let warm = 0;
  let stamped = 0;
  let stamping = false;
  let stampStart = 0;
  const publish = (): void => {
    const device = sent % opts.devices;
    const round = rounds[device]!;
    rounds[device] = round + 1;
    const sentAt = stamping ? nowMs() : undefined;
    client.publish(TOPIC, wiiheyMessage(`d${device}`, round % 2 ? 'open' : 'close', base + round, sentAt), { qos: 0 });
    sent++;
    if (stamping) stamped++;
    else warm++;
  };
  try {
    const t0 = performance.now();
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const timer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) * opts.rate) / 1000);
      // eslint-disable-next-line no-unmodified-loop-condition -- publish() counts sent
      while (sent < due) {
        if (stamping && stamped >= opts.stamped) break;
        publish();
      }
      if (stamping && stamped >= opts.stamped) done();
    }, 10);
    try {
      // warm-up: every client receives, and the code paths are hot, before anything is measured
      const warmDeadline = Date.now() + 30_000;
      for (;;) {
        await sleep(100);
        const report = await opts.receivers.poll();
        const ready = Object.values(report.kinds).every((k) => k.warmMin >= 1 && k.connected === k.clients);
        if (ready && performance.now() - t0 >= opts.warmMs) break;
        if (Date.now() > warmDeadline) {
          const behind = Object.entries(report.kinds).map(([k, r]) => `${k}: warmMin ${r.warmMin}, ${r.connected}/${r.clients} connected`);
          throw new Error(`the receivers got no warm-up message in 30 s (${behind.join('; ')})`);
        }
      }
      stamping = true;
      stampStart = performance.now();
      if (opts.stamped === 0) done();
      await finished;
    } finally {
      clearInterval(timer);
    }
    return { warm, stamped, ms: performance.now() - stampStart };
  } finally {
    await client.endAsync();
  }
}
