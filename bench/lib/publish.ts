import mqtt from 'mqtt';

/** A WiiHey message, as the vendor's sample client prints it; `sentAt` (ms) rides along as an attribute. */
export function wiiheyMessage(deviceId: string, state: string, timestamp: number, sentAt?: number): string {
  return JSON.stringify({ DeviceID: deviceId, State: state, BatteryLevel: 9000, CSQ: 25, IMEI: '868575022027272', Timestamp: timestamp, ...(sentAt === undefined ? {} : { sentAt }) });
}

/**
 * Publishes `count` messages over `devices` devices as fast as the broker takes them (QoS 1: a
 * window of unacknowledged messages), each a new update (the timestamp grows every round). Each
 * device changes state every `changeEvery` rounds (1: every message is a state change; more: the
 * rest are heartbeats, as a real fleet's messages mostly are).
 */
export async function publishBurst(url: string, topic: string, qos: 0 | 1, count: number, devices: number, base = 1_700_000_000, changeEvery = 1): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId: `bench-pub-${process.pid}-${Math.random()}`, clean: true });
  const WINDOW = 2000;
  let inFlight = 0;
  let wake: () => void = () => {};
  for (let i = 0; i < count; i++) {
    const round = Math.floor(i / devices);
    const payload = wiiheyMessage(`d${i % devices}`, Math.floor(round / changeEvery) % 2 ? 'open' : 'close', base + round);
    if (qos === 0) {
      client.publish(topic, payload, { qos: 0 });
      if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    // eslint-disable-next-line no-unmodified-loop-condition -- the PUBACK callback lowers inFlight while this awaits
    while (inFlight >= WINDOW) await new Promise<void>((resolve) => (wake = resolve));
    inFlight++;
    client.publish(topic, payload, { qos: 1 }, () => {
      inFlight--;
      wake();
    });
  }
  // eslint-disable-next-line no-unmodified-loop-condition -- the PUBACK callbacks lower inFlight while this awaits
  while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
  await client.endAsync();
}
