import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Ajv } from 'ajv';
import t from 'tap';
import { ConfigError, EnvSchema, loadConfig, type Env } from '../src/config.js';

const load = (env: Record<string, string>) => loadConfig({ env, dotenv: false });
const refused = (env: Record<string, string>): string => {
  try {
    load(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('accepted');
};

t.test('no configuration: the embedded demo with the defaults of SPEC §6', async (t) => {
  const config = load({});
  t.same(config.demo, { port: 1884, devices: 20, rate: 2 });
  t.equal(config.mqtt.url, 'mqtt://127.0.0.1:1884');
  t.equal(config.mqtt.username, 'demo');
  t.same(config.mqtt.topics, ['iot/demo/inbox']);
  t.equal(config.mqtt.clientId, 'wiihey-bridge-demo');
  t.equal(config.mqtt.qos, 1);
  t.equal(config.mqtt.clean, false);
  t.equal(config.host, '127.0.0.1');
  t.equal(config.port, 3000);
  t.equal(config.silenceAfterSeconds, 345_600);
  t.equal(config.historyLimit, 50);
  t.equal(config.eventBuffer, 1000);
  t.equal(config.maxMessageBytes, 65_536);
  t.equal(config.maxClockSkewSeconds, 86_400);
  t.equal(config.dataDir, './data', 'durable by default (SPEC §7)');
  t.equal(config.sqliteSynchronous, 'normal');
});

t.test('DATA_DIR: a directory, or empty for memory only', async (t) => {
  t.equal(load({ DATA_DIR: '/var/lib/wiihey' }).dataDir, '/var/lib/wiihey');
  t.equal(load({ DATA_DIR: '' }).dataDir, null);
  t.equal(load({ DATA_DIR: '  ' }).dataDir, null);
  t.equal(load({ SQLITE_SYNCHRONOUS: 'full' }).sqliteSynchronous, 'full');
  t.match(refused({ SQLITE_SYNCHRONOUS: 'off' }), /^SQLITE_SYNCHRONOUS must be equal to one of the allowed values \(normal, full\)/);
});

t.test('the WiiHey platform: templates expanded, booleans and numbers parsed', async (t) => {
  const config = load({
    MQTT_URL: 'mqtts://iot.wiihey.com:8883',
    WIIHEY_APP_ID: 'a6157a33',
    WIIHEY_APP_KEY: 'secret',
    MQTT_TOPICS: 'iot/{APP_ID}/inbox, apps/{APP_ID}/inbox',
    MQTT_CLEAN_SESSION: 'true',
    MQTT_QOS: '0',
    PORT: '8080',
  });
  t.equal(config.demo, null);
  t.same(config.mqtt.topics, ['iot/a6157a33/inbox', 'apps/a6157a33/inbox']);
  t.equal(config.mqtt.clientId, 'wiihey-bridge-a6157a33');
  t.equal(config.mqtt.password, 'secret');
  t.equal(config.mqtt.clean, true);
  t.equal(config.mqtt.qos, 0);
  t.equal(config.port, 8080);
  t.equal(load({ MQTT_URL: 'wss://iot.wiihey.com:8884', WIIHEY_APP_ID: 'a' }).mqtt.url, 'wss://iot.wiihey.com:8884');
});

t.test('a bad value is refused with one line naming the variable', async (t) => {
  t.equal(refused({ PORT: 'abc' }), 'PORT must be integer, got "abc"');
  t.equal(refused({ PORT: '70000' }), 'PORT must be <= 65535, got "70000"');
  t.match(refused({ MQTT_QOS: '3' }), /^MQTT_QOS must be equal to one of the allowed values \(0, 1, 2\)/);
  t.match(refused({ MQTT_URL: 'http://x' }), /^MQTT_URL must match pattern/);
  t.match(refused({ MQTT_CLEAN_SESSION: 'perhaps' }), /^MQTT_CLEAN_SESSION must be boolean/);
  t.match(refused({ LOG_LEVEL: 'loud' }), /^LOG_LEVEL must be equal to one of the allowed values/);
  t.match(refused({ MQTT_URL: 'mqtts://h:8883' }), /^WIIHEY_APP_ID is required/);
  t.match(refused({ MQTT_TOPICS: 'a/#/b' }), /^MQTT_TOPICS has an invalid topic filter "a\/#\/b"/);
  t.match(refused({ MQTT_TOPICS: ' , ' }), /^MQTT_TOPICS must name at least one topic/);
  t.match(refused({ MQTT_CA_FILE: '/nonexistent/ca.crt' }), /^MQTT_CA_FILE: cannot read \/nonexistent\/ca\.crt \(ENOENT\)/);
  t.match(refused({ MQTT_CERT_FILE: '/x' }), /^MQTT_KEY_FILE is required with MQTT_CERT_FILE/);
  t.match(refused({ HOST: '0.0.0.0' }), /^HOST 0\.0\.0\.0 is not a loopback address and API_KEYS is not set/);
  t.same(load({ HOST: '0.0.0.0', API_KEYS: 'a-key-of-16-chars-or-more' }).apiKeys, ['a-key-of-16-chars-or-more'], 'with keys it may listen on any address');
  t.match(refused({ API_KEYS: 'short' }), /^API_KEYS must each have 16 characters or more/);
  t.equal(load({ HOST: '0.0.0.0', ALLOW_ANONYMOUS: 'true' }).host, '0.0.0.0');
  t.equal(load({ HOST: '::1' }).host, '::1');
});

t.test('a secret is never printed, even when it is the bad value', async (t) => {
  const message = refused({ WIIHEY_APP_KEY: 'hunter2', PORT: 'x' });
  t.notMatch(message, /hunter2/);
  const url = refused({ MQTT_URL: 'tcp://appid:s3cret@host:8883', WIIHEY_APP_ID: 'a' });
  t.match(url, /^MQTT_URL must match pattern/);
  t.match(url, /got "tcp:\/\/host:8883"/);
  t.notMatch(url, /s3cret/);
  t.equal(load({ PORT: '', MQTT_URL: '' }).port, 3000, 'an empty variable is an unset one');
});

t.test('scale-out (SPEC §8): REDIS_URL, a distinct client id per replica, a shared group', async (t) => {
  t.equal(load({}).redis, null);
  t.same(load({}).warnings, []);
  const replica = load({ REDIS_URL: 'redis://redis:6379', REPLICA_ID: 'r1', MQTT_SHARED_GROUP: 'bridges' });
  t.same(replica.redis, { url: 'redis://redis:6379', replicaId: 'r1' });
  t.equal(replica.dataDir, null, 'the state is in Redis');
  t.equal(replica.mqtt.clientId, 'wiihey-bridge-demo-r1', 'wiihey-bridge-{APP_ID}-{REPLICA_ID}');
  t.equal(replica.mqtt.sharedGroup, 'bridges');
  t.equal(load({ REDIS_URL: 'redis://r', MQTT_CLIENT_ID: 'bridge-{APP_ID}-{REPLICA_ID}', REPLICA_ID: 'b' }).mqtt.clientId, 'bridge-demo-b');
  t.equal(load({ REDIS_URL: 'rediss://r', MQTT_CLIENT_ID: 'my-own-id' }).mqtt.clientId, 'my-own-id', 'an id of its own is distinct enough');
  t.equal(load({ REDIS_URL: 'redis://r', REPLICA_ID: 'a' }).mqtt.sharedGroup, null, 'without a group every replica gets every message');

  t.match(refused({ REDIS_URL: 'redis://r' }), /^REDIS_URL needs a distinct MQTT client id for each replica: set REPLICA_ID/, 'the default id is refused');
  t.match(refused({ REDIS_URL: 'redis://r', REPLICA_ID: 'a', DATA_DIR: './data' }), /^DATA_DIR and REDIS_URL are both set/, 'DATA_DIR set as well, even to its default');
  t.match(refused({ REDIS_URL: 'redis://r', REPLICA_ID: 'a', DATA_DIR: '' }), /^DATA_DIR and REDIS_URL are both set/);
  t.match(refused({ MQTT_SHARED_GROUP: 'g' }), /^MQTT_SHARED_GROUP needs REDIS_URL/);
  t.match(refused({ REDIS_URL: 'redis://r', REPLICA_ID: 'a', MQTT_SHARED_GROUP: 'a/b' }), /^MQTT_SHARED_GROUP must match pattern/);
  t.match(refused({ REDIS_URL: 'redis://r', REPLICA_ID: 'a b' }), /^REPLICA_ID must match pattern/);
  t.match(refused({ REDIS_URL: 'http://r', REPLICA_ID: 'a' }), /^REDIS_URL must match pattern/);
  t.match(refused({ REDIS_URL: 'redis://r', MQTT_CLIENT_ID: 'x-{REPLICA_ID}' }), /^MQTT_CLIENT_ID names \{REPLICA_ID\}/);
  t.notMatch(refused({ REDIS_URL: 'redis://user:s3cret@r x' }), /s3cret/, "a URL's password is never printed");
  t.same(load({ REPLICA_ID: 'a' }).warnings, ['REPLICA_ID is set without REDIS_URL: ignored (the MQTT client id stays MQTT_CLIENT_ID)']);
  t.equal(load({ REPLICA_ID: 'a' }).mqtt.clientId, 'wiihey-bridge-demo');
});

t.test('HTTP safety settings: CORS origins, rate limit, streams per address, trusted proxies', async (t) => {
  t.same(load({}).http, { corsOrigins: [], rateLimitPerMinute: 6000, trustProxy: false });
  t.equal(load({}).streams.maxPerAddress, 100);
  const config = load({
    CORS_ORIGINS: 'https://app.example.com, http://127.0.0.1:8080,https://app.example.com',
    RATE_LIMIT_PER_MINUTE: '0',
    MAX_STREAMS_PER_ADDRESS: '5',
    TRUST_PROXY: '10.0.0.0/8, 127.0.0.1',
  });
  t.same(config.http, {
    corsOrigins: ['https://app.example.com', 'http://127.0.0.1:8080'],
    rateLimitPerMinute: 0,
    trustProxy: ['10.0.0.0/8', '127.0.0.1'],
  });
  t.equal(config.streams.maxPerAddress, 5);
  t.same(load({ CORS_ORIGINS: '*' }).http.corsOrigins, ['*']);
  t.equal(load({ TRUST_PROXY: 'true' }).http.trustProxy, true);
  t.match(load({ TRUST_PROXY: 'true' }).warnings, [/^TRUST_PROXY=true believes every X-Forwarded-For/], 'warned about at start');
  t.same(load({ TRUST_PROXY: '127.0.0.1' }).warnings, []);
  t.equal(load({ TRUST_PROXY: '2' }).http.trustProxy, 2);
  t.match(refused({ CORS_ORIGINS: 'https://app.example.com/path' }), /^CORS_ORIGINS has "https:\/\/app.example.com\/path", which is not an origin/);
  t.match(refused({ CORS_ORIGINS: 'app.example.com' }), /^CORS_ORIGINS has "app.example.com"/);
  t.match(refused({ RATE_LIMIT_PER_MINUTE: '-1' }), /^RATE_LIMIT_PER_MINUTE must be >= 0/);
  t.match(refused({ TRUST_PROXY: 'my-proxy' }), /^TRUST_PROXY must be true, false/);
  for (const bad of ['10.0.0.0/abc', '10.0.0.0/33', '::1/129', '10.0.0.0/8/1']) t.match(refused({ TRUST_PROXY: bad }), /^TRUST_PROXY must be/, bad);
  t.same(load({ TRUST_PROXY: 'loopback, fd00::/8' }).http.trustProxy, ['loopback', 'fd00::/8']);
});

t.test('webhooks: URLs, a whsec_ secret, a retry schedule', async (t) => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  t.equal(load({}).webhooks, null);
  const config = load({ WEBHOOK_URLS: 'https://a.example/hook, http://127.0.0.1:9000/x', WEBHOOK_SECRET: secret });
  t.same(config.webhooks, {
    urls: ['https://a.example/hook', 'http://127.0.0.1:9000/x'],
    secret,
    timeoutMs: 15_000,
    retryScheduleMs: [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400].map((s) => s * 1000),
  });
  t.match(refused({ WEBHOOK_URLS: 'https://a' }), /^WEBHOOK_SECRET is required with WEBHOOK_URLS/);
  t.match(refused({ WEBHOOK_URLS: 'ftp://a', WEBHOOK_SECRET: secret }), /not http\(s\)/);
  t.match(refused({ WEBHOOK_URLS: 'not a url', WEBHOOK_SECRET: secret }), /invalid URL/);
  const bad = refused({ WEBHOOK_URLS: 'https://a', WEBHOOK_SECRET: 'plain-secret-value' });
  t.match(bad, /^WEBHOOK_SECRET must match pattern/);
  t.notMatch(bad, /plain-secret-value/, 'the secret is never printed');
  t.match(refused({ WEBHOOK_URLS: 'https://a', WEBHOOK_SECRET: secret, WEBHOOK_RETRY_SECONDS: '5,x' }), /WEBHOOK_RETRY_SECONDS/);
});

t.test('.env is read; the environment wins over it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wiihey-env-'));
  const file = join(dir, '.env');
  writeFileSync(file, 'PORT=4000\nHISTORY_LIMIT=7\n# a comment\nMQTT_TOPICS="apps/{APP_ID}/inbox"\n');
  const config = loadConfig({ env: { PORT: '5000' }, dotenv: file });
  t.equal(config.port, 5000);
  t.equal(config.historyLimit, 7);
  t.same(config.mqtt.topics, ['apps/demo/inbox']);
});

t.test('the process exits 1 with one line on a bad value', async (t) => {
  const main = new URL('../src/main.ts', import.meta.url).pathname;
  const result = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), main], {
    env: { PATH: process.env.PATH, PORT: 'nope', WIIHEY_APP_KEY: 'hunter2' },
    cwd: mkdtempSync(join(tmpdir(), 'wiihey-cwd-')), // no .env there
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(result.status, 1);
  t.equal(result.stderr, 'wiihey-bridge: invalid configuration: PORT must be integer, got "nope"\n');
  t.equal(result.stdout, '');
});

t.test('the process exits 1 with one line on an unusable DATA_DIR', async (t) => {
  const main = new URL('../src/main.ts', import.meta.url).pathname;
  const dir = t.testdir({ 'wiihey-bridge.db': 'not a database at all, just some text that fills a page header' });
  const result = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), main], {
    env: { PATH: process.env.PATH, DATA_DIR: dir, PORT: '0', EMBEDDED_MQTT_PORT: '0' },
    cwd: dir,
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(result.status, 1);
  t.equal(result.stderr, `wiihey-bridge: DATA_DIR ${dir}: wiihey-bridge.db is not a wiihey-bridge database\n`);
});

t.test('GraphQL bounds: list items, fields and answer bytes of one query, depth (SPEC §5, issue 13)', async (t) => {
  const { graphql } = load({});
  t.same(
    { maxItems: graphql.maxItems, maxFields: graphql.maxFields, maxResponseBytes: graphql.maxResponseBytes, maxDepth: graphql.maxDepth },
    { maxItems: 10_000, maxFields: 30_000, maxResponseBytes: 4_194_304, maxDepth: 8 },
  );
  const set = load({ GRAPHQL_MAX_FIELDS: '5000', GRAPHQL_MAX_RESPONSE_BYTES: '65536' }).graphql;
  t.same([set.maxFields, set.maxResponseBytes], [5000, 65_536]);
  t.equal(refused({ GRAPHQL_MAX_FIELDS: '0' }), 'GRAPHQL_MAX_FIELDS must be >= 1, got "0"');
  t.equal(refused({ GRAPHQL_MAX_FIELDS: 'many' }), 'GRAPHQL_MAX_FIELDS must be integer, got "many"');
  t.equal(refused({ GRAPHQL_MAX_RESPONSE_BYTES: '100' }), 'GRAPHQL_MAX_RESPONSE_BYTES must be >= 1024, got "100"');
});

t.test('every variable is typed: env-schema coerces by type, and each default passes its own bounds', async (t) => {
  const ajv = new Ajv({ strict: true });
  for (const [name, variable] of Object.entries(EnvSchema.properties)) {
    const { type } = variable as { type?: unknown };
    t.ok(['string', 'integer', 'number', 'boolean'].includes(type as string), `${name} has a type (got ${String(type)})`);
    if ('default' in variable) t.ok(ajv.validate(variable, variable.default), `${name}'s default ${JSON.stringify(variable.default)} is valid`);
  }
  // the TypeScript type is derived from the same declaration: a choice is the union of its values
  const qos: Env['MQTT_QOS'][] = [0, 1, 2];
  // @ts-expect-error MQTT_QOS is 0, 1 or 2
  qos.push(3);
  const optional: Env['MQTT_URL'] = undefined; // no default: may be absent
  t.equal(optional, undefined);
});

t.test("README's configuration table lists every variable", async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n### Configuration\n'));
  const table = section.slice(0, section.slice(1).search(/\n#{1,3} /) + 1);
  // a row names its variables in its first cell: `A`, or `A` / `B`, or `A`, `B`, `C`
  const listed = new Set(
    table
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .flatMap((line) => [...line.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!)),
  );
  t.ok(listed.size > 0, 'the table is found');
  for (const name of Object.keys(EnvSchema.properties)) t.ok(listed.has(name), `${name} is in README's configuration table`);
});
