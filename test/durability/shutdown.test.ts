import { createServer, request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { APP_ID, APP_KEY, TOPIC, brokerEnv, message, publisher } from '../helpers/bridge.js';
import { getJson, spawnBridge, type BridgeProcess } from '../helpers/process.js';
import { withTimeout } from '../helpers/app.js';
import { SECRET } from '../helpers/receiver.js';
import { SseParser } from '../helpers/sse.js';
import { WsProbe } from '../helpers/ws.js';

// Issue 7 item 5, SPEC §5/§7: SIGTERM or SIGINT closes the bridge gracefully. It stops accepting,
// closes every stream with "going away" (1001 on /ws and graphql-ws, the end of the SSE response),
// finishes the write in flight, disconnects from MQTT cleanly (the persistent session stays on the
// broker) and exits 0 within close-with-grace's delay; a second signal exits at once. Under load,
// nothing is acknowledged to the broker that was not stored: after a restart every message is
// there, once. Real processes, a real Mosquitto, real clients.

/** src/main.ts: closeWithGrace({ delay: 10_000 }); past it, close-with-grace exits with 1. */
const GRACE_MS = 10_000;
/** The default MQTT_CLIENT_ID (SPEC §6), the same for both runs: the broker keeps its session. */
const CLIENT_ID = `wiihey-bridge-${APP_ID}`;
const DEVICES = 300;
const MESSAGES = 3000;
/** Published BATCH at a time with a pause between: a steady ~1,000 messages/s for 3 s, not a burst. */
const BATCH = 20;
const BATCH_PAUSE_MS = 20;
/** SIGTERM once the bridge has stored this many: mid-stream, with most of the stream still to come. */
const SIGTERM_AT_SEQ = 300;
const ts = Math.floor(Date.now() / 1000) - 100_000;

type LogLine = { level: number; msg: string } & Record<string, unknown>;

/**
 * The first log line of `bridge` (JSON on stdout) that `match` accepts, now or when it comes.
 * spawnBridge's own reader sees each chunk of stdout first, so `lines` holds it when we look.
 */
function logLine(bridge: BridgeProcess, match: (line: LogLine) => boolean, what: string, timeoutMs = 10_000): Promise<LogLine> {
  const stdout = bridge.child.stdout!;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const found = (bridge.lines as LogLine[]).find(match);
      if (found === undefined) return;
      done();
      resolve(found);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for the log line: ${what}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      stdout.off('data', check);
    };
    stdout.on('data', check);
    check();
  });
}

/** Everything the bridge writes to stderr from now on (close-with-grace's own messages go there). */
function stderrOf(bridge: BridgeProcess): () => string {
  let text = '';
  bridge.child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  return () => text;
}

/** The signal, then the exit: its code and how long it took. */
async function signalAndExit(bridge: BridgeProcess, signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }> {
  const at = Date.now();
  bridge.child.kill(signal);
  const code = await withTimeout(bridge.exited, GRACE_MS + 5_000, () => `the bridge did not exit after ${signal}`);
  return { code, ms: Date.now() - at };
}

interface SseProbe {
  /** `id:` lines seen so far: one per event. */
  events: number;
  /** 'ended': the response ended properly (the chunked terminator came); 'aborted': it was cut. */
  ended: Promise<'ended' | 'aborted'>;
  /** The first event. */
  first: Promise<void>;
}

/** GET /events over node:http, as a plain SSE client. */
function openSse(t: Test, url: string): Promise<SseProbe> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        reject(new Error(`SSE: HTTP ${res.statusCode}`));
        return;
      }
      let firstEvent: () => void = () => {};
      const probe: SseProbe = {
        events: 0,
        ended: new Promise((resolve) => {
          res.once('end', () => resolve('ended'));
          res.once('close', () => resolve(res.complete ? 'ended' : 'aborted'));
          res.once('error', () => resolve('aborted'));
        }),
        first: new Promise((resolve) => (firstEvent = resolve)),
      };
      const parser = new SseParser();
      res.on('data', (chunk: Buffer) => {
        for (const block of parser.push(chunk)) {
          if (block.id === null) continue;
          probe.events++;
          firstEvent();
        }
      });
      resolve(probe);
    });
    req.on('error', reject);
    t.teardown(() => req.destroy());
    req.end();
  });
}

interface GraphqlProbe {
  /** deviceUpdated results so far. */
  results: number;
  first: Promise<void>;
  /** The close code of the graphql-ws socket. */
  closed: Promise<number>;
}

/** A graphql-ws client (the graphql-ws package over ws) subscribed to every deviceUpdated. */
function subscribeGraphql(t: Test, url: string): GraphqlProbe {
  let closedWith: (code: number) => void = () => {};
  let firstResult: () => void = () => {};
  const probe: GraphqlProbe = {
    results: 0,
    first: new Promise((resolve) => (firstResult = resolve)),
    closed: new Promise((resolve) => (closedWith = resolve)),
  };
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    on: { closed: (event) => closedWith((event as { code: number }).code) },
  });
  t.teardown(() => client.dispose());
  client.subscribe(
    { query: 'subscription { deviceUpdated { seq device { deviceId } } }' },
    {
      next: () => {
        probe.results++;
        firstResult();
      },
      error: () => {}, // the close: reported through `closed`
      complete: () => {},
    },
  );
  return probe;
}

/** A webhook receiver that takes every delivery and never answers: a delivery stays in flight. */
async function hangingReceiver(t: Test): Promise<string> {
  const server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
}

/**
 * An HTTP request that stays in flight: POST /graphql whose body never finishes arriving (a slow
 * upload). Resolves once the bridge has logged the request; finish() sends the rest of the body,
 * and `response` resolves with the whole response (head and body) once it has come, or with what
 * came when the connection closed.
 */
async function unfinishedUpload(t: Test, bridge: BridgeProcess): Promise<{ response: Promise<string>; finish: () => void }> {
  const body = JSON.stringify({ query: '{ stats { devices } }' });
  const head = body.slice(0, 5);
  const { port } = new URL(bridge.base);
  const socket = connect(Number(port), '127.0.0.1');
  t.teardown(() => socket.destroy());
  const response = new Promise<string>((resolve) => {
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      const end = received.indexOf('\r\n\r\n');
      const length = /^content-length: (\d+)$/im.exec(received.slice(0, end));
      if (end !== -1 && length && Buffer.byteLength(received.slice(end + 4)) >= Number(length[1])) resolve(received);
    });
    socket.once('close', () => resolve(received));
    socket.once('error', () => {}); // reported through what was received before the close
  });
  socket.write(
    `POST /graphql HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${head}`,
  );
  await logLine(bridge, (l) => l.msg === 'incoming request' && (l.req as { url?: string } | undefined)?.url === '/graphql', 'the upload in flight');
  return { response, finish: () => socket.write(body.slice(head.length)) };
}

/** Resolves once a new connection to `base` is refused: the listener is closed. Polls every 100 ms. */
async function refusedWithin(base: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const outcome = await new Promise<string>((resolve) => {
      // a new connection each time (agent: false): a pooled one would not ask the listener
      const req = request(`${base}/healthz`, { agent: false }, (res) => {
        res.resume();
        resolve(`HTTP ${res.statusCode}`);
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
    if (outcome === 'ECONNREFUSED') return;
    if (Date.now() > deadline) throw new Error(`still accepting connections after ${timeoutMs} ms (last: ${outcome})`);
    await delay(100);
  }
}

/** Resolves with the broker's words for how `clientId` left: a DISCONNECT, or a dropped connection. */
async function brokerSawLeave(broker: Mosquitto, clientId: string, timeoutMs = 5_000): Promise<string> {
  const leave = new RegExp(`Client ${clientId} (disconnected\\.|closed its connection\\.|.*disconnecting\\.)`, 'g');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = [...broker.log().matchAll(leave)].at(-1);
    if (seen) return seen[0];
    if (Date.now() > deadline) throw new Error(`the broker logged no leave of ${clientId}:\n${broker.log()}`);
    await delay(100);
  }
}

t.test('SIGTERM under load: streams told 1001, exit 0 in time, and nothing acknowledged that was not stored', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false }); // max_queued_messages 100,000
  if (!broker) return;
  const dataDir = t.testdir();
  const env = {
    ...brokerEnv(broker, { DATA_DIR: dataDir, ALARMS_ENABLED: 'false' }), // MQTT_CLIENT_ID: the default, derived from APP_ID; one seq per message: alarms off
    EMBEDDED_MQTT_PORT: '0',
    // state changes go to a receiver that never answers: a delivery is in flight when the signal comes
    WEBHOOK_URLS: await hangingReceiver(t),
    WEBHOOK_SECRET: SECRET,
  };
  const first = await spawnBridge(t, env, dataDir);
  await logLine(first, (l) => l.msg === 'MQTT subscribed', 'the subscription');
  const wsBase = first.base.replace(/^http/, 'ws');

  // the clients, connected before the stream starts
  const sockets = {
    'unfiltered /ws': await WsProbe.open(t, `${wsBase}/ws?snapshot=false`),
    'snapshot /ws': await WsProbe.open(t, `${wsBase}/ws`),
    'filtered /ws': await WsProbe.open(t, `${wsBase}/ws?snapshot=false&deviceId=d1,d2,d3`),
  };
  const sse = await openSse(t, `${first.base}/events`);
  const gql = subscribeGraphql(t, `${wsBase}/graphql`);
  // and one that stops reading at once: its backlog grows through the stream, and must not hold the close
  const stalled = await WsProbe.open(t, `${wsBase}/ws?snapshot=false`);
  stalled.socket.pause();

  const pub = await publisher(t, broker, { clientId: 'publisher-shutdown' });
  const last = new Map<string, { state: string; timestamp: number }>();
  let sent = 0;
  const publishing = (async () => {
    for (let i = 0; i < MESSAGES; i++) {
      const deviceId = `d${i % DEVICES}`;
      const timestamp = ts + i; // increasing: every message is an update with a seq of its own
      const state = (i * 7919) % 3 === 0 ? 'open' : 'close';
      last.set(deviceId, { state, timestamp });
      await pub.publishAsync(TOPIC, message(deviceId, state, timestamp), { qos: 1 });
      sent = i + 1;
      if (sent % BATCH === 0) await delay(BATCH_PAUSE_MS); // pacing the load, not waiting for anything
    }
  })();
  publishing.catch(() => {}); // awaited below

  // mid-stream, with every kind of client receiving
  await withTimeout(
    Promise.all([
      sockets['unfiltered /ws'].next((f) => f.type === 'update' && Number(f.seq) >= SIGTERM_AT_SEQ, `update ${SIGTERM_AT_SEQ}`, 30_000),
      sse.first,
      gql.first,
    ]),
    30_000,
    () => `clients receiving: sse ${sse.events}, graphql ${gql.results}`,
  );
  const sentAtSignal = sent;
  const { code, ms } = await signalAndExit(first, 'SIGTERM');
  t.equal(code, 0, 'exit code 0');
  t.ok(ms < GRACE_MS, `exited ${ms} ms after SIGTERM, within close-with-grace's ${GRACE_MS} ms`);
  t.ok(sentAtSignal < MESSAGES, `the signal came mid-stream: ${sentAtSignal} of ${MESSAGES} published`);
  t.ok(
    first.lines.some((l) => l.msg === 'closing' && (l as LogLine).signal === 'SIGTERM'),
    "the log has the 'closing' line with signal SIGTERM",
  );
  for (const [name, probe] of Object.entries(sockets)) {
    const closed = await withTimeout(probe.closed, 5_000, () => `${name} not closed`);
    t.equal(closed.code, 1001, `${name}: closed with 1001 (going away)`);
  }
  t.equal(await withTimeout(gql.closed, 5_000, () => 'graphql-ws not closed'), 1001, 'graphql-ws: closed with 1001');
  t.equal(await withTimeout(sse.ended, 5_000, () => 'SSE response still open'), 'ended', 'SSE: the response ended properly');
  // SPEC §7 / issue 7: a clean MQTT disconnect (a DISCONNECT packet), not a dropped connection
  t.equal(await brokerSawLeave(broker, CLIENT_ID), `Client ${CLIENT_ID} disconnected.`, 'the broker saw a DISCONNECT');

  // the publisher goes on while the bridge is down: the broker queues for the persistent session
  const second = await spawnBridge(t, env, dataDir);
  const connected = await logLine(second, (l) => l.msg === 'MQTT connected', 'the MQTT connection');
  t.equal(connected.sessionPresent, true, 'the broker kept the session across the graceful stop');
  await publishing;
  await pub.publishAsync(TOPIC, message('sentinel', 'open', ts + MESSAGES), { qos: 1 });
  // the broker delivers one session's messages in order: once the sentinel is in, every one is
  const deadline = Date.now() + 30_000;
  while ((await fetch(`${second.base}/devices/sentinel`)).status !== 200) {
    if (Date.now() > deadline) throw new Error('the sentinel never arrived');
    await delay(100);
  }
  const page = await getJson<{ items: { deviceId: string; state: string; timestamp: number }[]; total: number }>(`${second.base}/devices?limit=1000`);
  t.equal(page.total, DEVICES + 1, 'every device is there');
  const seen = new Map(page.items.map((d) => [d.deviceId, d]));
  const wrong = [...last].filter(([id, want]) => seen.get(id)?.state !== want.state || seen.get(id)?.timestamp !== want.timestamp);
  t.same(wrong.slice(0, 5), [], 'every device holds the last message published for it');

  const stop = await signalAndExit(second, 'SIGTERM');
  t.equal(stop.code, 0, 'the second run stops cleanly too');
  const db = new Database(join(dataDir, 'wiihey-bridge.db'), { readonly: true });
  t.teardown(() => db.close());
  const doubled = db.prepare('SELECT device_id, timestamp, count(*) AS n FROM history GROUP BY device_id, timestamp HAVING n > 1').all();
  t.same(doubled, [], 'no message is in a history twice');
  t.equal((db.prepare('SELECT count(*) AS n FROM history').get() as { n: number }).n, MESSAGES + 1, 'every message is in a history');
  const events = db.prepare('SELECT count(*) AS n, count(DISTINCT seq) AS distinctSeqs, min(seq) AS first, max(seq) AS last FROM events').get() as {
    n: number;
    distinctSeqs: number;
    first: number;
    last: number;
  };
  t.equal(events.last, MESSAGES + 1, 'one seq per message: none lost, none given two');
  t.equal(events.distinctSeqs, events.n, 'no seq handed out twice');
  t.equal(events.last - events.first + 1, events.n, `the kept seqs (${events.first}..${events.last}) are contiguous`);
});

t.test('a second signal during a held close exits at once, with code 1', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const dataDir = t.testdir();
  const bridge = await spawnBridge(t, { ...brokerEnv(broker, { DATA_DIR: dataDir }), EMBEDDED_MQTT_PORT: '0' }, dataDir);
  const stderr = stderrOf(bridge);
  await logLine(bridge, (l) => l.msg === 'MQTT subscribed', 'the subscription');
  // What holds app.close(): Fastify's server.close() waits for the requests in flight, and this one
  // waits for its body (up to requestTimeout, 30 s). /ws, graphql-ws, SSE, MQTT and webhook
  // deliveries are all cut short by their preClose hooks (a WebSocket within 1 s): none can hold it.
  await unfinishedUpload(t, bridge);

  bridge.child.kill('SIGTERM');
  await logLine(bridge, (l) => l.msg === 'closing' && l.signal === 'SIGTERM', "the 'closing' line");
  const { code, ms } = await signalAndExit(bridge, 'SIGINT');
  t.equal(code, 1, 'the second signal exits with 1');
  // "at once": the close itself would go on until close-with-grace's delay (or the request's own timeout)
  t.ok(ms < 3_000, `${ms} ms after the second signal, well before the ${GRACE_MS} ms grace`);
  t.match(stderr(), /second SIGINT, exiting/, 'close-with-grace says why');
});

t.test('SIGINT alone closes like SIGTERM: streams told 1001, exit 0', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const dataDir = t.testdir();
  const bridge = await spawnBridge(t, { ...brokerEnv(broker, { DATA_DIR: dataDir }), EMBEDDED_MQTT_PORT: '0' }, dataDir);
  await logLine(bridge, (l) => l.msg === 'MQTT subscribed', 'the subscription');
  const ws = await WsProbe.open(t, `${bridge.base.replace(/^http/, 'ws')}/ws`);
  await ws.next((f) => f.type === 'snapshot', 'the snapshot');
  const sse = await openSse(t, `${bridge.base}/events`);

  const { code, ms } = await signalAndExit(bridge, 'SIGINT');
  t.equal(code, 0, 'exit code 0');
  t.ok(ms < GRACE_MS, `exited ${ms} ms after SIGINT`);
  t.ok(
    bridge.lines.some((l) => l.msg === 'closing' && (l as LogLine).signal === 'SIGINT'),
    "the log has the 'closing' line with signal SIGINT",
  );
  t.equal((await withTimeout(ws.closed, 5_000, () => '/ws not closed')).code, 1001, '/ws: closed with 1001');
  t.equal(await withTimeout(sse.ended, 5_000, () => 'SSE response still open'), 'ended', 'SSE: the response ended properly');
});

t.test('a request in flight at the signal is answered, and the close still ends with exit 0 in time', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const dataDir = t.testdir();
  const bridge = await spawnBridge(t, { ...brokerEnv(broker, { DATA_DIR: dataDir }), EMBEDDED_MQTT_PORT: '0' }, dataDir);
  const stderr = stderrOf(bridge);
  await logLine(bridge, (l) => l.msg === 'MQTT subscribed', 'the subscription');
  const upload = await unfinishedUpload(t, bridge);

  const at = Date.now();
  bridge.child.kill('SIGTERM');
  await refusedWithin(bridge.base, 5_000);
  t.pass('new connections are refused while the request in flight goes on');
  upload.finish();
  const answer = await withTimeout(upload.response, 5_000, () => 'no answer to the request in flight');
  t.match(answer, /^HTTP\/1\.1 200 /, 'the request in flight is answered');
  t.match(answer, /\r\n\r\n\{"data":\{"stats":\{"devices":0\}\}\}$/, 'in full');
  t.comment(`its connection header: ${/^connection: .*$/im.exec(answer)?.[0] ?? 'none'}`);
  // The client keeps its connection open (HTTP/1.1 keep-alive), as a REST client or a proxy does:
  // the close must not wait for it (keepAliveTimeout is 72 s).
  const code = await withTimeout(bridge.exited, GRACE_MS + 5_000, () => 'the bridge did not exit');
  const ms = Date.now() - at;
  t.equal(code, 0, `exit code 0 (${ms} ms after SIGTERM${stderr() ? `; stderr: ${stderr().trim()}` : ''})`);
  t.ok(ms < GRACE_MS, `exited ${ms} ms after SIGTERM, within close-with-grace's ${GRACE_MS} ms`);
});

t.test('a request that never completes does not hold the exit past the bound', async (t) => {
  const broker = await startMosquitto(t, { users: { [APP_ID]: APP_KEY }, tls: false });
  if (!broker) return;
  const dataDir = t.testdir();
  const bridge = await spawnBridge(t, { ...brokerEnv(broker, { DATA_DIR: dataDir }), EMBEDDED_MQTT_PORT: '0' }, dataDir);
  const stderr = stderrOf(bridge);
  await logLine(bridge, (l) => l.msg === 'MQTT subscribed', 'the subscription');
  await unfinishedUpload(t, bridge); // a stalled upload: Node would wait for it up to requestTimeout (30 s)

  const { code, ms } = await signalAndExit(bridge, 'SIGTERM');
  t.equal(code, 0, `exit code 0 (${ms} ms after SIGTERM${stderr() ? `; stderr: ${stderr().trim()}` : ''})`);
  t.ok(ms < GRACE_MS, `exited ${ms} ms after SIGTERM, within close-with-grace's ${GRACE_MS} ms`);
});
