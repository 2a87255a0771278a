import type { Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildApp, type Deps } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { DeviceEvent } from '../../src/devices/events.js';
import type { MqttStatus } from '../../src/ingest/mqtt.js';

/** A configuration from these variables only (no .env, no process environment), quiet unless TEST_LOG_LEVEL. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    // memory only unless a test gives a DATA_DIR
    // (with REDIS_URL no DATA_DIR at all: SPEC §8 refuses both)
    env: { LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', EMBEDDED_MQTT_PORT: '0', ...(env.REDIS_URL === undefined ? { DATA_DIR: '' } : {}), ...env },
    dotenv: false,
  });
}

/** buildApp, closed when the test ends. */
export async function buildTestApp(t: Test, config: Config, deps: Partial<Deps> = {}): Promise<FastifyInstance> {
  const app = await buildApp(config, deps);
  t.teardown(() => app.close());
  return app;
}

/** The next event of the app's event stream that `match` accepts. */
export function nextEvent(app: FastifyInstance, match: (event: DeviceEvent) => boolean, what: string, timeoutMs = 10_000): Promise<DeviceEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const off = app.devices.events.subscribe((event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

/** Resolves with the MQTT status once `match` accepts it (now or on a later change). */
export function mqttStatus(app: FastifyInstance, match: (status: MqttStatus) => boolean, what: string, timeoutMs = 15_000): Promise<MqttStatus> {
  return new Promise((resolve, reject) => {
    const check = (status: MqttStatus): void => {
      if (!match(status)) return;
      clearTimeout(timer);
      app.ingest.off('status', check);
      resolve(status);
    };
    const timer = setTimeout(() => {
      app.ingest.off('status', check);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last status ${JSON.stringify(app.ingest.status())}`));
    }, timeoutMs);
    app.ingest.on('status', check);
    check(app.ingest.status());
  });
}

/** `promise`, or a rejection naming `what` after `timeoutMs`; the timer never outlives it. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what()}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `condition` holds, checked once per turn of the event loop; the checks stop at the timeout. */
export async function until(condition: () => boolean, what: () => string, timeoutMs = 5_000): Promise<void> {
  let stopped = false;
  const held = new Promise<void>((resolve) => {
    const check = (): void => {
      if (stopped) return;
      if (condition()) resolve();
      else setImmediate(check);
    };
    check();
  });
  try {
    await withTimeout(held, timeoutMs, what);
  } finally {
    stopped = true;
  }
}
