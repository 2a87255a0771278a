import type { RedisCommander } from './redis-commit.js';

// SPEC §8 (issue 18, groundwork): in Redis mode a message is acknowledged only once Redis has it
// durably. At start the bridge reads the server's persistence settings and says which guarantee
// holds. WAITAOF (Redis 7.2 and later) makes any appendonly setup durable per batch; Debian's
// 7.0 has none, so there only `appendfsync always` is.

export type RedisGuarantee =
  /** appendonly yes, appendfsync always: Redis fsyncs before it replies. */
  | 'fsync-always'
  /** appendonly yes on 7.2 or later: WAITAOF after each write waits for the fsync. */
  | 'waitaof'
  /** appendonly yes, appendfsync everysec or no, without WAITAOF: about a second may be lost. */
  | 'aof-delayed'
  /** appendonly no: only snapshots, if any. */
  | 'none'
  /** CONFIG is not allowed (a managed Redis renames it): the settings cannot be read. */
  | 'unknown';

export interface RedisSettings {
  /** CONFIG GET appendonly: 'yes' or 'no'; null when CONFIG is not allowed. */
  appendonly: string | null;
  /** CONFIG GET appendfsync: 'always', 'everysec' or 'no'; null when CONFIG is not allowed. */
  appendfsync: string | null;
  /** INFO server redis_version, e.g. '7.0.15'. */
  version: string;
}

export interface RedisDurability {
  guarantee: RedisGuarantee;
  /** Whether the store should follow each write with WAITAOF. */
  waitAof: boolean;
  /** Whether a crash of Redis itself can lose an acknowledged message: the bridge warns once. */
  mayLose: boolean;
  /** One line for the start-up log. */
  message: string;
}

/** True for 7.2.0 and later: the versions with WAITAOF. */
export function hasWaitAof(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map((n) => Number.parseInt(n, 10));
  return major > 7 || (major === 7 && minor >= 2);
}

/** Which guarantee the server's settings give an acknowledged message (README: Running several replicas). */
export function durabilityOf(settings: RedisSettings): RedisDurability {
  const { appendonly, appendfsync, version } = settings;
  if (appendonly === null || appendfsync === null) {
    return {
      guarantee: 'unknown',
      waitAof: false,
      mayLose: true,
      message: `Redis ${version} does not allow CONFIG GET: its persistence settings are unknown; an acknowledged message may be lost if Redis itself crashes`,
    };
  }
  if (appendonly !== 'yes') {
    return {
      guarantee: 'none',
      waitAof: false,
      mayLose: true,
      message: `Redis ${version} has appendonly no: an acknowledged message is lost if Redis itself crashes before its next snapshot (set appendonly yes and appendfsync always)`,
    };
  }
  if (appendfsync === 'always') {
    return { guarantee: 'fsync-always', waitAof: false, mayLose: false, message: `Redis ${version}, appendfsync always: every acknowledged message is on Redis's disk` };
  }
  if (hasWaitAof(version)) {
    return {
      guarantee: 'waitaof',
      waitAof: true,
      mayLose: false,
      message: `Redis ${version}, appendfsync ${appendfsync}: each write is followed by WAITAOF, so every acknowledged message is on Redis's disk`,
    };
  }
  return {
    guarantee: 'aof-delayed',
    waitAof: false,
    mayLose: true,
    message: `Redis ${version}, appendfsync ${appendfsync}, no WAITAOF (7.2 and later): a crash of Redis itself may lose about the last second of acknowledged messages (set appendfsync always)`,
  };
}

/** Reads the server's version and persistence settings. */
export async function readRedisSettings(client: RedisCommander): Promise<RedisSettings> {
  const info = String(await client.sendCommand(['INFO', 'server']));
  const version = /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
  try {
    const reply = (await client.sendCommand(['CONFIG', 'GET', 'append*'])) as unknown;
    const pairs = pairsOf(reply);
    return { version, appendonly: pairs.get('appendonly') ?? null, appendfsync: pairs.get('appendfsync') ?? null };
  } catch {
    // a managed Redis that renamed or disabled CONFIG
    return { version, appendonly: null, appendfsync: null };
  }
}

/** CONFIG GET answers a flat list (RESP2) or a map (RESP3). */
function pairsOf(reply: unknown): Map<string, string> {
  const pairs = new Map<string, string>();
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) pairs.set(String(reply[i]), String(reply[i + 1]));
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) pairs.set(String(k), String(v));
  } else if (reply !== null && typeof reply === 'object') {
    for (const [k, v] of Object.entries(reply)) pairs.set(k, String(v));
  }
  return pairs;
}
