import WebSocket from 'ws';
import { DEVICE_KINDS, deviceOf, type DeviceKind, type DeviceKindReport, type DeviceReceiverReport } from './device-receivers.js';

// The process of bench/lib/device-receivers.ts: COUNT /ws clients and COUNT GraphQL subscribers on
// the bridge at BASE, client i of each kind on device d<i % DEVICES>. Prints "ready" once every
// client is connected (GraphQL: acknowledged, subscribe sent); on SIGUSR2 a line "report <json>"
// with the counters, on SIGTERM the same, then closes every client and exits.
// node --import tsx bench/lib/device-receivers-main.ts BASE COUNT DEVICES

const [base, countText, devicesText] = process.argv.slice(2) as [string, string, string];
const count = Number(countText);
const devices = Number(devicesText);
if (!Number.isInteger(count) || count < 1) throw new Error(`device receivers: COUNT must be a positive integer, not ${countText}`);
if (!Number.isInteger(devices) || devices < 1) throw new Error(`device receivers: DEVICES must be a positive integer, not ${devicesText}`);

const SUBSCRIPTION = 'subscription ($id: ID) { deviceUpdated(deviceId: $id) { seq device { deviceId state attributes } } }';

class Counters {
  connected = 0;
  closed = 0;
  outOfOrder = 0;
  otherDevice = 0;
  unreadable = 0;
  readonly updates = new Uint32Array(count);
  readonly lastSeq = new Float64Array(count);

  /** An update frame of client i: `"seq":<n>` and `"deviceId":"<id>"` are the first of their keys in it. */
  frame(i: number, data: Buffer): void {
    this.updates[i]!++;
    const seq = numberAfter(data, SEQ);
    const device = stringAfter(data, DEVICE_ID);
    if (seq === null || device === null) {
      this.unreadable++;
      return;
    }
    if (device !== deviceOf(i, devices)) this.otherDevice++;
    if (seq <= this.lastSeq[i]!) this.outOfOrder++;
    this.lastSeq[i] = seq;
  }

  report(): DeviceKindReport {
    return {
      clients: count,
      connected: this.connected,
      closed: this.closed,
      updates: Array.from(this.updates),
      outOfOrder: this.outOfOrder,
      otherDevice: this.otherDevice,
      unreadable: this.unreadable,
    };
  }
}

const SEQ = Buffer.from('"seq":');
const DEVICE_ID = Buffer.from('"deviceId":"');

function numberAfter(data: Buffer, key: Buffer): number | null {
  const at = data.indexOf(key);
  if (at === -1) return null;
  const value = Number.parseInt(data.toString('latin1', at + key.length, at + key.length + 20), 10);
  return Number.isFinite(value) ? value : null;
}

function stringAfter(data: Buffer, key: Buffer): string | null {
  const at = data.indexOf(key);
  if (at === -1) return null;
  const end = data.indexOf(0x22, at + key.length); // the closing quote (the bench's ids have no escapes)
  return end === -1 ? null : data.toString('latin1', at + key.length, end);
}

const counters: Record<DeviceKind, Counters> = { ws: new Counters(), graphql: new Counters() };
const sockets: WebSocket[] = [];
const wsBase = base.replace(/^http/, 'ws');
const UPDATE = Buffer.from('{"type":"update"');
const NEXT = Buffer.from('"type":"next"');

function openWs(i: number): Promise<void> {
  const c = counters.ws;
  return new Promise((resolve, reject) => {
    const url = `${wsBase}/ws?snapshot=false&deviceId=${encodeURIComponent(deviceOf(i, devices))}`;
    const socket = new WebSocket(url, { perMessageDeflate: false });
    let open = false;
    socket.on('message', (data: Buffer, isBinary) => {
      // update frames only (no snapshot with snapshot=false; silent frames are no update)
      if (!isBinary && data.length > UPDATE.length && data.compare(UPDATE, 0, UPDATE.length, 0, UPDATE.length) === 0) c.frame(i, data);
    });
    socket.once('open', () => {
      open = true;
      c.connected++;
      sockets.push(socket);
      resolve();
    });
    socket.once('close', () => {
      if (open) c.closed++;
    });
    socket.once('error', (err) => {
      if (!open) reject(new Error(`${url}: ${err.message}`));
    });
  });
}

/** graphql-transport-ws by hand: connection_init, connection_ack, one subscribe, then `next` frames. */
function openGraphql(i: number): Promise<void> {
  const c = counters.graphql;
  return new Promise((resolve, reject) => {
    const url = `${wsBase}/graphql`;
    const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
    let acknowledged = false;
    socket.on('message', (data: Buffer) => {
      if (acknowledged) {
        if (data.indexOf(NEXT) !== -1) c.frame(i, data);
        else if (data.includes('"type":"ping"')) socket.send('{"type":"pong"}');
        else if (data.includes('"type":"error"') || data.includes('"type":"complete"')) c.unreadable++;
        return;
      }
      if (data.includes('"type":"connection_ack"')) {
        acknowledged = true;
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: SUBSCRIPTION, variables: { id: deviceOf(i, devices) } } }));
        c.connected++;
        sockets.push(socket);
        resolve();
      }
    });
    socket.once('open', () => socket.send('{"type":"connection_init"}'));
    socket.once('close', (code) => {
      if (acknowledged) c.closed++;
      else reject(new Error(`${url}: closed before connection_ack (${code})`));
    });
    socket.once('error', (err) => {
      if (!acknowledged) reject(new Error(`${url}: ${err.message}`));
    });
  });
}

let reports = 0;
function report(final: boolean): void {
  const out: DeviceReceiverReport = { n: ++reports, final, kinds: { ws: counters.ws.report(), graphql: counters.graphql.report() } };
  // a pipe: the write is synchronous on Linux, so it is out before the exit below
  process.stdout.write(`report ${JSON.stringify(out)}\n`);
}

process.on('SIGUSR2', () => report(false));
let finished = false;
process.on('SIGTERM', () => {
  if (finished) return; // the bench's stop() may signal again while the report goes out
  finished = true;
  report(true);
  for (const socket of sockets) socket.terminate();
  process.exit(0);
});

// a few connections at a time: thousands of handshakes at once would overflow the listen backlog
const BATCH = 50;
for (const kind of DEVICE_KINDS) {
  const open = kind === 'ws' ? openWs : openGraphql;
  for (let from = 0; from < count; from += BATCH) {
    const batch: Array<Promise<void>> = [];
    for (let i = from; i < Math.min(count, from + BATCH); i++) batch.push(open(i));
    await Promise.all(batch);
  }
}
process.stdout.write('ready\n');
