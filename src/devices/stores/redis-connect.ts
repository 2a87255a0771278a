import type { FastifyBaseLogger } from 'fastify';
import { createClient } from 'redis';
import type { AlarmSettings } from '../alarms.js';
import { StoreOpenError } from '../store.js';
import { durabilityOf, readRedisSettings, type RedisDurability } from './redis-durability.js';
import { RedisStore } from './redis.js';

// SPEC §8: the Redis store of REDIS_URL, connected. node-redis (`redis`), the client Redis
// recommends for new projects (README: Running several replicas). Two connections: one for
// commands and the commit script, one for the event log's blocking reads. While Redis is away
// a command fails at once (no offline queue: a write must fail, not wait, so that nothing is
// acknowledged and /readyz says why), and both reconnect by themselves.

export interface RedisConnectOptions {
  url: string;
  /** This replica's MQTT client id: no other live replica may use it (SPEC §8). */
  clientId: string;
  /** Keys start with it (one Redis may serve several fleets). */
  prefix: string;
  historyLimit: number;
  eventBuffer: number;
  webhookUrls: string[];
  alarms: AlarmSettings | null;
  log: FastifyBaseLogger;
}

/** Tries to connect at start this many times before start-up gives up with one line. */
const START_ATTEMPTS = 3;
const RECONNECT_MAX_MS = 2000;
/** The connection's name in CLIENT LIST: how replicas see each other's MQTT client ids. */
const NAME_PREFIX = 'wiihey-bridge:';

/** REDIS_URL as it may be printed: without a password. */
export function safeRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)[^@/]*@/i, '$1');
}

export async function connectRedisStore(options: RedisConnectOptions): Promise<RedisStore> {
  const where = `REDIS_URL ${safeRedisUrl(options.url)}`;
  const log = options.log;
  let started = false;
  const client = createClient({
    url: options.url,
    // SPEC §8: CLIENT SETNAME, on every connection: how another replica sees this one's id
    name: NAME_PREFIX + encodeURIComponent(options.clientId),
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 5000,
      // at start a few attempts, then one line and exit code 1; once started, for ever
      reconnectStrategy: (retries, cause) => (!started && retries >= START_ATTEMPTS ? cause : Math.min(100 * 2 ** retries, RECONNECT_MAX_MS)),
    },
  });
  const reader = client.duplicate({ name: `${NAME_PREFIX}reader:${encodeURIComponent(options.clientId)}` });
  let lastError = '';
  for (const c of [client, reader]) {
    c.on('error', (err: Error) => {
      // node-redis reports each failed attempt: one line per change of reason
      if (err.message === lastError) return;
      lastError = err.message;
      if (started) log.warn({ err: err.message }, 'Redis connection failed; reconnecting');
    });
    c.on('ready', () => {
      if (started && lastError !== '') log.info('Redis connection back');
      lastError = '';
    });
  }
  try {
    await client.connect();
    await reader.connect();
  } catch (err) {
    client.destroy();
    reader.destroy();
    throw new StoreOpenError(`${where} cannot be reached: ${(err as Error).message}`);
  }
  started = true;
  const close = async (): Promise<void> => {
    reader.destroy(); // ends a blocking read at once
    client.destroy();
  };
  try {
    await refuseSharedClientId(client, options.clientId);
    const durability = await durabilityOfServer(client);
    if (durability.mayLose) log.warn({ guarantee: durability.guarantee }, durability.message);
    else log.info({ guarantee: durability.guarantee }, durability.message);
    return await RedisStore.open({
      client,
      reader,
      closeClient: close,
      problems: () => (client.isReady && reader.isReady ? [] : [`redis: not connected to ${safeRedisUrl(options.url)}${lastError ? `: ${lastError}` : ''}`]),
      waitAof: durability.waitAof,
      prefix: options.prefix,
      historyLimit: options.historyLimit,
      eventBuffer: options.eventBuffer,
      webhookUrls: options.webhookUrls,
      alarms: options.alarms,
    });
  } catch (err) {
    await close();
    if (err instanceof StoreOpenError) throw err;
    throw new StoreOpenError(`${where} cannot be used: ${(err as Error).message}`);
  }
}

async function durabilityOfServer(client: { sendCommand(args: string[]): Promise<unknown> }): Promise<RedisDurability> {
  return durabilityOf(await readRedisSettings(client));
}

/**
 * SPEC §8: two replicas with one MQTT client id kick each other off the broker for ever. Every
 * replica names its connection after its id; of two with one name, the connection that came
 * second (the higher CLIENT ID) refuses to start. A replica killed with -9 leaves no name behind:
 * Redis drops its connection with the process. Where CLIENT LIST is not allowed (some managed
 * Redis services), the check is skipped.
 */
async function refuseSharedClientId(client: { sendCommand(args: string[]): Promise<unknown> }, clientId: string): Promise<void> {
  let list: string;
  let own: number;
  try {
    own = Number(await client.sendCommand(['CLIENT', 'ID']));
    list = String(await client.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']));
  } catch {
    return;
  }
  const name = NAME_PREFIX + encodeURIComponent(clientId);
  for (const line of list.split('\n')) {
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
    const named = /(?:^| )name=(\S*)/.exec(line)?.[1];
    if (named === name && id !== undefined && Number(id) < own) {
      throw new StoreOpenError(`MQTT client id ${clientId} is in use by another replica on this Redis: give each replica its own REPLICA_ID`);
    }
  }
}
