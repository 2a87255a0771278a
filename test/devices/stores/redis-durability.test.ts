import t from 'tap';
import { createClient } from 'redis';
import { durabilityOf, hasWaitAof, readRedisSettings, type RedisGuarantee } from '../../../src/devices/stores/redis-durability.js';
import { startRedis, type RedisOptions } from '../../helpers/redis.js';

// SPEC §8 (issue 18, groundwork): which guarantee a Redis server's persistence settings give an
// acknowledged message, read from real servers started with those settings.

t.test('the guarantee of each setting', async (t) => {
  const cases: [string | null, string | null, string, RedisGuarantee, boolean][] = [
    ['yes', 'always', '7.0.15', 'fsync-always', false],
    ['yes', 'everysec', '7.0.15', 'aof-delayed', true],
    ['yes', 'no', '7.0.15', 'aof-delayed', true],
    ['yes', 'everysec', '7.2.4', 'waitaof', false],
    ['yes', 'always', '7.2.4', 'fsync-always', false],
    ['no', 'always', '7.2.4', 'none', true],
    [null, null, '7.0.15', 'unknown', true],
  ];
  for (const [appendonly, appendfsync, version, guarantee, mayLose] of cases) {
    const got = durabilityOf({ appendonly, appendfsync, version });
    t.equal(got.guarantee, guarantee, `${appendonly} ${appendfsync} ${version}`);
    t.equal(got.mayLose, mayLose, `${guarantee}: may lose`);
    t.equal(got.waitAof, guarantee === 'waitaof');
    t.match(got.message, version);
  }
  t.same(['6.2.14', '7.0.15', '7.2.0', '7.4.1', '8.0.0', 'unknown'].map(hasWaitAof), [false, false, true, true, true, false]);
});

t.test("read from real servers: Debian's 7.0 has no WAITAOF, so only appendfsync always is durable", async (t) => {
  const settings: [RedisOptions, RedisGuarantee][] = [
    [{ appendonly: true, appendfsync: 'always' }, 'fsync-always'],
    [{ appendonly: true, appendfsync: 'everysec' }, 'aof-delayed'],
    [{}, 'none'],
  ];
  for (const [options, want] of settings) {
    const redis = await startRedis(t, options);
    if (!redis) return;
    const client = createClient({ url: redis.url, socket: { reconnectStrategy: false } });
    client.on('error', () => {}); // a refused connection rejects connect() below
    await client.connect();
    t.teardown(() => client.destroy());
    const read = await readRedisSettings(client);
    t.match(read.version, /^\d+\.\d+\.\d+/);
    t.equal(durabilityOf(read).guarantee, hasWaitAof(read.version) && options.appendonly === true && options.appendfsync !== 'always' ? 'waitaof' : want, JSON.stringify(read));
  }
});

t.test('a server that refuses CONFIG: the guarantee is unknown, and the bridge says so', async (t) => {
  const redis = await startRedis(t, { appendonly: true, appendfsync: 'always', extraConfig: 'rename-command CONFIG ""' });
  if (!redis) return;
  const client = createClient({ url: redis.url, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.destroy());
  const read = await readRedisSettings(client);
  t.same([read.appendonly, read.appendfsync], [null, null]);
  const got = durabilityOf(read);
  t.equal(got.guarantee, 'unknown');
  t.match(got.message, /persistence settings are unknown/);
});
