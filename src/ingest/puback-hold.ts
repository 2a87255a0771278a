import { createRequire } from 'node:module';
import type { IPublishPacket, MqttClient, Packet } from 'mqtt';

// SPEC §7: batches below MQTT.js. MQTT.js writes a QoS 1 message's PUBACK when handleMessage calls
// back, and hands over the next message only then (build/lib/handlers/publish.js, the work loop in
// client.js). To take several messages off the wire before one durable write, the bridge calls
// back at once and holds the PUBACK that MQTT.js wanted to send: this file is the only one that
// touches MQTT.js's private methods (_sendPacket, _writePacket), for the version checked below.

/** The MQTT.js version whose internals this hold was read against; package.json pins it exactly. */
export const MQTT_VERSION_CHECKED = '5.16.0';

type SendPacket = (packet: Packet, cb?: (err?: Error) => void, cbStorePut?: unknown, noStore?: boolean) => void;
type WritePacket = (packet: Packet, cb?: (err?: Error) => void) => void;
interface ClientInternals {
  _sendPacket: SendPacket;
  _writePacket: WritePacket;
}

/** The installed MQTT.js version, read from its package.json. */
export function installedMqttVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('mqtt/package.json') as { version: string }).version;
}

/**
 * Holds the PUBACKs of one MQTT.js client. `take` runs MQTT.js's handleMessage callback and keeps
 * the PUBACK it produced; `release` writes it later, only on the connection the message came on.
 * Any PUBACK that would reach the wire another way is refused, and the hold reports itself broken
 * (fail closed: the bridge then acknowledges nothing).
 */
export class PubackHold {
  readonly #client: MqttClient;
  readonly #write: WritePacket;
  readonly #onBroken: (reason: string) => void;
  /** PUBACKs MQTT.js handed to _sendPacket during the take()s under way. */
  readonly #swallowed: number[] = [];
  #releasing = false;
  #broken: string | null = null;

  constructor(client: MqttClient, onBroken: (reason: string) => void) {
    this.#client = client;
    this.#onBroken = onBroken;
    const internals = client as unknown as ClientInternals;
    if (typeof internals._sendPacket !== 'function' || typeof internals._writePacket !== 'function') {
      throw new Error(`MQTT.js ${installedMqttVersion()} lacks _sendPacket/_writePacket; the PUBACK hold was written for ${MQTT_VERSION_CHECKED}`);
    }
    const send = internals._sendPacket;
    const write = internals._writePacket;
    this.#write = write;
    // own properties: they shadow the prototype's methods for this client only
    internals._sendPacket = (packet, cb, cbStorePut, noStore) => {
      if (packet.cmd === 'puback') {
        this.#swallowed.push(packet.messageId ?? -1);
        cb?.(); // MQTT.js goes on with the next packet; the PUBACK waits for release()
        return;
      }
      send.call(client, packet, cb, cbStorePut, noStore);
    };
    internals._writePacket = (packet, cb) => {
      if (packet.cmd === 'puback' && !this.#releasing) {
        this.#fail(`MQTT.js tried to write a PUBACK (id ${packet.messageId}) past the hold`);
        return;
      }
      write.call(client, packet, cb);
    };
  }

  /** Why the hold stopped trusting MQTT.js, or null. */
  get broken(): string | null {
    return this.#broken;
  }

  /**
   * Calls `done` (MQTT.js's handleMessage callback) and checks that it produced exactly the PUBACK
   * the packet's QoS calls for (one for QoS 1, none for QoS 0), now held. False when it did not.
   */
  take(packet: IPublishPacket, done: (err?: Error) => void): boolean {
    // Re-entrant: `done` may make MQTT.js parse the next buffered chunk at once and hand over its
    // messages (a nested take) after swallowing this message's PUBACK. Each take checks what was
    // swallowed from its own mark on, and the nested ones take theirs off before it looks.
    const mark = this.#swallowed.length;
    done();
    const expected = packet.qos === 1 ? [packet.messageId] : [];
    const got = this.#swallowed.splice(mark);
    if (got.length !== expected.length || got.some((id, i) => id !== expected[i])) {
      this.#fail(`MQTT.js answered a QoS ${packet.qos} message with PUBACKs [${got.join(', ')}], expected [${expected.join(', ')}]`);
      return false;
    }
    return this.#broken === null;
  }

  /**
   * Writes the PUBACK of `messageId` if `stream` is still the client's live connection. A PUBACK
   * never goes to a newer connection: the broker may have given the id to another message there.
   */
  release(messageId: number, stream: unknown): boolean {
    const client = this.#client;
    if (this.#broken !== null || client.stream !== stream || !client.connected || client.disconnecting || client.stream.destroyed) return false;
    this.#releasing = true;
    try {
      this.#write.call(client, { cmd: 'puback', messageId });
    } finally {
      this.#releasing = false;
    }
    return true;
  }

  #fail(reason: string): void {
    if (this.#broken !== null) return;
    this.#broken = reason;
    this.#onBroken(reason);
  }
}
