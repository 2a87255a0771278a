import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { FastifyBaseLogger } from 'fastify';

// Realistic WiiHey manhole cover sensors (SPEC §2, §6): opens and closes, heartbeats, a battery
// that drains, a signal that wanders, now and then a QoS redelivery (duplicate) and a late retry.
// It publishes in the vendor's own formats, quirks included, so the demo exercises normalization.

export type CoverState = 'open' | 'close';

/**
 * The chance that a closed cover reports open on its next message. A real cover is closed almost
 * all the time (issue 15): at the demo's default 2 messages a second over 20 sensors (SPEC §6),
 * about 4 of them open in the first two minutes, so the dashboard shows activity and alarms soon.
 */
export const OPEN_PROBABILITY = 0.02;

/** The chance that an open cover reports closed on its next message: it closes again about 3 messages later. */
export const CLOSE_PROBABILITY = 0.3;

/** The cover that starts open, and the one that starts with a low battery (their indexes). */
export const DEMO_OPEN_COVER = 3;
export const DEMO_LOW_BATTERY = 6;
/** The open cover closes after this many messages of the fleet (20 s at the default rate): its alarm clears. */
export const DEMO_OPEN_FOR_MESSAGES = 40;

/**
 * The state a cover reports in its next (new) message: a rare open, and a short one. The fraction
 * of the fleet open at a time settles at OPEN / (OPEN + CLOSE), about 6 %.
 */
export function nextState(current: CoverState, random: () => number): CoverState {
  if (current === 'close') return random() < OPEN_PROBABILITY ? 'open' : 'close';
  return random() < CLOSE_PROBABILITY ? 'close' : 'open';
}

export interface SimulatorOptions {
  url: string;
  appId: string;
  appKey?: string | undefined;
  /** Topic template; `{APP_ID}` is replaced. */
  topic: string;
  devices: number;
  /** Messages per second over all devices, after the first message of each device. */
  rate: number;
  qos: 0 | 1 | 2;
  /** Stop after this many messages in all (the first round included); unset: run until stopped. */
  count?: number | undefined;
  mqtt?: IClientOptions;
  log: FastifyBaseLogger;
  random?: () => number;
}

interface Sensor {
  id: string;
  imei: string;
  iccid: string;
  state: CoverState;
  battery: number;
  csq: number;
  timestamp: number;
  last: string | null;
}

const TICK_MS = 50;

export class Simulator {
  readonly #options: SimulatorOptions;
  readonly #random: () => number;
  readonly #sensors: Sensor[] = [];
  readonly #topic: string;
  #client: MqttClient | null = null;
  #timer: NodeJS.Timeout | undefined;
  #sent = 0;
  #credit = 0;
  /** Messages until the cover that started open closes; null once it did (or without one). */
  #demoCoverCloses: number | null;
  #done: Promise<void> | null = null;
  #finish: () => void = () => {};

  constructor(options: SimulatorOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
    this.#topic = options.topic.replaceAll('{APP_ID}', options.appId);
    for (let i = 0; i < options.devices; i++) this.#sensors.push(this.#sensor(i));
    this.#demoCoverCloses = options.devices > DEMO_OPEN_COVER ? DEMO_OPEN_FOR_MESSAGES : null;
  }

  get sent(): number {
    return this.#sent;
  }

  /** The sensors' DeviceIDs, in order: the demo registers them (SPEC §11). */
  get deviceIds(): string[] {
    return this.#sensors.map((sensor) => sensor.id);
  }

  /** Connects, sends each sensor's first message, then `rate` messages a second. Resolves once connected. */
  async start(): Promise<void> {
    const o = this.#options;
    this.#done = new Promise((resolve) => (this.#finish = resolve));
    const client = await mqtt.connectAsync(o.url, {
      clientId: `wiihey-simulator-${process.pid}-${Math.floor(this.#random() * 1e9)}`,
      username: o.appId,
      password: o.appKey,
      reconnectPeriod: 1000,
      ...o.mqtt,
    });
    this.#client = client;
    client.on('error', (err) => o.log.warn({ err: err.message }, 'simulator: MQTT error'));
    o.log.info({ url: o.url, topic: this.#topic, devices: o.devices, rate: o.rate }, 'simulator publishing');
    for (const sensor of this.#sensors) {
      if (!this.#publishNext(sensor)) return;
    }
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  /** Resolves when `count` messages were sent (never, without a count). */
  finished(): Promise<void> {
    return this.#done ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const client = this.#client;
    this.#client = null;
    if (client !== null) await client.endAsync();
    this.#finish();
  }

  #tick(): void {
    if (this.#sensors.length === 0) return;
    this.#credit += (this.#options.rate * TICK_MS) / 1000;
    while (this.#credit >= 1) {
      this.#credit--;
      if (this.#demoCoverCloses !== null && --this.#demoCoverCloses <= 0) {
        // SPEC §12 in the demo: the cover that started open closes, and its alarm clears
        this.#demoCoverCloses = null;
        if (!this.#publishNext(this.#sensors[DEMO_OPEN_COVER]!, 'close')) return;
        continue;
      }
      const sensor = this.#sensors[Math.floor(this.#random() * this.#sensors.length)]!;
      if (!this.#publishNext(sensor)) return;
    }
  }

  /** Publishes one message (a new one in `state`, when given); false once the count is reached. */
  #publishNext(sensor: Sensor, state?: CoverState): boolean {
    const client = this.#client;
    if (client === null) return false;
    const roll = state === undefined ? this.#random() : 1;
    let payload: string;
    if (sensor.last !== null && roll < 0.04) {
      payload = sensor.last; // a QoS 1 redelivery: the very same message again
    } else if (sensor.last !== null && roll < 0.08) {
      // a retry that arrives after newer messages (SPEC §2: up to 3 retries, days apart)
      payload = this.#format(sensor, sensor.state === 'open' ? 'close' : 'open', sensor.timestamp - 60 - Math.floor(this.#random() * 3600));
    } else {
      // the first message reports the state the sensor starts in; later ones a change or a heartbeat
      if (state !== undefined) sensor.state = state;
      else if (sensor.last !== null) sensor.state = nextState(sensor.state, this.#random);
      sensor.timestamp = Math.max(Math.floor(Date.now() / 1000), sensor.timestamp + 1);
      sensor.battery = Math.max(0, sensor.battery - 1 - Math.floor(this.#random() * 5));
      sensor.csq = Math.min(31, Math.max(5, sensor.csq + Math.floor(this.#random() * 5) - 2));
      payload = this.#format(sensor, sensor.state, sensor.timestamp);
      sensor.last = payload;
    }
    client.publish(this.#topic, payload, { qos: this.#options.qos });
    this.#sent++;
    if (this.#options.count !== undefined && this.#sent >= this.#options.count) {
      void this.stop();
      return false;
    }
    return true;
  }

  /** The two vendor formats of SPEC §2: the sample client's numbers, the API document's strings. */
  #format(sensor: Sensor, state: string, timestamp: number): string {
    if (this.#random() < 0.7) {
      return JSON.stringify({
        DeviceID: sensor.id,
        State: state,
        BatteryLevel: sensor.battery,
        CSQ: sensor.csq,
        IMEI: sensor.imei,
        CCID: sensor.iccid,
        Timestamp: timestamp,
      });
    }
    return JSON.stringify({
      CustomerID: this.#options.appId,
      DeviceID: sensor.id,
      Timestamp: String(timestamp),
      State: state,
      IMEI: sensor.imei,
      ICCID: sensor.iccid,
      CSQ: String(sensor.csq),
      BatteryLevel: sensor.battery,
    });
  }

  #sensor(i: number): Sensor {
    return {
      id: (0x5da60000 + i).toString(16),
      imei: String(351756051500000 + i),
      iccid: String(89014103243534000000n + BigInt(i)),
      // the fleet starts as it runs: the share open at a time that nextState() settles at; and,
      // so that the demo shows alarms within its first minute (SPEC §12), the fourth cover starts
      // open (raised at once, cleared when it closes a few messages later) and the seventh with a
      // battery under ALARM_BATTERY_LOW's default (20 %)
      state: i === DEMO_OPEN_COVER || this.#random() < OPEN_PROBABILITY / (OPEN_PROBABILITY + CLOSE_PROBABILITY) ? 'open' : 'close',
      battery: i === DEMO_LOW_BATTERY ? 1850 : 6000 + Math.floor(this.#random() * 4000),
      csq: 10 + Math.floor(this.#random() * 21),
      timestamp: 0,
      last: null,
    };
  }
}
