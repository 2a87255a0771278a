import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { INSPECT_ENV, inspect, type Inspector, type LiveMemory } from '../lib/inspector.js';
import { rss, startBridge, waitFor } from '../lib/procs.js';
import { median, round } from '../lib/stats.js';
import type { Context, Result, Scenario } from '../lib/types.js';

// Issue 13, finding 3: a live client's unsent bytes are bounded by WS_MAX_BUFFERED_BYTES (plus
// one event or snapshot fragment), a client behind for WS_SLOW_CLOSE_SECONDS is closed, and the
// sum over all clients by STREAMS_MAX_TOTAL_BUFFERED_BYTES. Measured from outside: a bridge
// (memory only) holds EVENT_BUFFER events of about 60 KB each and a fleet whose /ws snapshot is
// several MB; raw sockets ask for a replay of the whole buffer (SSE, Last-Event-ID) or for a
// snapshot (/ws) and stop reading right after the response head, so that the bridge's buffers
// fill. Resident memory is sampled while they stall (its peak mixes what the clients hold with
// garbage V8 has not collected yet); once they are all open, the bridge's inspector forces a full
// collection and reports what is live, and again once the bridge has closed them. Each mix of
// clients runs in a bridge of its own, so that no phase inherits the freed but kept memory of
// another. A stalled client the bridge never closes fails the scenario.
//
// The bound compared with is the one src/live and src/streams state, per client
// WS_MAX_BUFFERED_BYTES of unsent bytes plus one event (SSE) or one snapshot fragment (/ws). It
// counts bytes as string lengths; the kernel's socket buffers (several MB per stalled socket on
// loopback) are outside the process and outside that bound, reported apart (/proc/net/sockstat).

const TOPIC = 'iot/bench/inbox';
const MIB = 2 ** 20;
const MAX_BUFFERED = 1_048_576; // WS_MAX_BUFFERED_BYTES, the default, set explicitly
const MAX_TOTAL = 268_435_456; // STREAMS_MAX_TOTAL_BUFFERED_BYTES, the default, set explicitly
/** src/streams/ws.ts: a snapshot fragment is cut after the device that takes it to this size. */
const FRAGMENT = 64 * 1024;
/** The padding of one buffered event: events of about 60 KB. */
const EVENT_PAD = 60_000;
/** The padding of one fleet device: devices of about 750 B of JSON. */
const DEVICE_PAD = 330;
const SAMPLE_MS = 50;
const POLL_MS = 250;
const PAGE_BYTES = 4096; // /proc/net/sockstat counts TCP memory in pages

interface Sizes {
  /** Padded events, all of the replay buffer (EVENT_BUFFER). */
  events: number;
  /** Fleet devices besides the one the padded events update. */
  devices: number;
  slowCloseSeconds: number;
}

interface Phase {
  /** Rows' labels. */
  label: string;
  sse: number;
  ws: number;
}

interface Measured {
  loadedRss: number;
  /** Before the clients, after a full collection. */
  before: LiveMemory;
  /** Resident memory's peak while they stall, nothing forced. */
  peakRss: number;
  /** While they stall, after a full collection. */
  stalled: LiveMemory;
  /** Once the bridge has closed them, after a full collection. */
  after: LiveMemory;
  /** Clients the bridge had open when `stalled` was taken. */
  openAtProbe: number;
  /** The most stalled clients the bridge had open at one poll. */
  peakOpen: number;
  /** From the first stalled client asked for to the last one open (s). */
  openSeconds: number;
  /** From the last stalled client open to none left (s). */
  closeSeconds: number;
  /** Clients closed by the STREAMS_MAX_TOTAL_BUFFERED_BYTES sweep (its warn lines). */
  closedForTotal: number;
  /** Kernel TCP buffers of the whole machine (both ends of every socket), growth while stalled. */
  kernelTcp: number;
  replayBytes: number;
  snapshotBytes: number;
}

export const stalled: Scenario = {
  name: 'stalled',
  description: 'bridge memory while 100 SSE replays and 100 /ws snapshots stall against a 60 MB event buffer, and after they are closed (issue 13)',
  async run(ctx) {
    const n = ctx.size(100);
    // --quick scales the clients, not what each asks for: a replay or a snapshot that fits in the
    // socket buffers and the client's bound leaves a client that is not behind, and never closed.
    // WS_SLOW_CLOSE_SECONDS: longer than opening every client takes (100 /ws snapshots took 5 to
    // 8 s of the bridge's CPU here), so that they all stall together for a while.
    const sizes: Sizes = { events: ctx.quick ? 300 : 1000, devices: 10_000, slowCloseSeconds: ctx.quick ? 4 : 15 };
    const phases: Phase[] = [
      { label: `${n} stalled SSE replays + ${n} stalled /ws snapshots`, sse: n, ws: n },
      { label: `${n} stalled SSE replays`, sse: n, ws: 0 },
      { label: `${n} stalled /ws snapshots`, sse: 0, ws: n },
    ];
    const results: Result[] = [];
    for (const phase of phases) {
      const runs: Measured[] = [];
      for (let run = 0; run < ctx.runs; run++) {
        ctx.log(`  ${phase.label}: run ${run + 1} of ${ctx.runs}`);
        runs.push(await measure(ctx, phase, sizes, run));
      }
      results.push(...rows(ctx, phase, sizes, runs));
    }
    return results;
  },
};

function rows(ctx: Context, phase: Phase, sizes: Sizes, runs: Measured[]): Result[] {
  const clients = phase.sse + phase.ws;
  const m = (pick: (r: Measured) => number): number => median(runs.map(pick));
  const live = m((r) => r.stalled.rss - r.before.rss);
  const peak = m((r) => r.peakRss - r.before.rss);
  const eventBytes = m((r) => r.replayBytes) / sizes.events;
  // What src/live and src/streams allow a client: WS_MAX_BUFFERED_BYTES unsent, and one event
  // (SSE) or one snapshot fragment (/ws: 64 KiB and the device that passes it, at most about an
  // event here) past it.
  const perSse = MAX_BUFFERED + eventBytes;
  const perWs = MAX_BUFFERED + FRAGMENT + eventBytes;
  const bound = phase.sse * perSse + phase.ws * perWs;
  const mib = (bytes: number): number => round(bytes / MIB, 1);
  const kib = (bytes: number): number => round(bytes / 1024, 0);
  const boundText =
    `≤ ${mib(bound)} MiB: per client WS_MAX_BUFFERED_BYTES (1 MiB) + ` +
    [phase.sse > 0 ? `one event (SSE, ${kib(eventBytes)} KiB)` : '', phase.ws > 0 ? `one fragment (/ws, ≤ ${kib(FRAGMENT + eventBytes)} KiB)` : '']
      .filter(Boolean)
      .join(' or ');
  const met = (bytes: number): boolean | null => (ctx.quick ? null : bytes <= bound);
  const common = {
    boundMiB: mib(bound),
    totalBoundMiB: mib(MAX_TOTAL),
    openAtProbe: runs.map((r) => r.openAtProbe),
    openSeconds: runs.map((r) => round(r.openSeconds, 1)),
    peakOpen: runs.map((r) => r.peakOpen),
    closedForTotalBound: runs.map((r) => r.closedForTotal),
  };
  const out: Result[] = [
    {
      scenario: 'stalled',
      metric: `live memory, ${phase.label} (RSS growth after a full GC)`,
      unit: 'MiB',
      bridge: mib(live),
      baseline: null,
      ratio: null,
      goal: boundText,
      met: met(live),
      details: {
        perClientKiB: kib(live / clients),
        ofBound: round(live / bound, 2),
        heapUsedGrowthMiB: mib(m((r) => r.stalled.heapUsed - r.before.heapUsed)),
        arrayBuffersGrowthMiB: mib(m((r) => r.stalled.arrayBuffers - r.before.arrayBuffers)),
        kernelTcpGrowthMiB: mib(m((r) => r.kernelTcp)),
        ...common,
        runs: runs.map((r) => mib(r.stalled.rss - r.before.rss)),
      },
    },
    {
      scenario: 'stalled',
      metric: `peak RSS growth, ${phase.label} (no GC forced)`,
      unit: 'MiB',
      bridge: mib(peak),
      baseline: null,
      ratio: null,
      goal: boundText,
      met: met(peak),
      details: {
        perClientKiB: kib(peak / clients),
        ofBound: round(peak / bound, 2),
        rssLoadedMiB: mib(m((r) => r.loadedRss)),
        rssBeforeMiB: mib(m((r) => r.before.rss)),
        rssPeakMiB: mib(m((r) => r.peakRss)),
        replayMiB: mib(m((r) => r.replayBytes)),
        snapshotMiB: mib(m((r) => r.snapshotBytes)),
        runs: runs.map((r) => mib(r.peakRss - r.before.rss)),
      },
    },
  ];
  if (phase.sse > 0 && phase.ws > 0) {
    out.push(
      {
        scenario: 'stalled',
        metric: `time until every stalled client is closed (WS_SLOW_CLOSE_SECONDS=${sizes.slowCloseSeconds})`,
        unit: 's',
        bridge: round(m((r) => r.closeSeconds), 1),
        baseline: null,
        ratio: null,
        goal: `≤ ${sizes.slowCloseSeconds + 3} s: WS_SLOW_CLOSE_SECONDS, the 250 ms sweep, the 1 s close grace (/ws) twice`,
        met: m((r) => r.closeSeconds) <= sizes.slowCloseSeconds + 3,
        details: { runs: runs.map((r) => round(r.closeSeconds, 1)) },
      },
      {
        scenario: 'stalled',
        metric: 'RSS once every stalled client is closed, above the figure before them (after a full GC)',
        unit: 'MiB',
        bridge: mib(m((r) => r.after.rss - r.before.rss)),
        baseline: null,
        ratio: null,
        goal: 'memory given back (glibc and V8 may keep freed pages a while)',
        met: null,
        details: {
          rssMiB: { before: mib(m((r) => r.before.rss)), peak: mib(m((r) => r.peakRss)), stalled: mib(m((r) => r.stalled.rss)), after: mib(m((r) => r.after.rss)) },
          heapUsedMiB: { before: mib(m((r) => r.before.heapUsed)), stalled: mib(m((r) => r.stalled.heapUsed)), after: mib(m((r) => r.after.heapUsed)) },
          arrayBuffersMiB: { before: mib(m((r) => r.before.arrayBuffers)), stalled: mib(m((r) => r.stalled.arrayBuffers)), after: mib(m((r) => r.after.arrayBuffers)) },
          runs: runs.map((r) => mib(r.after.rss - r.before.rss)),
        },
      },
    );
  }
  return out;
}

async function measure(ctx: Context, phase: Phase, sizes: Sizes, run: number): Promise<Measured> {
  const broker = await ctx.broker();
  const bridge = await startBridge({
    MQTT_URL: broker.url,
    WIIHEY_APP_ID: 'bench',
    MQTT_CLIENT_ID: `bench-stalled-${run}-${process.pid}`,
    MQTT_CLEAN_SESSION: 'true',
    DATA_DIR: '',
    EVENT_BUFFER: String(sizes.events),
    MAX_MESSAGE_BYTES: String(128 * 1024),
    WS_SNAPSHOT_LIMIT: String(sizes.devices + 1),
    WS_MAX_BUFFERED_BYTES: String(MAX_BUFFERED),
    STREAMS_MAX_TOTAL_BUFFERED_BYTES: String(MAX_TOTAL),
    WS_SLOW_CLOSE_SECONDS: String(sizes.slowCloseSeconds),
    MAX_STREAMS_PER_ADDRESS: String(phase.sse + phase.ws + 10),
    ...INSPECT_ENV,
  });
  const sockets: Socket[] = [];
  let inspector: Inspector | null = null;
  try {
    inspector = await inspect(bridge.output);
    // the fleet, then the padded events (all on one device, so that the snapshot holds one of
    // them), last, so that the replay buffer holds only padded events
    const now = Math.floor(Date.now() / 1000);
    const fleetPad = 'y'.repeat(DEVICE_PAD);
    const eventPad = 'x'.repeat(EVENT_PAD);
    const total = sizes.devices + sizes.events;
    await publishAll(broker.url, function* () {
      for (let i = 0; i < sizes.devices; i++) yield message(`d${String(i).padStart(6, '0')}`, i % 2 ? 'open' : 'close', now - 5000, fleetPad);
      for (let i = 0; i < sizes.events; i++) yield message('padded', i % 2 ? 'open' : 'close', now - 4000 + i, eventPad);
    });
    let accepted = 0;
    await waitFor(
      async () => {
        accepted = ((await (await fetch(`${bridge.base}/stats`)).json()) as { messages: { accepted: number } }).messages.accepted;
        return accepted >= total;
      },
      120_000,
      'every message stored',
      200,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${accepted} of ${total} accepted`);
    });
    const loadedRss = rss(bridge.pid);

    // the newest seq, from the reset that an id the buffer does not reach gets
    const lastSeq = await readLastSeq(bridge.base);
    const replayFrom = lastSeq - sizes.events;
    if (replayFrom < sizes.devices) throw new Error(`the replay buffer holds more than the padded events: last seq ${lastSeq}`);

    // One client that reads, of each kind: the events' wire forms are built once and shared by
    // every client (devices/wire.ts), a cost of the buffer, not of the clients measured below.
    const replayBytes = await readReplay(bridge.base, replayFrom, lastSeq);
    const snapshotBytes = await readSnapshot(bridge.base);
    await sleep(1000);
    const before = await inspector.memory();
    const kernelBefore = kernelTcpBytes();

    let peakRss = rss(bridge.pid);
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rss(bridge.pid));
    }, SAMPLE_MS);
    const port = Number(new URL(bridge.base).port);
    const opening = Date.now();
    try {
      const opened = await Promise.all([
        ...Array.from({ length: phase.sse }, () => openSse(port, replayFrom)),
        ...Array.from({ length: phase.ws }, () => openWs(port)),
      ]);
      sockets.push(...opened);
    } catch (err) {
      clearInterval(sampler);
      throw err;
    }
    const openedAt = Date.now();
    const openSeconds = (openedAt - opening) / 1000;
    const clients = phase.sse + phase.ws;
    let peakOpen = 0;
    let open = Number.NaN;
    let openByKind = '';
    let stalled: LiveMemory | null = null;
    let openAtProbe = 0;
    let kernelTcp = 0;
    // once every client is open at the bridge and a second has passed; at the latest halfway to
    // WS_SLOW_CLOSE_SECONDS (then `openAtProbe` says how many were left)
    const probeAt = openedAt + 1000;
    const probeLatest = openedAt + (sizes.slowCloseSeconds * 1000) / 2;
    try {
      await waitFor(
        async () => {
          peakRss = Math.max(peakRss, rss(bridge.pid));
          const metrics = await scrape(bridge.base);
          const sse = metrics.get('wiihey_bridge_stream_clients{kind="sse"}') ?? 0;
          const ws = metrics.get('wiihey_bridge_stream_clients{kind="ws"}') ?? 0;
          open = sse + ws;
          openByKind = `${sse} SSE, ${ws} /ws`;
          peakOpen = Math.max(peakOpen, open);
          if (stalled === null && ((open === clients && Date.now() >= probeAt) || Date.now() >= probeLatest)) {
            openAtProbe = open;
            kernelTcp = kernelTcpBytes() - kernelBefore;
            stalled = await inspector!.memory();
          }
          return stalled !== null && open === 0;
        },
        sizes.slowCloseSeconds * 1000 + 30_000,
        'the bridge to close every stalled client',
        POLL_MS,
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}: ${open} of ${clients} stalled clients still open (${openByKind}) ` +
          `${Math.round((Date.now() - openedAt) / 1000)} s after they stalled (WS_SLOW_CLOSE_SECONDS=${sizes.slowCloseSeconds})`,
      );
    } finally {
      clearInterval(sampler);
    }
    const closeSeconds = (Date.now() - openedAt) / 1000;
    await sleep(2000);
    const after = await inspector.memory();
    const closedForTotal = bridge
      .output()
      .split('\n')
      .filter((l) => l.includes('STREAMS_MAX_TOTAL_BUFFERED_BYTES'))
      .reduce((sum, l) => sum + Number(/"closed":(\d+)/.exec(l)?.[1] ?? 0), 0);
    const s = stalled as LiveMemory | null;
    if (s === null) throw new Error('no memory figure while the clients stalled');
    ctx.log(
      `    rss MiB: loaded ${mb(loadedRss)}, before ${mb(before.rss)}, peak ${mb(peakRss)} (+${mb(peakRss - before.rss)}), ` +
        `stalled after GC ${mb(s.rss)} (+${mb(s.rss - before.rss)}), closed after GC ${mb(after.rss)}; ` +
        `heapUsed ${mb(before.heapUsed)} → ${mb(s.heapUsed)} → ${mb(after.heapUsed)}; arrayBuffers ${mb(before.arrayBuffers)} → ${mb(s.arrayBuffers)} → ${mb(after.arrayBuffers)}; ` +
        `kernel TCP +${mb(kernelTcp)}; opened in ${openSeconds.toFixed(1)} s, ${openAtProbe} of ${clients} open at the probe, all closed after ${closeSeconds.toFixed(1)} s, ${closedForTotal} closed for the total bound`,
    );
    return {
      loadedRss,
      before,
      peakRss,
      stalled: s,
      after,
      openAtProbe,
      peakOpen,
      openSeconds,
      closeSeconds,
      closedForTotal,
      kernelTcp,
      replayBytes,
      snapshotBytes,
    };
  } finally {
    inspector?.close();
    for (const socket of sockets) socket.destroy();
    await bridge.stop();
    await broker.stop();
  }
}

/** Kernel memory of every TCP socket of the machine (/proc/net/sockstat), in bytes. */
function kernelTcpBytes(): number {
  const pages = /^TCP:.* mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1];
  return pages === undefined ? Number.NaN : Number(pages) * PAGE_BYTES;
}

function message(deviceId: string, state: string, timestamp: number, pad: string): string {
  return JSON.stringify({ DeviceID: deviceId, State: state, BatteryLevel: 9000, CSQ: 25, IMEI: '868575022027272', Timestamp: timestamp, pad });
}

/** Publishes every payload at QoS 1, a window of unacknowledged ones at a time. */
async function publishAll(url: string, payloads: () => Iterable<string>): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId: `bench-stalled-pub-${process.pid}-${Math.random()}`, clean: true });
  const WINDOW = 200;
  let inFlight = 0;
  let wake: () => void = () => {};
  for (const payload of payloads()) {
    // eslint-disable-next-line no-unmodified-loop-condition -- the PUBACK callback lowers inFlight while this awaits
    while (inFlight >= WINDOW) await new Promise<void>((resolve) => (wake = resolve));
    inFlight++;
    client.publish(TOPIC, payload, { qos: 1 }, () => {
      inFlight--;
      wake();
    });
  }
  // eslint-disable-next-line no-unmodified-loop-condition -- the PUBACK callbacks lower inFlight while this awaits
  while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
  await client.endAsync();
}

/** SPEC §5: Last-Event-ID 0 is older than a full buffer: `event: reset` with the last seq. */
async function readLastSeq(base: string): Promise<number> {
  const controller = new AbortController();
  const res = await fetch(`${base}/events`, { headers: { 'last-event-id': '0' }, signal: controller.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`/events ended before its reset: ${text}`);
      text += decoder.decode(value, { stream: true });
      const got = /event: reset\ndata: \{"lastSeq":(\d+)\}/.exec(text);
      if (got) return Number(got[1]);
    }
  } finally {
    controller.abort();
  }
}

/** Reads a whole replay from `from` to `lastSeq`; its bytes. */
async function readReplay(base: string, from: number, lastSeq: number): Promise<number> {
  const controller = new AbortController();
  const res = await fetch(`${base}/events`, { headers: { 'last-event-id': String(from) }, signal: controller.signal });
  const reader = res.body!.getReader();
  const end = new TextEncoder().encode(`id: ${lastSeq}\n`);
  let bytes = 0;
  let tail = new Uint8Array(0);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`/events ended after ${bytes} bytes of the replay`);
      bytes += value.length;
      const window = new Uint8Array(tail.length + value.length);
      window.set(tail);
      window.set(value, tail.length);
      if (Buffer.from(window.buffer).includes(Buffer.from(end))) return bytes;
      tail = window.slice(-end.length);
    }
  } finally {
    controller.abort();
  }
}

/** Reads one /ws snapshot; its bytes. */
function readSnapshot(base: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/ws?snapshot=true`, { perMessageDeflate: false, maxPayload: 0 });
    socket.once('message', (data: Buffer) => {
      socket.terminate();
      if (data.toString('latin1', 0, 18) !== '{"type":"snapshot"') reject(new Error(`/ws: a ${data.toString('latin1', 0, 40)}… frame before the snapshot`));
      else resolve(data.length);
    });
    socket.once('error', reject);
  });
}

/**
 * A raw client that sends `request`, reads until `ready` says the answer has begun, then stops
 * reading (pause(): once its socket buffers are full, the server's fill).
 */
function openStalled(port: number, request: string, ready: (text: string) => boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      let done: boolean;
      try {
        done = ready(text);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (!done) return;
      socket.pause();
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(socket);
    };
    const onClose = (): void => fail(new Error(`closed before the answer began: ${text.slice(0, 200)}`));
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', (err) => reject(err)); // after ready: a reset by the bridge is expected
    socket.once('connect', () => socket.write(request));
  });
}

function openSse(port: number, lastEventId: number): Promise<Socket> {
  const request = `GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nLast-Event-ID: ${lastEventId}\r\n\r\n`;
  return openStalled(port, request, (text) => {
    const end = text.indexOf('\r\n\r\n');
    if (end === -1) return false;
    if (!text.startsWith('HTTP/1.1 200')) throw new Error(`/events: ${text.slice(0, text.indexOf('\r\n'))}`);
    if (text.includes('event: reset', end)) throw new Error('/events: a reset, not a replay');
    return text.includes('event: update', end);
  });
}

function openWs(port: number): Promise<Socket> {
  const key = randomBytes(16).toString('base64');
  const request =
    `GET /ws?snapshot=true HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  return openStalled(port, request, (text) => {
    const end = text.indexOf('\r\n\r\n');
    if (end === -1) return false;
    if (!text.startsWith('HTTP/1.1 101')) throw new Error(`/ws: ${text.slice(0, text.indexOf('\r\n'))}`);
    return text.includes('{"type":"snapshot"', end);
  });
}

async function scrape(base: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    m.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return m;
}

function mb(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
