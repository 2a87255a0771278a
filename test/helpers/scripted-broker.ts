import type { Test } from 'tap';
import { createServer, type Socket } from 'node:net';
import mqttPacket, { type IPublishPacket, type ISubscribePacket, type Packet } from 'mqtt-packet';

// A scripted MQTT 3.1.1 server for wire-level tests (SPEC §7: which PUBACK goes out when, and on
// which connection). Unlike Mosquitto or aedes, the test decides what the client gets and in which
// TCP chunk, and sees every packet the client sends in the order it arrived. It answers CONNECT,
// SUBSCRIBE, PINGREQ and DISCONNECT by itself; PUBLISHes to the client are sent only on request.

/** A packet the client sent, with the connection it came on (1, 2, … in accept order). */
export interface Received {
  conn: number;
  /** Its place in `received`. */
  index: number;
  packet: Packet;
}

/** A PUBLISH to the client. QoS 1 without a messageId gets the connection's next one. */
export interface ScriptedPublish {
  topic: string;
  payload: string | Buffer;
  qos?: 0 | 1;
  messageId?: number;
  dup?: boolean;
}

export interface ScriptedBrokerOptions {
  /** The CONNACK's sessionPresent, fixed or per connection. Default false. */
  sessionPresent?: boolean | ((conn: number) => boolean);
  /** Default timeout of the wait* methods, in ms. */
  timeoutMs?: number;
}

export interface ScriptedBroker {
  url: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Every packet the clients sent, in arrival order. */
  readonly received: readonly Received[];
  /** Resolves once connection `n` sent its CONNECT and got its CONNACK. */
  waitForConnection(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves with the first SUBSCRIBE of connection `conn`, once its SUBACK is written. */
  waitForSubscribe(conn: number, timeoutMs?: number): Promise<ISubscribePacket>;
  /** Writes every PUBLISH in ONE socket write (one chunk on loopback); returns their messageIds (0 for QoS 0). */
  sendPublishes(conn: number, publishes: readonly ScriptedPublish[]): number[];
  /** The first received packet (already there or still to come) that `match` accepts. */
  waitFor(match: (r: Received) => boolean, what: string, timeoutMs?: number): Promise<Received>;
  /** Destroys the connection's socket: a network failure, as far as the client can tell. */
  drop(conn: number): void;
  /** Resolves once the connection's socket has closed (by either side). */
  waitForClose(conn: number, timeoutMs?: number): Promise<void>;
  isOpen(conn: number): boolean;
  /** The messageIds of the PUBACKs received on `conn`, in order. */
  pubacks(conn: number): number[];
  /** What arrived so far, one line per connection (for failure messages). */
  describe(): string;
}

interface Connection {
  socket: Socket;
  closed: boolean;
  nextMessageId: number;
}

type Waiter = (r: Received | null) => void;

/** A scripted broker on 127.0.0.1 and a free port, closed when the test ends. */
export async function startScriptedBroker(t: Test, options: ScriptedBrokerOptions = {}): Promise<ScriptedBroker> {
  const defaultTimeout = options.timeoutMs ?? 5_000;
  const sessionPresent = (conn: number): boolean =>
    typeof options.sessionPresent === 'function' ? options.sessionPresent(conn) : (options.sessionPresent ?? false);
  const connections: Connection[] = [];
  const received: Received[] = [];
  // woken on every received packet and every closed socket (null)
  const waiters = new Set<Waiter>();
  const wake = (r: Received | null): void => {
    for (const waiter of [...waiters]) waiter(r);
  };

  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const connection: Connection = { socket, closed: false, nextMessageId: 1 };
    connections.push(connection);
    const conn = connections.length;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const send = (packet: Packet): void => {
      if (!socket.destroyed) socket.write(mqttPacket.generate(packet));
    };
    parser.on('packet', (packet: Packet) => {
      const r: Received = { conn, index: received.length, packet };
      received.push(r);
      switch (packet.cmd) {
        case 'connect':
          send({ cmd: 'connack', returnCode: 0, sessionPresent: sessionPresent(conn) });
          break;
        case 'subscribe':
          send({ cmd: 'suback', messageId: packet.messageId!, granted: packet.subscriptions.map((s) => s.qos) });
          break;
        case 'pingreq':
          send({ cmd: 'pingresp' });
          break;
        case 'disconnect':
          socket.end();
          break;
        default:
          break;
      }
      wake(r);
    });
    parser.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', () => {}); // a reset by the client is a close like any other
    socket.on('close', () => {
      connection.closed = true;
      wake(null);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const c of connections) c.socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as { port: number };

  const connection = (conn: number): Connection => {
    const c = connections[conn - 1];
    if (c === undefined) throw new Error(`no connection ${conn} (${connections.length} so far)`);
    return c;
  };

  const describe = (): string => {
    const lines = connections.map((c, i) => {
      const packets = received.filter((r) => r.conn === i + 1).map((r) => (r.packet.messageId ? `${r.packet.cmd} ${r.packet.messageId}` : r.packet.cmd));
      return `conn ${i + 1}${c.closed ? ' (closed)' : ''}: ${packets.join(', ') || '(nothing)'}`;
    });
    return lines.length === 0 ? 'no connection yet' : lines.join('; ');
  };

  /** Resolves with `check()` once it gives a value, re-checked on every packet and close. */
  const waitUntil = <T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> => {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = () => {
        const value = check();
        if (value === undefined) return;
        clearTimeout(timer);
        waiters.delete(waiter);
        resolve(value);
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the broker received: ${describe()}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const waitFor = (match: (r: Received) => boolean, what: string, timeoutMs = defaultTimeout): Promise<Received> =>
    waitUntil(() => received.find(match), what, timeoutMs);

  return {
    url: `mqtt://127.0.0.1:${port}`,
    get connections() {
      return connections.length;
    },
    received,
    async waitForConnection(n, timeoutMs = defaultTimeout) {
      await waitFor((r) => r.conn === n && r.packet.cmd === 'connect', `the CONNECT of connection ${n}`, timeoutMs);
    },
    async waitForSubscribe(conn, timeoutMs = defaultTimeout) {
      const r = await waitFor((r) => r.conn === conn && r.packet.cmd === 'subscribe', `the SUBSCRIBE of connection ${conn}`, timeoutMs);
      return r.packet as ISubscribePacket;
    },
    sendPublishes(conn, publishes) {
      const c = connection(conn);
      if (c.closed) throw new Error(`connection ${conn} is closed`);
      const ids: number[] = [];
      const chunk = Buffer.concat(
        publishes.map((p) => {
          const qos = p.qos ?? 1;
          const messageId = qos === 0 ? 0 : (p.messageId ?? c.nextMessageId);
          if (qos > 0) c.nextMessageId = (messageId % 65_535) + 1;
          ids.push(messageId);
          const packet: IPublishPacket = { cmd: 'publish', topic: p.topic, payload: p.payload, qos, dup: p.dup ?? false, retain: false };
          if (qos > 0) packet.messageId = messageId;
          return mqttPacket.generate(packet);
        }),
      );
      c.socket.write(chunk);
      return ids;
    },
    waitFor,
    drop(conn) {
      connection(conn).socket.destroy();
    },
    async waitForClose(conn, timeoutMs = defaultTimeout) {
      await waitUntil(() => (connections[conn - 1]?.closed === true ? true : undefined), `connection ${conn} to close`, timeoutMs);
    },
    isOpen(conn) {
      return !connection(conn).closed;
    },
    pubacks(conn) {
      return received.filter((r) => r.conn === conn && r.packet.cmd === 'puback').map((r) => r.packet.messageId!);
    },
    describe,
  };
}
