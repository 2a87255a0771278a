import type { Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import mqtt, { type MqttClient } from 'mqtt';
import { readFileSync } from 'node:fs';
import type { Mosquitto } from './mosquitto.js';
import { buildTestApp, testConfig } from './app.js';
import { LogCapture } from './log.js';

export const APP_ID = 'a6157a33';
export const APP_KEY = 'k3y-of-a6157a33';
export const TOPIC = `iot/${APP_ID}/inbox`;

/** The variables that point the bridge at a test broker made by startMosquitto({ users: { [APP_ID]: APP_KEY } }). */
export function brokerEnv(broker: Mosquitto, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    MQTT_URL: broker.url,
    WIIHEY_APP_ID: APP_ID,
    WIIHEY_APP_KEY: APP_KEY,
    ...(broker.certs ? { MQTT_CA_FILE: broker.certs.ca } : {}),
    MQTT_RECONNECT_MIN_MS: '100',
    MQTT_RECONNECT_MAX_MS: '500',
    ...overrides,
  };
}

/** A bridge connected to `broker`, with its log captured. Not yet ready: call app.ready() or listen(). */
export async function startBridge(
  t: Test,
  broker: Mosquitto,
  overrides: Record<string, string> = {},
): Promise<{ app: FastifyInstance; log: LogCapture }> {
  const log = new LogCapture();
  const app = await buildTestApp(t, testConfig({ LOG_LEVEL: 'info', ...brokerEnv(broker, overrides) }), { logStream: log });
  return { app, log };
}

/** A publisher: another MQTT client with the same credentials (the platform's role in these tests). */
export async function publisher(t: Test, broker: Mosquitto, options: { clientId?: string } = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.url, {
    username: APP_ID,
    password: APP_KEY,
    ca: broker.certs ? readFileSync(broker.certs.ca) : undefined,
    reconnectPeriod: 100,
    ...(options.clientId ? { clientId: options.clientId } : {}),
  });
  t.teardown(() => client.endAsync(true));
  return client;
}

export function message(deviceId: string, state: string, timestamp: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ DeviceID: deviceId, State: state, Timestamp: timestamp, ...extra });
}
