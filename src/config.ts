import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseEnv } from 'node:util';
import envSchema from 'env-schema';
import { type Static, Type } from '@sinclair/typebox';
import { parseTopicTemplates } from './topics.js';

// SPEC §6: the service is configured only by the environment (and a .env file).
// A bad value stops start-up with one line naming the variable; secrets are never printed.

const SECRETS = new Set(['WIIHEY_APP_KEY', 'WEBHOOK_SECRET', 'API_KEYS', 'API_READ_KEYS']);

/** A choice among fixed values: ajv's `enum` (its error lists them), typed as their union. */
function oneOf<const T extends readonly (string | number)[]>(values: T, fallback: T[number]) {
  return Type.Unsafe<T[number]>({ type: typeof fallback === 'number' ? 'integer' : 'string', enum: values, default: fallback });
}

// The variables, declared once: the JSON schema env-schema validates and coerces with, and (below) their type.
// A variable with a default is always present after validation; one without is optional.
export const EnvSchema = Type.Object({
  MQTT_URL: Type.Optional(Type.String({ pattern: '^(mqtts?|wss?)://[^\\s]+$' })),
  WIIHEY_APP_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  WIIHEY_APP_KEY: Type.Optional(Type.String()),
  MQTT_TOPICS: Type.String({ default: 'iot/{APP_ID}/inbox' }),
  MQTT_CLIENT_ID: Type.String({ minLength: 1, maxLength: 128, default: 'wiihey-bridge-{APP_ID}' }),
  MQTT_QOS: oneOf([0, 1, 2], 1),
  MQTT_CLEAN_SESSION: Type.Boolean({ default: false }),
  MQTT_CA_FILE: Type.Optional(Type.String()),
  MQTT_CERT_FILE: Type.Optional(Type.String()),
  MQTT_KEY_FILE: Type.Optional(Type.String()),
  MQTT_TLS_INSECURE: Type.Boolean({ default: false }),
  MQTT_RECONNECT_MIN_MS: Type.Integer({ minimum: 100, default: 1000 }),
  MQTT_RECONNECT_MAX_MS: Type.Integer({ minimum: 100, default: 30_000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  ALLOW_ANONYMOUS: Type.Boolean({ default: false }),
  API_KEYS: Type.Optional(Type.String()),
  API_READ_KEYS: Type.Optional(Type.String()), // SPEC §9: keys that read everything and write nothing
  METRICS_PUBLIC: Type.Boolean({ default: false }),
  CORS_ORIGINS: Type.Optional(Type.String()),
  RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 0, default: 6000 }),
  MAX_STREAMS_PER_ADDRESS: Type.Integer({ minimum: 0, default: 100 }),
  TRUST_PROXY: Type.Optional(Type.String()),
  SILENCE_AFTER_SECONDS: Type.Integer({ minimum: 1, default: 345_600 }), // four days: a three-day heartbeat plus a day
  SILENCE_CHECK_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 60, default: 60 }), // SPEC §4: at least once a minute
  HISTORY_LIMIT: Type.Integer({ minimum: 1, maximum: 10_000, default: 50 }),
  EVENT_BUFFER: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1000 }),
  MAX_MESSAGE_BYTES: Type.Integer({ minimum: 64, maximum: 16_777_216, default: 65_536 }),
  MAX_CLOCK_SKEW_SECONDS: Type.Integer({ minimum: 0, default: 86_400 }),
  EMBEDDED_MQTT_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 1884 }),
  DEMO_DEVICES: Type.Integer({ minimum: 0, maximum: 100_000, default: 20 }),
  DEMO_RATE: Type.Number({ exclusiveMinimum: 0, maximum: 100_000, default: 2 }),
  WS_MAX_BUFFERED_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576 }),
  WS_SLOW_CLOSE_SECONDS: Type.Number({ exclusiveMinimum: 0, default: 30 }), // SPEC §5: behind for 30 s → 1013
  WS_PING_SECONDS: Type.Number({ exclusiveMinimum: 0, default: 30 }),
  WS_SNAPSHOT_LIMIT: Type.Integer({ minimum: 0, default: 10_000 }),
  SSE_KEEPALIVE_SECONDS: Type.Number({ exclusiveMinimum: 0, default: 15 }),
  // SPEC §9: the sum of every live client's unsent bytes; past it the slowest are closed; 0: no bound
  STREAMS_MAX_TOTAL_BUFFERED_BYTES: Type.Integer({ minimum: 0, default: 268_435_456 }),
  GRAPHQL_MAX_ITEMS: Type.Integer({ minimum: 1, default: 10_000 }),
  // about 1 µs of execution each on a 2-core machine: 30 ms at most; GraphiQL's introspection counts 4,600
  GRAPHQL_MAX_FIELDS: Type.Integer({ minimum: 1, default: 30_000 }),
  // 4 MiB: a page of 1,000 devices with their attributes fits several times over
  GRAPHQL_MAX_RESPONSE_BYTES: Type.Integer({ minimum: 1024, default: 4_194_304 }),
  GRAPHQL_MAX_DEPTH: Type.Integer({ minimum: 2, maximum: 64, default: 8 }),
  GRAPHQL_INIT_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, default: 3 }), // graphql-ws: 4408 after 3 s
  // SPEC §6/§7: durable state here; empty: memory only (an empty variable counts as unset, so "none")
  DATA_DIR: Type.String({ default: './data' }),
  // SPEC §8: replicas sharing one state in Redis; each needs its own MQTT client id
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://[^\\s]+$' })),
  REPLICA_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' })),
  // a share name holds no topic separator or wildcard (MQTT 5 §4.8.2, which Mosquitto applies to 3.1.1 too)
  MQTT_SHARED_GROUP: Type.Optional(Type.String({ pattern: '^[^/+#\\s]{1,64}$' })),
  SQLITE_SYNCHRONOUS: oneOf(['normal', 'full'], 'normal'),
  WEBHOOK_URLS: Type.Optional(Type.String()),
  WEBHOOK_SECRET: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/=]{8,}$' })),
  WEBHOOK_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 600, default: 15 }),
  // Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (about three days)
  WEBHOOK_RETRY_SECONDS: Type.String({ default: '5,300,1800,7200,18000,36000,50400,72000,86400' }),
  // SPEC §12: alarms on (the default) or off; their thresholds (battery levels in the platform's hundredths of a percent)
  ALARMS_ENABLED: Type.Boolean({ default: true }),
  ALARM_OPEN_AFTER_SECONDS: Type.Integer({ minimum: 0, default: 0 }), // at the open message
  ALARM_OPEN_CRITICAL_SECONDS: Type.Integer({ minimum: 0, default: 3600 }), // an hour open: critical
  ALARM_BATTERY_LOW: Type.Integer({ minimum: 0, maximum: 10_000, default: 2000 }), // 20 %
  ALARM_BATTERY_MARGIN: Type.Integer({ minimum: 0, maximum: 10_000, default: 500 }), // cleared at 25 %: no flapping
  ALARM_BATTERY_CRITICAL: Type.Integer({ minimum: 0, maximum: 10_000, default: 1000 }), // 10 %
  REGISTRY_IMPORT_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 1_073_741_824, default: 10_485_760 }), // SPEC §11: 10 MiB
  // SPEC §11: the map's base tiles; none by default (never a hard-coded provider)
  MAP_TILE_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  MAP_TILE_ATTRIBUTION: Type.Optional(Type.String({ maxLength: 1000 })),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
});

/** The variables as loadConfig reads them, once validated, coerced and defaulted. */
export type Env = Static<typeof EnvSchema>;

export interface WebhooksConfig {
  urls: string[];
  /** whsec_…: Standard Webhooks' HMAC-SHA256 key. */
  secret: string;
  timeoutMs: number;
  retryScheduleMs: number[];
}

export interface StreamsConfig {
  /** A /ws client with more unsent bytes than this gets conflated updates (SPEC §5). */
  wsMaxBufferedBytes: number;
  /** A client that stays over the bound this long is closed with 1013. */
  wsSlowCloseMs: number;
  wsPingMs: number;
  /** Devices in one /ws snapshot frame at most. */
  wsSnapshotLimit: number;
  sseKeepAliveMs: number;
  /** Open /ws, /events and graphql-ws connections per client address (SPEC §9); 0: no cap. */
  maxPerAddress: number;
  /** The unsent bytes of every live client together (SPEC §9); 0: no bound. */
  maxTotalBufferedBytes: number;
}

export interface GraphqlConfig {
  /** List items one query may ask for in all (SPEC §5). */
  maxItems: number;
  /** Fields one query may ask for in all, each once per object it is on (graphql/limits.ts). */
  maxFields: number;
  /** Bytes one answer may have, queries and each subscription event alike (graphql/answer.ts). */
  maxResponseBytes: number;
  maxDepth: number;
  /** graphql-ws: a socket that sends no connection_init this long is closed with 4408. */
  initTimeoutMs: number;
}

export interface HttpConfig {
  /** CORS_ORIGINS: origins allowed to read the API from a browser and to open its WebSockets; '*': any. */
  corsOrigins: string[];
  /** Requests per minute per API key (or per address without one); 0: no limit. */
  rateLimitPerMinute: number;
  /** Fastify's trustProxy: whose X-Forwarded-For to believe for the client address. */
  trustProxy: boolean | number | string[];
}

export interface MqttConfig {
  url: string;
  username: string | undefined;
  password: string | undefined;
  /** Topic filters, templates already expanded. */
  topics: string[];
  clientId: string;
  /** SPEC §8 MQTT_SHARED_GROUP: subscribe as `$share/{group}/{topic}`, so that the broker splits the stream among replicas. */
  sharedGroup: string | null;
  qos: 0 | 1 | 2;
  clean: boolean;
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
  tlsInsecure: boolean;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

/** SPEC §12 thresholds, as devices/alarms.ts's AlarmSettings takes them. */
export interface AlarmsConfig {
  openAfterSeconds: number;
  openCriticalSeconds: number;
  batteryLow: number;
  batteryMargin: number;
  batteryCritical: number;
  silenceAfterSeconds: number;
}

export interface MapConfig {
  /** MAP_TILE_URL, a Leaflet URL template (`https://tiles.example/{z}/{x}/{y}.png`), or null: no tiles. */
  tileUrl: string | null;
  tileAttribution: string | null;
  /** The CSP source the page's img-src allows for the tiles (`https://*.tiles.example` for `{s}`), or null. */
  tileSource: string | null;
}

export interface DemoConfig {
  /** Port of the embedded aedes broker on 127.0.0.1. */
  port: number;
  devices: number;
  /** Simulator messages per second, over all devices. */
  rate: number;
}

export interface Config {
  host: string;
  port: number;
  /** API_KEYS: with any, every data route needs one (SPEC §9). */
  apiKeys: string[];
  /** API_READ_KEYS: keys that read every data route and write nothing (SPEC §9, §11). */
  apiReadKeys: string[];
  /** /metrics without a key even when API_KEYS is set (METRICS_PUBLIC). */
  metricsPublic: boolean;
  http: HttpConfig;
  logLevel: string;
  mqtt: MqttConfig;
  /** Set when MQTT_URL is not: the embedded demo (SPEC §6). */
  demo: DemoConfig | null;
  silenceAfterSeconds: number;
  silenceCheckSeconds: number;
  historyLimit: number;
  eventBuffer: number;
  maxMessageBytes: number;
  maxClockSkewSeconds: number;
  /** The SQLite store's directory; null: memory only (or Redis). */
  dataDir: string | null;
  /** SPEC §8: the state in Redis, shared by replicas; null without REDIS_URL. */
  redis: { url: string; replicaId: string | null } | null;
  sqliteSynchronous: 'normal' | 'full';
  streams: StreamsConfig;
  graphql: GraphqlConfig;
  /** Null without WEBHOOK_URLS. */
  webhooks: WebhooksConfig | null;
  registry: { importMaxBytes: number };
  map: MapConfig;
  /** SPEC §12 thresholds; null with ALARMS_ENABLED=false. */
  alarms: AlarmsConfig | null;
  /** Said at start: settings that are accepted but have no effect. */
  warnings: string[];
}

/** A configuration error: its message is the one line printed before exit code 1. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadOptions {
  /** The variables; process.env when absent. */
  env?: Record<string, string | undefined>;
  /** Path of the .env file, or false for none. */
  dotenv?: string | false;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const warnings: string[] = [];
  const { env, empty, given } = readEnv(options);
  scaleOut(env, given, warnings);
  const demo = env.MQTT_URL === undefined;
  const appId = env.WIIHEY_APP_ID ?? (demo ? 'demo' : undefined);
  if (appId === undefined) throw new ConfigError('WIIHEY_APP_ID is required with MQTT_URL (the APP-ID is the MQTT username)');
  const password = env.WIIHEY_APP_KEY ?? (demo ? 'demo' : undefined);

  let topics: string[];
  try {
    topics = parseTopicTemplates(env.MQTT_TOPICS, appId);
  } catch (err) {
    throw new ConfigError(`MQTT_TOPICS ${(err as Error).message}`);
  }
  if (env.MQTT_CERT_FILE !== undefined && env.MQTT_KEY_FILE === undefined) {
    throw new ConfigError('MQTT_KEY_FILE is required with MQTT_CERT_FILE');
  }
  if (env.MQTT_KEY_FILE !== undefined && env.MQTT_CERT_FILE === undefined) {
    throw new ConfigError('MQTT_CERT_FILE is required with MQTT_KEY_FILE');
  }
  if (env.MQTT_RECONNECT_MAX_MS < env.MQTT_RECONNECT_MIN_MS) {
    throw new ConfigError('MQTT_RECONNECT_MAX_MS must not be below MQTT_RECONNECT_MIN_MS');
  }
  if (env.TRUST_PROXY === 'true') {
    warnings.push('TRUST_PROXY=true believes every X-Forwarded-For: clients that reach the service directly choose the address their rate limit and stream cap count; name the proxy (its addresses or a hop count) instead');
  }
  const apiKeys = keyList(env.API_KEYS);
  if (apiKeys.some((k) => k.length < 16)) throw new ConfigError('API_KEYS must each have 16 characters or more');
  const apiReadKeys = keyList(env.API_READ_KEYS);
  if (apiReadKeys.some((k) => k.length < 16)) throw new ConfigError('API_READ_KEYS must each have 16 characters or more');
  if (apiReadKeys.some((k) => apiKeys.includes(k))) throw new ConfigError('API_READ_KEYS must not repeat a key of API_KEYS: a key either writes or only reads');
  // SPEC §9: without API keys, only loopback unless the operator says so
  if (apiKeys.length + apiReadKeys.length === 0 && !isLoopback(env.HOST) && !env.ALLOW_ANONYMOUS) {
    throw new ConfigError(
      `HOST ${env.HOST} is not a loopback address and API_KEYS is not set: set API_KEYS, or ALLOW_ANONYMOUS=true to serve the API to the network without keys`,
    );
  }

  return {
    host: env.HOST,
    port: env.PORT,
    apiKeys,
    apiReadKeys,
    metricsPublic: env.METRICS_PUBLIC,
    http: {
      corsOrigins: corsOrigins(env.CORS_ORIGINS),
      rateLimitPerMinute: env.RATE_LIMIT_PER_MINUTE,
      trustProxy: trustProxy(env.TRUST_PROXY),
    },
    logLevel: env.LOG_LEVEL,
    mqtt: {
      url: env.MQTT_URL ?? `mqtt://127.0.0.1:${env.EMBEDDED_MQTT_PORT}`,
      username: appId,
      password,
      topics,
      clientId: clientId(env, given, appId),
      sharedGroup: env.MQTT_SHARED_GROUP ?? null,
      qos: env.MQTT_QOS,
      clean: env.MQTT_CLEAN_SESSION,
      ca: readTlsFile('MQTT_CA_FILE', env.MQTT_CA_FILE),
      cert: readTlsFile('MQTT_CERT_FILE', env.MQTT_CERT_FILE),
      key: readTlsFile('MQTT_KEY_FILE', env.MQTT_KEY_FILE),
      tlsInsecure: env.MQTT_TLS_INSECURE,
      reconnectMinMs: env.MQTT_RECONNECT_MIN_MS,
      reconnectMaxMs: env.MQTT_RECONNECT_MAX_MS,
    },
    demo: demo ? { port: env.EMBEDDED_MQTT_PORT, devices: env.DEMO_DEVICES, rate: env.DEMO_RATE } : null,
    silenceAfterSeconds: env.SILENCE_AFTER_SECONDS,
    silenceCheckSeconds: env.SILENCE_CHECK_SECONDS,
    historyLimit: env.HISTORY_LIMIT,
    eventBuffer: env.EVENT_BUFFER,
    maxMessageBytes: env.MAX_MESSAGE_BYTES,
    maxClockSkewSeconds: env.MAX_CLOCK_SKEW_SECONDS,
    dataDir: empty.has('DATA_DIR') || env.REDIS_URL !== undefined ? null : env.DATA_DIR,
    redis: env.REDIS_URL === undefined ? null : { url: env.REDIS_URL, replicaId: env.REPLICA_ID ?? null },
    sqliteSynchronous: env.SQLITE_SYNCHRONOUS,
    streams: {
      wsMaxBufferedBytes: env.WS_MAX_BUFFERED_BYTES,
      wsSlowCloseMs: env.WS_SLOW_CLOSE_SECONDS * 1000,
      wsPingMs: env.WS_PING_SECONDS * 1000,
      wsSnapshotLimit: env.WS_SNAPSHOT_LIMIT,
      sseKeepAliveMs: env.SSE_KEEPALIVE_SECONDS * 1000,
      maxPerAddress: env.MAX_STREAMS_PER_ADDRESS,
      maxTotalBufferedBytes: env.STREAMS_MAX_TOTAL_BUFFERED_BYTES,
    },
    graphql: {
      maxItems: env.GRAPHQL_MAX_ITEMS,
      maxFields: env.GRAPHQL_MAX_FIELDS,
      maxResponseBytes: env.GRAPHQL_MAX_RESPONSE_BYTES,
      maxDepth: env.GRAPHQL_MAX_DEPTH,
      initTimeoutMs: env.GRAPHQL_INIT_TIMEOUT_SECONDS * 1000,
    },
    webhooks: webhooks(env),
    registry: { importMaxBytes: env.REGISTRY_IMPORT_MAX_BYTES },
    alarms: env.ALARMS_ENABLED ? alarmSettings(env) : null,
    map: mapConfig(env),
    warnings,
  };
}

/** SPEC §12: the thresholds must make sense together, or alarms would never clear or never escalate. */
function alarmSettings(env: Env): AlarmsConfig {
  if (env.ALARM_OPEN_CRITICAL_SECONDS < env.ALARM_OPEN_AFTER_SECONDS) {
    throw new ConfigError('ALARM_OPEN_CRITICAL_SECONDS must not be below ALARM_OPEN_AFTER_SECONDS (a cover_open alarm escalates after it is raised)');
  }
  if (env.ALARM_BATTERY_CRITICAL > env.ALARM_BATTERY_LOW) {
    throw new ConfigError('ALARM_BATTERY_CRITICAL must not be above ALARM_BATTERY_LOW (critical is the lower level)');
  }
  return {
    openAfterSeconds: env.ALARM_OPEN_AFTER_SECONDS,
    openCriticalSeconds: env.ALARM_OPEN_CRITICAL_SECONDS,
    batteryLow: env.ALARM_BATTERY_LOW,
    batteryMargin: env.ALARM_BATTERY_MARGIN,
    batteryCritical: env.ALARM_BATTERY_CRITICAL,
    silenceAfterSeconds: env.SILENCE_AFTER_SECONDS,
  };
}

function keyList(value: string | undefined): string[] {
  return (value ?? '').split(',').map((k) => k.trim()).filter((k) => k !== '');
}

/**
 * MAP_TILE_URL must be a tile template whose origin a CSP source can name: the page allows images
 * from there and nowhere else (SPEC §11). Leaflet's `{s}` (subdomains) may only lead the host.
 */
function mapConfig(env: Env): MapConfig {
  const attribution = env.MAP_TILE_ATTRIBUTION === undefined || env.MAP_TILE_ATTRIBUTION.trim() === '' ? null : env.MAP_TILE_ATTRIBUTION;
  const template = env.MAP_TILE_URL;
  if (template === undefined) {
    if (attribution !== null) throw new ConfigError('MAP_TILE_ATTRIBUTION is set without MAP_TILE_URL');
    return { tileUrl: null, tileAttribution: null, tileSource: null };
  }
  if (!['{z}', '{x}', '{y}'].every((p) => template.includes(p))) {
    throw new ConfigError('MAP_TILE_URL must hold {z}, {x} and {y}, as https://tiles.example/{z}/{x}/{y}.png');
  }
  const host = /^https?:\/\/([^/?#]*)/.exec(template)![1]!;
  const subdomains = host.startsWith('{s}.');
  if ((subdomains ? host.slice(3) : host).includes('{')) {
    throw new ConfigError('MAP_TILE_URL may hold a placeholder in its host only as a leading {s}. (https://{s}.tiles.example/...)');
  }
  let url: URL;
  try {
    url = new URL(template.replace('{s}', 'a'));
  } catch {
    throw new ConfigError('MAP_TILE_URL is not a URL');
  }
  const source = subdomains ? `${url.protocol}//*.${url.host.slice(2)}` : url.origin; // a.tiles.example → *.tiles.example
  return { tileUrl: template, tileAttribution: attribution, tileSource: source };
}

function corsOrigins(value: string | undefined): string[] {
  const origins = (value ?? '').split(',').map((o) => o.trim()).filter((o) => o !== '');
  for (const origin of origins) {
    if (origin === '*') continue;
    let parsed: URL | null = null;
    try {
      parsed = new URL(origin);
    } catch {}
    // an origin is scheme://host[:port], nothing more: what a browser sends in its Origin header
    if (parsed === null || parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
      throw new ConfigError(`CORS_ORIGINS has "${origin}", which is not an origin such as https://app.example.com (or *)`);
    }
  }
  return [...new Set(origins)];
}

function trustProxy(value: string | undefined): boolean | number | string[] {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  if (/^[0-9]+$/.test(value)) return Number(value);
  const list = value.split(',').map((v) => v.trim()).filter((v) => v !== '');
  // addresses or CIDR ranges, as Fastify (proxy-addr) takes them; checked here, not at listen
  for (const entry of list) {
    if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) continue;
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address!);
    const maxBits = family === 4 ? 32 : 128;
    if (family === 0 || extra !== undefined || (bits !== undefined && !(/^[0-9]{1,3}$/.test(bits) && Number(bits) <= maxBits))) {
      throw new ConfigError(`TRUST_PROXY must be true, false, a number of hops, or a comma-separated list of addresses or CIDR ranges, got "${entry}"`);
    }
  }
  return list;
}

function webhooks(env: Env): WebhooksConfig | null {
  const urls = (env.WEBHOOK_URLS ?? '').split(',').map((u) => u.trim()).filter((u) => u !== '');
  if (urls.length === 0) return null;
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`WEBHOOK_URLS has an invalid URL "${withoutCredentials(url)}"`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new ConfigError(`WEBHOOK_URLS has a URL that is not http(s): "${withoutCredentials(url)}"`);
    }
  }
  if (env.WEBHOOK_SECRET === undefined) throw new ConfigError('WEBHOOK_SECRET is required with WEBHOOK_URLS (a whsec_… secret)');
  const retryScheduleMs = env.WEBHOOK_RETRY_SECONDS.split(',').map((v) => Number(v.trim()) * 1000);
  if (retryScheduleMs.some((ms) => !Number.isFinite(ms) || ms <= 0)) {
    throw new ConfigError('WEBHOOK_RETRY_SECONDS must be a comma-separated list of positive numbers of seconds');
  }
  return { urls: [...new Set(urls)], secret: env.WEBHOOK_SECRET, timeoutMs: env.WEBHOOK_TIMEOUT_SECONDS * 1000, retryScheduleMs };
}

/**
 * SPEC §8: what scale-out needs of the other settings. The state is Redis's, not DATA_DIR's, and
 * replicas without one shared state must not split a stream between them.
 */
function scaleOut(env: Env, given: ReadonlySet<string>, warnings: string[]): void {
  if (env.REDIS_URL === undefined) {
    if (env.MQTT_SHARED_GROUP !== undefined) {
      throw new ConfigError('MQTT_SHARED_GROUP needs REDIS_URL: replicas without one shared state would each keep a part of the fleet');
    }
    if (env.REPLICA_ID !== undefined) warnings.push('REPLICA_ID is set without REDIS_URL: ignored (the MQTT client id stays MQTT_CLIENT_ID)');
    return;
  }
  // its default does not count: DATA_DIR set in the environment (or .env) as well is a mistake
  if (given.has('DATA_DIR')) throw new ConfigError('DATA_DIR and REDIS_URL are both set: with REDIS_URL the state is kept in Redis; unset DATA_DIR');
}

/**
 * The MQTT client id. SPEC §8: with REDIS_URL each replica needs its own (two clients with one id
 * kick each other off the broker forever), so the default one is refused unless REPLICA_ID makes
 * it distinct: `wiihey-bridge-{APP_ID}-{REPLICA_ID}`. MQTT_CLIENT_ID may name `{REPLICA_ID}` too.
 */
function clientId(env: Env, given: ReadonlySet<string>, appId: string): string {
  const replica = env.REDIS_URL === undefined ? undefined : env.REPLICA_ID;
  if (env.MQTT_CLIENT_ID.includes('{REPLICA_ID}') && replica === undefined) {
    throw new ConfigError('MQTT_CLIENT_ID names {REPLICA_ID}: set REPLICA_ID (with REDIS_URL)');
  }
  const id = env.MQTT_CLIENT_ID.replaceAll('{APP_ID}', appId).replaceAll('{REPLICA_ID}', replica ?? '');
  if (env.REDIS_URL === undefined || given.has('MQTT_CLIENT_ID')) return id;
  if (replica === undefined) {
    throw new ConfigError(
      'REDIS_URL needs a distinct MQTT client id for each replica: set REPLICA_ID (the client id becomes wiihey-bridge-{APP_ID}-{REPLICA_ID}) or MQTT_CLIENT_ID',
    );
  }
  return `${id}-${replica}`;
}

/** The validated variables, the names of those set to an empty value, and of those set at all. */
function readEnv(options: LoadOptions): { env: Env; empty: Set<string>; given: Set<string> } {
  const merged: Record<string, string> = {};
  if (options.dotenv !== false) Object.assign(merged, readDotenv(options.dotenv ?? '.env'));
  for (const [name, value] of Object.entries(options.env ?? process.env)) {
    if (value !== undefined) merged[name] = value;
  }
  const given = new Set(Object.keys(merged));
  const data: Record<string, string> = {};
  const empty = new Set<string>();
  for (const name of Object.keys(EnvSchema.properties)) {
    const value = merged[name]?.trim();
    if (value === '') empty.add(name); // an empty variable is an unset one (but DATA_DIR= means memory only)
    else if (value !== undefined) data[name] = value;
  }
  try {
    return { env: envSchema<Env>({ schema: structuredClone(EnvSchema), data, env: false, dotenv: false }), empty, given };
  } catch (err) {
    throw configError(err, data);
  }
}

function readDotenv(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return parseEnv(text) as Record<string, string>;
}

function configError(err: unknown, data: Record<string, string>): ConfigError {
  const first = (err as { errors?: { instancePath: string; message?: string; params?: { allowedValues?: unknown[] } }[] })
    .errors?.[0];
  if (first === undefined) return new ConfigError((err as Error).message);
  const name = first.instancePath.replace(/^\//, '');
  const allowed = first.params?.allowedValues ? ` (${first.params.allowedValues.join(', ')})` : '';
  const got = SECRETS.has(name) || data[name] === undefined ? '' : `, got ${JSON.stringify(withoutCredentials(data[name]))}`;
  return new ConfigError(`${name} ${first.message ?? 'is invalid'}${allowed}${got}`);
}

/** A value as it may be printed: a URL's user and password removed. */
function withoutCredentials(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1');
}

function readTlsFile(variable: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${variable}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}
